//! The copy engine: readers, the block buffer pool, hashing, and the import and export pipelines.
//!
//! Three execution domains meet here, and talk only through bounded channels (style.md §5 ASYNC):
//! the reader service ([`read`]: an io_uring thread, or `pread` threads), the rayon hash pool
//! ([`hash`]), and the caller's tokio runtime, which drives the store. Every block lives in a
//! buffer of a fixed [`buf::BufPool`], so memory is `pool count × block size` by construction.
//!
//! This module must not print, parse formats or talk to a store backend directly.

pub mod buf;
pub mod hash;
pub mod read;
