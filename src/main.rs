//! The `drivecopy` command line. See `src/cli/mod.rs`.

fn main() {}
