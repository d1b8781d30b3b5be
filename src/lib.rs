//! drivecopy: the data path of an Azure Import/Export-style service.
//!
//! One `drivecopy` process per attached drive imports the drive's files into Azure Blob Storage
//! (verifying every block and page range against the drive manifest), or exports a job's blobs onto
//! a drive, and reports the drive state, copy status and drive logs for the job.
//!
//! The library holds everything but the command line, so that tests, benches and fuzz targets can
//! call in. See `ARCHITECTURE.md` for the map of modules and the rules between them.
//!
//! | module | owns |
//! |---|---|
//! | [`manifest`] | the `DriveManifest` XML model, parser, writer and validation |
//! | [`copylog`] | the `DriveLog` XML (error and verbose logs) and every status enumeration |
//! | [`metadata`] | the `<Metadata>` and `<Properties>` files |
//! | [`bloblist`] | the export `<BlobList>` (`BlobPath`, `BlobPathPrefix`) |
//! | [`names`] | container and blob names, blob paths, drive-relative paths that cannot escape |
//! | [`digest`] | MD5 digests in Base16 and Base64 |
//! | [`job`] | the Import/Export job and drive state machines (pure) |
//! | [`store`] | the `BlobStore` trait and its backends |
//! | [`jobstore`] | where jobs live: the `JobStore` trait (directory, blob), optimistic concurrency |
//! | [`engine`] | the copy engine: readers, buffer pool, hashing, the import and prepare pipelines |
//! | [`events`] | the JSON-lines event schema an orchestrator reads (start, progress, warning, result) |

mod aligned;
pub mod bloblist;
pub mod copylog;
pub mod digest;
pub mod engine;
pub mod events;
pub mod job;
pub mod jobstore;
pub mod manifest;
pub mod metadata;
pub mod names;
pub mod store;
mod xml;

pub use xml::XmlError;
