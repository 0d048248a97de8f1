# ocirender tasks. Every recipe is a thin wrapper over a script in scripts/,
# so nothing here needs `just` to run.

# Install what the tests and the demo need (squashfs-tools 4.6, umoci, skopeo...)
deps:
    scripts/install-deps

# Build the sample image and run the whole pipeline on it
demo:
    scripts/demo

# Run every test: lints, unit, property and end-to-end tests
test:
    scripts/test

# Measure speed and memory against the decompression floor
bench:
    scripts/bench

# Build release binaries
build:
    cargo build --release --bins

# Install binaries, man pages and completions (PREFIX defaults to /usr/local)
install prefix="/usr/local":
    scripts/install {{prefix}}
