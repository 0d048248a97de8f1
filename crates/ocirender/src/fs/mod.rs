//! The file-system footing every other folder stands on: a directory
//! confined by the kernel ([`root`]), no-follow access relative to a
//! directory's descriptor ([`nofollow`]), outputs staged beside their
//! destination and renamed on success ([`staged`]), and what a signal
//! must remove ([`temporaries`]).

pub mod nofollow;
pub mod pipe;
pub mod root;
pub mod staged;
pub mod temporaries;
