//! Names the data path handles: container names, blob names, blob paths, and drive-relative file
//! paths.
//!
//! Every name that arrives from a manifest, a blob list or a storage listing passes through here
//! before it is used, so that the rules live in one place:
//! - container and blob names follow Azure's "Naming and Referencing Containers, Blobs, and
//!   Metadata" rules (peers.md §6): containers 3–63 characters of lowercase letters, digits and
//!   single hyphens, or `$root`; blob names 1–1,024 characters, at most 254 segments, no control
//!   characters;
//! - a [`DrivePath`] is a manifest `FilePath` (azure-import-export.md §1.3: relative to the drive
//!   root, backslashes, a leading `\`) reduced to plain segments that can never leave the root.
//!
//! This module does no I/O.

use std::fmt;
use std::path::{Path, PathBuf};

/// The name Azure gives the root container (azure-import-export.md §1.3).
pub const ROOT_CONTAINER: &str = "$root";
/// Longest blob name, in characters.
pub const MAX_BLOB_NAME_CHARS: usize = 1024;
/// Most path segments (`/`-separated parts) in a blob name.
pub const MAX_BLOB_NAME_SEGMENTS: usize = 254;
/// Longest single file name on the drive, in bytes (NTFS and ext4 both allow 255).
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Longest drive-relative path, in bytes (Linux `PATH_MAX` less room for the drive root).
pub const MAX_DRIVE_PATH_BYTES: usize = 3072;

/// A name that breaks one of the rules above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A container name outside 3–63 lowercase letters, digits and single inner hyphens.
    #[error("invalid container name {name:?}: {reason}")]
    Container {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A blob name that is empty, too long, has too many segments or a forbidden character.
    #[error("invalid blob name {name:?}: {reason}")]
    Blob {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A blob path without a `/` between container and blob name.
    #[error("blob path {path:?} has no container/blob separator")]
    NoContainer {
        /// The rejected path.
        path: String,
    },
}

/// Check a container name against Azure's rules (`$root` is accepted).
///
/// # Errors
/// [`NameError::Container`] naming the broken rule.
pub fn validate_container_name(name: &str) -> Result<(), NameError> {
    if name == ROOT_CONTAINER {
        return Ok(());
    }
    let fail = |reason| {
        Err(NameError::Container {
            name: name.to_string(),
            reason,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return fail("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("only lowercase letters, digits and hyphens are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return fail("must start and end with a letter or digit");
    }
    if name.contains("--") {
        return fail("hyphens must not be consecutive");
    }
    Ok(())
}

/// Check a blob name (the part after the container) against Azure's rules.
///
/// # Errors
/// [`NameError::Blob`] naming the broken rule.
pub fn validate_blob_name(name: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError::Blob {
            name: name.to_string(),
            reason,
        })
    };
    let chars = name.chars().count();
    if chars == 0 {
        return fail("must not be empty");
    }
    if chars > MAX_BLOB_NAME_CHARS {
        return fail("longer than 1024 characters");
    }
    if name.split('/').count() > MAX_BLOB_NAME_SEGMENTS {
        return fail("more than 254 path segments");
    }
    if name.chars().any(|c| c.is_control() || is_noncharacter(c)) {
        return fail("contains a control character or an invalid code point");
    }
    Ok(())
}

fn is_noncharacter(c: char) -> bool {
    let u = c as u32;
    (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE
}

/// A blob's address inside an account: container and blob name, written `container/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobPath {
    /// The container (`$root` for the root container).
    pub container: String,
    /// The blob name inside the container.
    pub name: String,
}

impl BlobPath {
    /// Split `container/name` and validate both halves.
    ///
    /// # Errors
    /// [`NameError::NoContainer`] without a `/`; otherwise the container or blob name error.
    pub fn parse(path: &str) -> Result<Self, NameError> {
        let (container, name) = path.split_once('/').ok_or_else(|| NameError::NoContainer {
            path: path.to_string(),
        })?;
        validate_container_name(container)?;
        validate_blob_name(name)?;
        Ok(BlobPath {
            container: container.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for BlobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container, self.name)
    }
}

/// A manifest `FilePath` that cannot name anything outside the drive root.
///
/// Built only by [`DrivePath::parse`], so every value is a non-empty list of plain segments with
/// no `..`, no drive letter, no NUL and no separator inside a segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrivePath {
    segments: Vec<String>,
}

/// Why a `FilePath` was refused; the import reports these as `FileNameInvalid` or
/// `FileNameTooLong` (azure-import-export.md §2.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing left after removing separators.
    #[error("file path {path:?} is empty")]
    Empty {
        /// The rejected path.
        path: String,
    },
    /// A `..` segment, which could climb out of the drive root.
    #[error("file path {path:?} has a '..' segment")]
    ParentSegment {
        /// The rejected path.
        path: String,
    },
    /// An absolute or rooted form other than a single leading separator: a UNC `\\server`, a
    /// drive letter `C:`, or any `:` (which also names NTFS alternate data streams).
    #[error("file path {path:?} is absolute or names another volume")]
    Absolute {
        /// The rejected path.
        path: String,
    },
    /// A NUL or other control character.
    #[error("file path {path:?} contains a control character")]
    ControlCharacter {
        /// The rejected path.
        path: String,
    },
    /// A segment over [`MAX_FILE_NAME_BYTES`] or a path over [`MAX_DRIVE_PATH_BYTES`].
    #[error("file path {path:?} is too long")]
    TooLong {
        /// The rejected path.
        path: String,
    },
}

impl PathError {
    /// True for [`PathError::TooLong`], which the drive log reports as `FileNameTooLong`
    /// rather than `FileNameInvalid`.
    pub fn is_too_long(&self) -> bool {
        matches!(self, PathError::TooLong { .. })
    }
}

impl DrivePath {
    /// Parse a manifest `FilePath`: `\` or `/` separate segments, one leading separator is
    /// allowed, empty and `.` segments are dropped.
    ///
    /// # Errors
    /// A [`PathError`] for `..` segments, UNC paths, drive letters or any `:`, control
    /// characters, over-long names, and paths with no segment left.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let owned = || path.to_string();
        if path.chars().any(|c| c.is_control()) {
            return Err(PathError::ControlCharacter { path: owned() });
        }
        if path.starts_with("\\\\") || path.starts_with("//") || path.contains(':') {
            return Err(PathError::Absolute { path: owned() });
        }
        if path.len() > MAX_DRIVE_PATH_BYTES {
            return Err(PathError::TooLong { path: owned() });
        }
        let mut segments = Vec::new();
        for seg in path.split(['\\', '/']) {
            match seg {
                "" | "." => {}
                ".." => return Err(PathError::ParentSegment { path: owned() }),
                s if s.len() > MAX_FILE_NAME_BYTES => {
                    return Err(PathError::TooLong { path: owned() })
                }
                s => segments.push(s.to_string()),
            }
        }
        if segments.is_empty() {
            return Err(PathError::Empty { path: owned() });
        }
        Ok(DrivePath { segments })
    }

    /// Build a path from segments that are already plain names (used when mapping blob names onto
    /// a drive); returns `None` if any segment is empty, `.`, `..`, or holds a separator, `:` or a
    /// control character.
    pub fn from_segments<I, S>(segments: I) -> Option<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        let plain = |s: &String| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.len() <= MAX_FILE_NAME_BYTES
                && !s.contains(['\\', '/', ':'])
                && !s.chars().any(|c| c.is_control())
        };
        (!segments.is_empty() && segments.iter().all(plain)).then_some(DrivePath { segments })
    }

    /// The plain segments, root first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path under `root` on this machine (`root/seg1/seg2/...`).
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        p.extend(&self.segments);
        p
    }

    /// The path relative to the drive root with `/` separators (`seg1/seg2`), for `openat`-style
    /// calls relative to a root directory.
    pub fn relative(&self) -> PathBuf {
        self.segments.iter().collect()
    }

    /// The manifest form: a leading `\` and `\` separators (`\pictures\bob\desert.jpg`).
    pub fn to_manifest_string(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            s.push('\\');
            s.push_str(seg);
        }
        s
    }
}

impl fmt::Display for DrivePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_manifest_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["abc", "a-b-c", "pictures", "0abc", &"a".repeat(63), "$root"] {
            assert_eq!(validate_container_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Abc",
            "a--b",
            "-abc",
            "abc-",
            "a_b",
            "a.b",
            "$logs",
            "",
        ] {
            assert!(validate_container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_names() {
        for ok in [
            "a",
            "a/b",
            "with space/ü.jpg",
            &"x".repeat(1024),
            &"a/".repeat(253).to_string(),
        ] {
            assert_eq!(validate_blob_name(ok), Ok(()), "{ok}");
        }
        let too_many = vec!["a"; 255].join("/");
        for bad in [
            "",
            &"x".repeat(1025),
            "a\u{0}b",
            "a\nb",
            &too_many,
            "a\u{FFFF}",
        ] {
            assert!(validate_blob_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blob_paths() {
        let p = BlobPath::parse("pictures/bob/wild/desert.jpg").unwrap();
        assert_eq!(
            (p.container.as_str(), p.name.as_str()),
            ("pictures", "bob/wild/desert.jpg")
        );
        assert_eq!(p.to_string(), "pictures/bob/wild/desert.jpg");
        assert!(BlobPath::parse("$root/logo.bmp").is_ok());
        assert!(matches!(
            BlobPath::parse("nocontainer"),
            Err(NameError::NoContainer { .. })
        ));
        assert!(matches!(
            BlobPath::parse("Bad/x"),
            Err(NameError::Container { .. })
        ));
        assert!(matches!(
            BlobPath::parse("good/"),
            Err(NameError::Blob { .. })
        ));
    }

    #[test]
    fn drive_paths_stay_under_the_root() {
        let p = DrivePath::parse(r"\pictures\bob\wild\desert.jpg").unwrap();
        assert_eq!(p.segments(), ["pictures", "bob", "wild", "desert.jpg"]);
        assert_eq!(p.to_manifest_string(), r"\pictures\bob\wild\desert.jpg");
        assert_eq!(
            DrivePath::parse("a/./b//c").unwrap().segments(),
            ["a", "b", "c"]
        );
        assert_eq!(
            p.under(Path::new("/mnt/d")),
            Path::new("/mnt/d/pictures/bob/wild/desert.jpg")
        );

        use PathError::*;
        let cases: &[(&str, fn(&PathError) -> bool)] = &[
            (r"\..\..\etc\passwd", |e| matches!(e, ParentSegment { .. })),
            ("a/../../b", |e| matches!(e, ParentSegment { .. })),
            ("..", |e| matches!(e, ParentSegment { .. })),
            (r"C:\Windows\x", |e| matches!(e, Absolute { .. })),
            (r"\\server\share\x", |e| matches!(e, Absolute { .. })),
            ("//server/x", |e| matches!(e, Absolute { .. })),
            ("file.txt:stream", |e| matches!(e, Absolute { .. })),
            ("a\0b", |e| matches!(e, ControlCharacter { .. })),
            (r"\", |e| matches!(e, Empty { .. })),
            ("", |e| matches!(e, Empty { .. })),
        ];
        for (input, check) in cases {
            let e = DrivePath::parse(input).unwrap_err();
            assert!(check(&e), "{input:?} gave {e:?}");
        }
        let long = "x".repeat(256);
        assert!(DrivePath::parse(&long).unwrap_err().is_too_long());
    }

    #[test]
    fn from_segments_refuses_unsafe_parts() {
        assert!(DrivePath::from_segments(["a", "b"]).is_some());
        for bad in [
            vec![".."],
            vec!["a/b"],
            vec![""],
            vec!["c:"],
            vec![],
            vec!["a\\b"],
        ] {
            assert!(DrivePath::from_segments(bad.clone()).is_none(), "{bad:?}");
        }
    }
}
