//! The copy engine: readers and writers, the block buffer pool, hashing, and the import, export,
//! prepare and verify pipelines.
//!
//! Three execution domains meet here, and talk only through bounded channels (style.md §5 ASYNC):
//! the reader service ([`read`]: an io_uring thread, or `pread` threads), the rayon hash pool
//! ([`hash`]), and the caller's tokio runtime, which drives the store. Every block lives in a
//! buffer of a fixed [`buf::BufPool`], so memory is `pool count × block size` by construction.
//!
//! This module must not print: it reports through an [`crate::events::EventSink`].

pub mod buf;
pub mod diagnostics;
pub mod disposition;
pub mod drivename;
pub mod export;
pub mod hash;
pub mod import;
pub mod plan;
pub mod prepare;
pub mod read;
pub mod verify;
pub mod write;
