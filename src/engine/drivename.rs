//! Blob name → drive file name: the export's documented, deterministic mapping.
//!
//! Source: azure-import-export.md §5.6 ("the files mirror the blob paths … names NTFS cannot hold
//! are changed (no documented rule)") and §1.3 (`FilePath` "uses the blob path when it can; NTFS
//! limits may force a different name"). Export drives are NTFS; this crate also writes them on
//! Linux file systems, so the rule keeps every name valid on NTFS, FAT and ext4 at once.
//!
//! # The rule
//! A blob `container/a/b/c` becomes the file `\container\a\b\c`: the container is the first
//! directory and each `/`-separated segment of the blob name one more level. Each segment is
//! then mapped on its own ([`map_segment`]):
//! 1. the characters NTFS and FAT refuse (`< > : " \ | ? *` and U+0000–U+001F, U+007F) are
//!    written `%XX`, the upper-case hex of their UTF-8 byte;
//! 2. an empty segment (`a//b`, a leading `/`, a trailing `/`) becomes `%`, and the segments `.`
//!    and `..` become `%2E` and `%2E%2E` (so no blob name can climb out of the drive root);
//! 3. a trailing `.` or space (Windows drops them) is written `%2E` / `%20`;
//! 4. a reserved DOS device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, in
//!    any case, alone or before a `.`) gets its first character written `%XX`;
//! 5. a segment longer than [`MAX_SEGMENT_BYTES`] keeps its first bytes (cut at a character
//!    boundary) and ends in `~` and the first 16 hex digits of the MD5 of the whole mapped
//!    segment; the limit leaves room for ` (N)` and the `.properties` side file within 255 bytes.
//!
//! Then, over the whole drive ([`NameMap::assign`], blobs in sorted order): a file name that is
//! already taken, ignoring case (NTFS is case-insensitive), by an earlier file, a directory, a
//! side file (`<file>.properties`, `<file>.metadata`) or the drive manifest, gets ` (2)`, ` (3)`,
//! … before its last dot, as the import rename rule (§1.4). Directories are never renamed.
//!
//! A blob whose mapped path would still be longer than [`MAX_DRIVE_PATH_BYTES`] cannot be
//! exported (`FileNameTooLong`). Every mapped name is recorded: the drive manifest and the drive
//! log carry both `BlobPath` and `FilePath`, and the export sends a `FileNameMapped` warning.
//!
//! This module does no I/O.

use std::collections::{BTreeMap, HashSet};

use crate::digest::Md5Digest;
use crate::names::{BlobPath, DrivePath, MAX_DRIVE_PATH_BYTES};

/// Longest mapped segment, bytes: 255 less `.properties` (11) less room for ` (NNNNNN)`.
pub const MAX_SEGMENT_BYTES: usize = 232;
/// Suffixes of the side files written beside each exported file (azure-import-export.md §1.3).
pub const SIDE_SUFFIXES: [&str; 2] = [".properties", ".metadata"];
/// Most ` (N)` candidates tried for one name.
const MAX_SUFFIX: u32 = 100_000;

/// Characters that NTFS or FAT refuse in a name, besides control characters.
const FORBIDDEN: &[char] = &['<', '>', ':', '"', '\\', '|', '?', '*', '/'];

/// DOS device names Windows reserves, with or without an extension.
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn escape_char(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push('%');
        out.push_str(&format!("{b:02X}"));
    }
}

fn is_reserved(segment: &str) -> bool {
    let stem = segment.split('.').next().unwrap_or(segment);
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem))
}

/// Map one blob-name segment (or the container) to a file name by rules 1–5 of the module
/// docs. The result is never empty, `.` or `..`, has no separator, `:` or control character,
/// and is at most [`MAX_SEGMENT_BYTES`] bytes long.
pub fn map_segment(segment: &str) -> String {
    match segment {
        "" => return "%".to_string(),
        "." => return "%2E".to_string(),
        ".." => return "%2E%2E".to_string(),
        _ => {}
    }
    let mut out = String::with_capacity(segment.len());
    let count = segment.chars().count();
    for (i, c) in segment.chars().enumerate() {
        let last = i + 1 == count;
        let reserved_first = i == 0 && is_reserved(segment);
        if FORBIDDEN.contains(&c)
            || c.is_control()
            || (last && (c == '.' || c == ' '))
            || reserved_first
        {
            escape_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if out.len() > MAX_SEGMENT_BYTES {
        let tag = Md5Digest::of(out.as_bytes()).to_hex();
        let tag = tag.get(..16).unwrap_or(&tag);
        let mut cut = MAX_SEGMENT_BYTES - 17;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('~');
        out.push_str(tag);
    }
    out
}

/// The drive path of a blob by the per-segment rule, before conflicts are resolved.
///
/// # Errors
/// `None` when the mapped path is longer than [`MAX_DRIVE_PATH_BYTES`] (`FileNameTooLong`).
pub fn map_blob_path(blob: &BlobPath) -> Option<DrivePath> {
    let segments: Vec<String> = std::iter::once(map_segment(&blob.container))
        .chain(blob.name.split('/').map(map_segment))
        .collect();
    let total: usize = segments.iter().map(|s| s.len() + 1).sum();
    if total > MAX_DRIVE_PATH_BYTES {
        return None;
    }
    DrivePath::from_segments(segments)
}

/// The mapping of a whole drive's blobs to files, conflicts resolved.
#[derive(Debug, Default, Clone)]
pub struct NameMap {
    /// Case-folded full paths of files, side files and the manifest already taken.
    taken: HashSet<String>,
    /// Case-folded paths of every directory in use.
    dirs: HashSet<String>,
}

fn fold(segments: &[String]) -> String {
    segments.join("\\").to_lowercase()
}

/// Insert ` (n)` before the last dot of `name` (after the whole name without a dot), §1.4.
fn with_suffix(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

impl NameMap {
    /// A map with `reserved` root-level file names already taken (the drive manifest).
    pub fn new(reserved: &[&str]) -> Self {
        let mut map = NameMap::default();
        for r in reserved {
            map.taken.insert(r.to_lowercase());
        }
        map
    }

    /// Map every blob (give them in the export order) and resolve conflicts; the result is in
    /// the same order, `None` for a blob whose path is too long.
    pub fn assign(&mut self, blobs: &[BlobPath]) -> Vec<Option<DrivePath>> {
        let mapped: Vec<Option<DrivePath>> = blobs.iter().map(map_blob_path).collect();
        // Every directory any file needs, first, so that no file takes a directory's name.
        for path in mapped.iter().flatten() {
            let segs = path.segments();
            for depth in 1..segs.len() {
                self.dirs.insert(fold(&segs[..depth]));
            }
        }
        mapped
            .into_iter()
            .map(|p| p.and_then(|p| self.claim(p)))
            .collect()
    }

    fn free(&self, segments: &[String]) -> bool {
        let key = fold(segments);
        !self.taken.contains(&key)
            && !self.dirs.contains(&key)
            && SIDE_SUFFIXES.iter().all(|s| {
                let side = format!("{key}{s}");
                !self.taken.contains(&side) && !self.dirs.contains(&side)
            })
    }

    fn claim(&mut self, path: DrivePath) -> Option<DrivePath> {
        let segs = path.segments().to_vec();
        let (last, parent) = segs.split_last()?;
        let mut candidate = segs.clone();
        let mut n = 1;
        while !self.free(&candidate) {
            n += 1;
            if n > MAX_SUFFIX {
                return None;
            }
            let mut c = parent.to_vec();
            c.push(with_suffix(last, n));
            candidate = c;
        }
        let key = fold(&candidate);
        for s in SIDE_SUFFIXES {
            self.taken.insert(format!("{key}{s}"));
        }
        self.taken.insert(key);
        DrivePath::from_segments(candidate)
    }
}

/// The mappings that changed a name: blob path → file path (for the `FileNameMapped` record).
pub fn changed(blobs: &[BlobPath], files: &[Option<DrivePath>]) -> BTreeMap<String, String> {
    blobs
        .iter()
        .zip(files)
        .filter_map(|(b, f)| {
            let f = f.as_ref()?;
            let plain = format!("\\{}\\{}", b.container, b.name.replace('/', "\\"));
            (f.to_manifest_string() != plain).then(|| (b.to_string(), f.to_manifest_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(s: &str) -> BlobPath {
        BlobPath::parse(s).unwrap()
    }

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(
            map_blob_path(&bp("pictures/bob/wild/desert.jpg"))
                .unwrap()
                .to_manifest_string(),
            r"\pictures\bob\wild\desert.jpg"
        );
        assert_eq!(map_segment("héllo wörld.txt"), "héllo wörld.txt");
        assert_eq!(map_segment("$root"), "$root");
    }

    #[test]
    fn unsafe_segments_cannot_climb_or_root() {
        let up = map_blob_path(&bp("c1c/../../x")).unwrap();
        assert_eq!(up.segments(), ["c1c", "%2E%2E", "%2E%2E", "x"]);
        let mid = map_blob_path(&bp("c1c/a/../../b")).unwrap();
        assert_eq!(mid.segments(), ["c1c", "a", "%2E%2E", "%2E%2E", "b"]);
        let abs = map_blob_path(&bp("c1c//abs")).unwrap();
        assert_eq!(abs.segments(), ["c1c", "%", "abs"]);
        let win = map_blob_path(&bp(r"c1c/C:\x")).unwrap();
        assert_eq!(win.segments(), ["c1c", "C%3A%5Cx"]);
        assert_eq!(map_segment("."), "%2E");
    }

    #[test]
    fn ntfs_rules() {
        assert_eq!(map_segment("a<b>c|d?e*f\"g"), "a%3Cb%3Ec%7Cd%3Fe%2Af%22g");
        assert_eq!(map_segment("trailing. "), "trailing.%20");
        assert_eq!(map_segment("dots.."), "dots.%2E");
        assert_eq!(map_segment("con"), "%63on");
        assert_eq!(map_segment("Lpt1.txt"), "%4Cpt1.txt");
        assert_eq!(map_segment("console"), "console");
        assert_eq!(map_segment("a\u{7f}b"), "a%7Fb");
    }

    #[test]
    fn long_segments_are_cut_deterministically() {
        let long = "é".repeat(300);
        let a = map_segment(&long);
        assert!(a.len() <= MAX_SEGMENT_BYTES, "{}", a.len());
        assert_eq!(a, map_segment(&long));
        let other = format!("{}x", "é".repeat(299));
        assert_ne!(a, map_segment(&other));
        assert!(a.contains('~'));
    }

    #[test]
    fn conflicts_get_suffixes() {
        let blobs = [
            bp("c1c/a"),
            bp("c1c/a/b"),
            bp("c1c/A/c.txt"),
            bp("c1c/X.txt"),
            bp("c1c/x.txt"),
            bp("c1c/x.txt.properties"),
            bp("c1c/x.txt.properties "),
        ];
        let mut map = NameMap::new(&["D1.manifest"]);
        let files = map.assign(&blobs);
        let s: Vec<String> = files
            .iter()
            .map(|f| f.as_ref().unwrap().to_manifest_string())
            .collect();
        assert_eq!(
            s,
            [
                r"\c1c\a (2)",
                r"\c1c\a\b",
                r"\c1c\A\c.txt",
                r"\c1c\X.txt",
                r"\c1c\x (2).txt",
                r"\c1c\x.txt (2).properties",
                r"\c1c\x.txt.properties%20",
            ]
        );
        let ch = changed(&blobs, &files);
        assert!(ch.contains_key("c1c/a"));
        assert!(!ch.contains_key("c1c/a/b"));
        // The manifest name is reserved at the root.
        let mut map = NameMap::new(&["c1c"]);
        let f = map.assign(&[bp("c1c/z")]);
        assert_eq!(f[0].as_ref().unwrap().to_manifest_string(), r"\c1c\z");
    }
}
