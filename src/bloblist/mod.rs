//! The export blob list (`<BlobList>` with `BlobPath` and `BlobPathPrefix`).
