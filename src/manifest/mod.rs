//! The drive manifest (`<DriveManifest>`): model, parser, writer and validation.
