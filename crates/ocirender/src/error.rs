//! The library's one error type: a kind a caller can match, the words a
//! person reads, and the error it came from.
//!
//! ```
//! use ocirender::{Error, ErrorKind};
//!
//! fn explain(err: &Error) -> String {
//!     match err.kind() {
//!         ErrorKind::DigestMismatch { blob, .. } => format!("{blob} is damaged"),
//!         ErrorKind::NoSuchPlatform { available, .. } => format!("try one of {available:?}"),
//!         _ => err.to_string(),
//!     }
//! }
//! # let _ = explain;
//! ```
//!
//! An error reads as one line: what was being done, outermost first, then
//! what went wrong (`layer 2/3 (…/sha256/4f1c…): entry "etc/x": path has
//! 3000 components, more than the limit of 2048`). The error it came from
//! (an `io::Error`, a JSON error) is its [`std::error::Error::source`], and
//! `{:#}` adds its words too, as `anyhow` prints a chain; an `io::Error`'s
//! kind survives as [`ErrorKind::Io`] and [`Error::io_kind`].
//!
//! Inside the crate, [`bail!`](crate::error::bail), [`err!`](crate::error::err)
//! and [`Context`] make errors the way `anyhow`'s do.

use crate::blob::digest::Digest;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for a caller to match on. New kinds may be added in a
/// minor release; match with a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bytes that do not have the digest that names them (a layer, a
    /// manifest, a config, a registry blob).
    DigestMismatch {
        /// What the bytes were: a path, a blob reference.
        blob: String,
        /// The digest they should have.
        expected: Digest,
        /// The digest they have.
        actual: Digest,
    },
    /// A path that holds no image: neither an OCI layout nor a `docker
    /// save`, as a directory or a tar file.
    NotAnImage {
        /// The path.
        path: PathBuf,
    },
    /// No image of the source is for the platform asked for.
    NoSuchPlatform {
        /// The platform asked for (`linux/arm64`).
        requested: String,
        /// The platforms there are.
        available: Vec<String>,
    },
    /// No image of the source carries the name or tag asked for (or there
    /// is no image at all).
    NoSuchImage {
        /// The name asked for, if any.
        requested: Option<String>,
        /// The names there are.
        available: Vec<String>,
    },
    /// Several images, and nothing said which one.
    AmbiguousImage {
        /// How to name each of them.
        choices: Vec<String>,
    },
    /// A tar header over one of the limits every reader holds headers to.
    Limit(crate::tar::limits::Limit),
    /// An image builder (`mksquashfs`, `mkfs.erofs`) failed.
    BuilderFailed {
        /// Its name.
        program: String,
        /// What it said last (its stderr, else its stdout), on one line.
        said: String,
    },
    /// A registry refused or failed a request.
    Registry(RegistryErrorKind),
    /// An I/O error, of this kind: the error itself is the
    /// [`std::error::Error::source`].
    Io(io::ErrorKind),
    /// Input that is not what it claims to be: a corrupt or truncated
    /// layer, a malformed tar stream, JSON or reference, a stream the sinks
    /// cannot all build.
    Invalid,
    /// stdin is not what the program reads but what a user pipes in by
    /// mistake; the message names stdin itself, so it reads alone.
    WrongInput(InputMistake),
    /// Anything else; the message says what.
    Other,
}

/// What was piped in instead of the input a program reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputMistake {
    /// Nothing at all: most often, the program before it in the pipeline
    /// failed (and said why).
    Empty,
    /// Lines of text, as `oci-layers` prints: a layer list, where a tar
    /// stream was expected.
    LayerList,
    /// A compressed stream (the format's name: `gzip`, `zstd`, ...).
    Compressed(String),
    /// The program before it in the pipeline failed and said why (its
    /// layer list ends in a `#failed` line): nothing more to say.
    SourceFailed,
}

/// How a registry refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// No such repository, tag or blob.
    NotFound,
    /// Credentials are needed and none were found.
    AuthenticationRequired,
    /// The credentials given were refused.
    AccessDenied,
    /// The registry cannot be reached, or does not speak the distribution
    /// API (TLS, connection, protocol errors).
    Unreachable,
    /// The registry kept failing (5xx, 429) past the retries or deadline.
    Unavailable,
    /// The registry answered something it should not have.
    Protocol,
}

/// Where in a merge an error happened: which layer, and how far into its
/// decompressed tar stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerPosition {
    /// The layer, base first, from 0.
    pub index: usize,
    /// How many layers the merge had.
    pub layers: usize,
    /// The byte offset in the layer's tar stream, when known.
    pub offset: Option<u64>,
}

/// The library's error. See the `module` documentation.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    /// What was being done, innermost first.
    context: Vec<String>,
    /// What went wrong, in words (empty when the source says it).
    message: String,
    layer: Option<LayerPosition>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Error {
        Error(Box::new(Inner {
            kind,
            context: Vec::new(),
            message: message.to_string(),
            layer: None,
            source: None,
        }))
    }

    /// The bytes `blob` have the digest `actual`, not `expected`: reads
    /// `BLOB: digest mismatch: content has ACTUAL`.
    pub(crate) fn digest_mismatch(
        blob: impl fmt::Display,
        expected: &Digest,
        actual: &Digest,
    ) -> Error {
        let blob = blob.to_string();
        let kind = ErrorKind::DigestMismatch {
            blob: blob.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
        Error::new(kind, format!("digest mismatch: content has {actual}")).context(blob)
    }

    /// An [`ErrorKind::Other`] error saying `message`.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Other, message)
    }

    /// An [`ErrorKind::Invalid`] error saying `message`.
    pub fn invalid(message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Invalid, message)
    }

    /// An error of `kind` that `source` caused; its words are the source's.
    pub fn from_source(kind: ErrorKind, source: impl StdError + Send + Sync + 'static) -> Error {
        Error::new(kind, "").with_source(source)
    }

    /// The same error, caused by `source` (its words follow this error's
    /// in `{:#}`).
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Error {
        self.0.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The kind of I/O error this is, or was caused by.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self.0.kind {
            ErrorKind::Io(kind) => Some(kind),
            _ => None,
        }
    }

    /// What went wrong, in the error's own words: without the contexts
    /// (empty when its source says it).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The layer of a merge the error happened in, if it happened in one.
    pub fn layer(&self) -> Option<LayerPosition> {
        self.0.layer
    }

    /// The error at the end of the chain of sources: what went wrong in
    /// the first place (this error, if it has no source).
    pub fn root_cause(&self) -> &(dyn StdError + 'static) {
        let mut cause: &(dyn StdError + 'static) = self;
        while let Some(source) = cause.source() {
            cause = source;
        }
        cause
    }

    /// The same error, with what was being done when it happened (it reads
    /// before the error's own words).
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.0.context.push(context.to_string());
        self
    }

    /// The same error, marked as having happened in a layer of a merge
    /// (the innermost mark wins: it knows the offset).
    pub(crate) fn in_layer(mut self, position: LayerPosition) -> Error {
        if self.0.layer.is_none() {
            self.0.layer = Some(position);
        }
        self
    }

    /// The same error, of another kind (a caller that knows better what
    /// it means).
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.0.kind = kind;
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &format!("{self:#}"))
            .field("layer", &self.0.layer)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        let mut parts = inner
            .context
            .iter()
            .rev()
            .map(String::as_str)
            .chain((!inner.message.is_empty()).then_some(inner.message.as_str()));
        let mut wrote = false;
        if let Some(first) = parts.next() {
            f.write_str(first)?;
            wrote = true;
            for part in parts {
                write!(f, ": {part}")?;
            }
        }
        // Without words of its own, the error says its source's; with
        // `{:#}`, every source's words follow.
        let mut source = inner.source.as_deref().map(|s| s as &dyn StdError);
        if !wrote {
            if let Some(s) = source {
                write!(f, "{s}")?;
                source = s.source();
            }
        }
        if f.alternate() {
            while let Some(s) = source {
                write!(f, ": {s}")?;
                source = s.source();
            }
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let source = self.0.source.as_deref()?;
        let has_words = !self.0.context.is_empty() || !self.0.message.is_empty();
        // An error showing its source's words as its own hands on the
        // source's source, so a chain never says the same thing twice.
        if has_words {
            Some(source)
        } else {
            source.source()
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        // An io::Error carrying one of ours (a decoder thread's failure
        // passed through `Read`) is that error again.
        if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let kind = err.kind();
            let inner = err.into_inner().expect("checked above");
            if let Ok(ours) = inner.downcast::<Error>() {
                return *ours;
            }
            unreachable!("an io::Error of kind {kind:?} holding an Error");
        }
        Error::from_source(ErrorKind::Io(err.kind()), err)
    }
}

/// Whether `err` carries one of this crate's errors (a producing thread's
/// failure passed through `Read`), which `Error::from` gets back whole.
pub(crate) fn carries_ours(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<Error>())
}

impl From<Error> for io::Error {
    /// The error as an `io::Error` of its I/O kind (`InvalidData` for
    /// input that is not what it claims to be, `Other` otherwise), for
    /// passing through `Read` and `Write`; [`From<io::Error>`] gets it back.
    fn from(err: Error) -> io::Error {
        let kind = match err.kind() {
            ErrorKind::Io(kind) => *kind,
            ErrorKind::Invalid
            | ErrorKind::Limit(_)
            | ErrorKind::DigestMismatch { .. }
            | ErrorKind::NotAnImage { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Error {
        match err.io_error_kind() {
            Some(kind) => Error::from_source(ErrorKind::Io(kind), err),
            None => Error::from_source(ErrorKind::Invalid, err),
        }
    }
}

impl From<tempfile::PathPersistError> for Error {
    fn from(err: tempfile::PathPersistError) -> Error {
        err.error.into()
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(errno: rustix::io::Errno) -> Error {
        io::Error::from(errno).into()
    }
}

/// Errors of the crate's small parsers, which say what is wrong with their
/// input in their own words: each module that defines one says so where it
/// defines it, so this module depends on none of them.
macro_rules! invalid_input_errors {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for $crate::error::Error {
            fn from(err: $ty) -> $crate::error::Error {
                $crate::error::Error::new($crate::error::ErrorKind::Invalid, &err)
            }
        }
    )*};
}
pub(crate) use invalid_input_errors;
invalid_input_errors!(
    url::ParseError,
    std::num::ParseIntError,
    std::str::Utf8Error,
    std::string::FromUtf8Error,
);

/// Adds what was being done to an error, as `anyhow::Context` does.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context<C: fmt::Display>(self, context: C) -> Result<T>;
    /// Wraps the error with the context `f` makes (only on error).
    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C: fmt::Display>(self, context: C) -> Result<T> {
        self.ok_or_else(|| Error::msg(context))
    }

    fn with_context<C: fmt::Display, F: FnOnce() -> C>(self, f: F) -> Result<T> {
        self.ok_or_else(|| Error::msg(f()))
    }
}

/// Returns an [`ErrorKind::Other`] error made with `format!` (or from one
/// expression that displays), or an error of a kind:
/// `bail!(kind = ErrorKind::Invalid, "...")`.
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::error::err!($($arg)+))
    };
}
pub(crate) use bail;

/// An [`ErrorKind::Other`] error made with `format!` (or from one
/// expression that displays), or an error of a kind:
/// `err!(kind = ErrorKind::Invalid, "...")`.
macro_rules! err {
    (kind = $kind:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::error::Error::new($kind, format!($fmt $(, $arg)*))
    };
    (kind = $kind:expr, $message:expr $(,)?) => {
        $crate::error::Error::new($kind, $message)
    };
    ($fmt:literal $(, $arg:expr)* $(,)?) => {
        $crate::error::Error::msg(format!($fmt $(, $arg)*))
    };
    ($message:expr $(,)?) => {
        $crate::error::Error::msg($message)
    };
}
pub(crate) use err;

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> Error {
        io::Error::new(io::ErrorKind::NotFound, "gone").into()
    }

    #[test]
    fn words_read_outermost_first_and_sources_follow_with_alternate() {
        let err = Error::msg("bad header")
            .context("entry \"a\"")
            .context("layer 1/2");
        assert_eq!(err.to_string(), "layer 1/2: entry \"a\": bad header");
        let err = io_error().context("x.tar: cannot open");
        assert_eq!(err.to_string(), "x.tar: cannot open");
        assert_eq!(format!("{err:#}"), "x.tar: cannot open: gone");
        assert_eq!(err.io_kind(), Some(io::ErrorKind::NotFound));
        assert_eq!(err.source().unwrap().to_string(), "gone");
    }

    #[test]
    fn an_error_without_words_says_its_sources_and_never_twice() {
        let err = io_error();
        assert_eq!(err.to_string(), "gone");
        assert_eq!(format!("{err:#}"), "gone");
        assert!(err.source().is_none(), "its words are the source's");
    }

    #[test]
    fn an_error_survives_a_trip_through_io() {
        let err = Error::new(ErrorKind::Invalid, "corrupt").context("layer 2/2");
        let through: io::Error = err.into();
        assert_eq!(through.kind(), io::ErrorKind::InvalidData);
        let back = Error::from(through);
        assert_eq!(back.kind(), &ErrorKind::Invalid);
        assert_eq!(back.to_string(), "layer 2/2: corrupt");
    }

    #[test]
    fn context_on_options_and_results() {
        let none: Option<u8> = None;
        assert_eq!(none.context("nothing").unwrap_err().to_string(), "nothing");
        let parsed: Result<u8> = "x".parse::<u8>().context("a number");
        let err = parsed.unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Invalid);
        assert!(err.to_string().starts_with("a number: "), "{err}");
        fn fails() -> Result<()> {
            bail!(kind = ErrorKind::Other, "{} failed", "it")
        }
        assert_eq!(fails().unwrap_err().to_string(), "it failed");
    }

    #[test]
    fn the_first_layer_mark_wins() {
        let at = |offset| LayerPosition {
            index: 1,
            layers: 3,
            offset,
        };
        let err = Error::msg("x").in_layer(at(Some(512))).in_layer(at(None));
        assert_eq!(err.layer(), Some(at(Some(512))));
    }
}
