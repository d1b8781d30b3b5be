//! The copy engine: readers, the block buffer pool, hashing, and the import and export pipelines.

pub mod diagnostics;
pub mod disposition;
