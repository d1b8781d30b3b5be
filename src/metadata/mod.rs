//! Metadata (`<Metadata>`) and properties (`<Properties>`) files.
