//! Where a merged tar ends up when it is not a directory: image builders
//! ([`squashfs`]), and what every sink shares: outputs [`staged`] beside
//! their destination and renamed on success, and [`temporaries`] removed
//! when a signal interrupts.

pub mod squashfs;
pub mod staged;
pub mod temporaries;
