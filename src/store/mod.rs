//! The `BlobStore` trait and its backends.
