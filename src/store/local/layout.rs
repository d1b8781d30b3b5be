//! Where [`super::LocalStore`] keeps things: the mapping from blob names to data-file paths, and
//! the fixed places of the hidden sidecar tree.
//!
//! This module owns the naming rules only; it creates nothing (the caller makes directories and
//! renames) and reads the file system only to test what already occupies a candidate path.
//!
//! The rules are documented in the parent module's `# Layout` section (they are part of the
//! store's public format).

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Md5Digest;

/// The hidden sidecar directory under the store root.
pub(crate) const SIDECAR_DIR: &str = ".drivecopy";
/// Longest encoded segment before shortening, in bytes: 255 (ext4, NTFS) less room for `%+NN`.
pub(crate) const MAX_ENCODED_SEGMENT_BYTES: usize = 250;
/// Most alternates tried for one segment before giving up.
pub(crate) const MAX_ALTERNATES: u32 = 64;
/// Longest absolute data-file path in bytes before the flat fallback (under Linux `PATH_MAX`).
pub(crate) const MAX_DATA_PATH_BYTES: usize = 4000;

/// Encode one blob-name segment as a file name (see the module docs).
pub(crate) fn encode_segment(seg: &str) -> String {
    match seg {
        "" => return "%".to_string(),
        "." => return "%2E".to_string(),
        ".." => return "%2E%2E".to_string(),
        _ => {}
    }
    let escaped = seg.replace('%', "%25");
    if escaped.len() <= MAX_ENCODED_SEGMENT_BYTES {
        return escaped;
    }
    let hash = Md5Digest::of(seg.as_bytes()).to_hex();
    let budget = MAX_ENCODED_SEGMENT_BYTES - 2 - hash.len();
    let mut cut = budget;
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}%~{hash}", &escaped[..cut])
}

/// The uppercase hex MD5 of a blob name: the key of its record and staging area.
pub(crate) fn name_key(name: &str) -> String {
    Md5Digest::of(name.as_bytes()).to_hex()
}

/// The natural data path (relative to the root, `/`-separated) of a blob: every segment at its
/// plain encoding, no alternate, not flat. `None` when a segment had to be shortened, since such
/// a path does not decode back to its name ([`decode_natural`]). The path may be taken by
/// something else: the writer's [`choose_data_path`] decides where a blob goes.
pub(crate) fn natural_rel(container: &str, name: &str) -> Option<String> {
    let mut rel = container.to_string();
    for seg in name.split('/') {
        let enc = encode_segment(seg);
        if enc.contains("%~") {
            return None;
        }
        rel.push('/');
        rel.push_str(&enc);
    }
    Some(rel)
}

/// The blob name whose [`natural_rel`] is `container/<segments>`, given the segments below the
/// container directory; `None` for a path no blob name maps to naturally (an alternate `%+N`, a
/// shortened segment `%~`, the flat directory, a temporary file).
pub(crate) fn decode_natural<'a>(segments: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut name = String::new();
    for (i, seg) in segments.into_iter().enumerate() {
        if i > 0 {
            name.push('/');
        }
        let plain = match seg {
            "%" => String::new(),
            "%2E" => ".".to_string(),
            "%2E%2E" => "..".to_string(),
            _ => seg.replace("%25", "%"),
        };
        // Only the plain encoding decodes: this refuses `%+N`, `%~`, `.%tmp.…` and stray `%`.
        if encode_segment(&plain) != seg {
            return None;
        }
        name.push_str(&plain);
    }
    Some(name)
}

/// Relative path (from the root) of a blob's sidecar record.
pub(crate) fn record_rel(container: &str, name: &str) -> PathBuf {
    let key = name_key(name);
    [
        SIDECAR_DIR,
        "blobs",
        container,
        &key[..2],
        &format!("{key}.json"),
    ]
    .iter()
    .collect()
}

/// Relative path (from the root) of the directory holding all records of a container.
pub(crate) fn records_dir_rel(container: &str) -> PathBuf {
    [SIDECAR_DIR, "blobs", container].iter().collect()
}

/// Relative path (from the root) of a blob's staging directory.
pub(crate) fn staging_rel(container: &str, name: &str) -> PathBuf {
    [SIDECAR_DIR, "staging", container, &name_key(name)]
        .iter()
        .collect()
}

/// Relative path (from the root) of the temporary-file directory.
pub(crate) fn tmp_rel() -> PathBuf {
    [SIDECAR_DIR, "tmp"].iter().collect()
}

/// What occupies a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupant {
    Nothing,
    File,
    Dir,
    Other,
}

fn occupant(path: &Path) -> io::Result<Occupant> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(Occupant::Dir),
        Ok(m) if m.is_file() => Ok(Occupant::File),
        Ok(_) => Ok(Occupant::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Occupant::Nothing),
        Err(e) => Err(e),
    }
}

/// Choose the data-file path (relative to `root`, `/`-separated) for a new blob, looking at what
/// exists now. Creates nothing.
///
/// # Errors
/// I/O errors from `lstat`; [`io::ErrorKind::AlreadyExists`] when every alternate is taken.
pub(crate) fn choose_data_path(root: &Path, container: &str, name: &str) -> io::Result<String> {
    let segments: Vec<String> = name.split('/').map(encode_segment).collect();
    let natural_len = root.as_os_str().len()
        + container.len()
        + segments.iter().map(|s| s.len() + 1 + 4).sum::<usize>()
        + 1;
    if natural_len > MAX_DATA_PATH_BYTES {
        let key = name_key(name);
        return Ok(format!("{container}/%~/{}/{key}", &key[..2]));
    }
    let mut rel = container.to_string();
    let last = segments.len().saturating_sub(1);
    for (i, enc) in segments.iter().enumerate() {
        let want_dir = i < last;
        let mut chosen = None;
        for n in 0..=MAX_ALTERNATES {
            let candidate = if n == 0 {
                enc.clone()
            } else {
                format!("{enc}%+{n}")
            };
            let occ = occupant(&root.join(&rel).join(&candidate))?;
            let fits = match occ {
                Occupant::Nothing => true,
                Occupant::Dir => want_dir,
                Occupant::File => !want_dir,
                Occupant::Other => false,
            };
            if fits {
                chosen = Some(candidate);
                break;
            }
        }
        let Some(seg) = chosen else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "every alternate name is taken",
            ));
        };
        rel.push('/');
        rel.push_str(&seg);
    }
    Ok(rel)
}

/// Percent-encode an absolute path as a `file://` URL (RFC 8089): bytes other than unreserved
/// characters and `/` become `%XX`.
pub(crate) fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&crate::digest::upper_hex(&[b]));
        }
    }
    out
}

/// Decode `%XX` escapes (used for `file://` URLs); `None` for a bad escape.
pub(crate) fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_segments_stay_readable() {
        for s in [
            "desert.jpg",
            "with space",
            "a\\b",
            "c:d",
            "*?",
            "ü€😀",
            ".hidden",
            "...",
        ] {
            assert_eq!(encode_segment(s), s);
        }
    }

    #[test]
    fn special_segments_are_escaped_and_distinct() {
        let inputs = ["", ".", "..", "%", "%25", "%2E", "%~", "%+1", "a%+1"];
        let encoded: Vec<String> = inputs.iter().map(|s| encode_segment(s)).collect();
        assert_eq!(encoded[0], "%");
        assert_eq!(encoded[1], "%2E");
        assert_eq!(encoded[2], "%2E%2E");
        assert_eq!(encoded[3], "%25");
        let mut unique = encoded.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), inputs.len(), "{encoded:?}");
        for e in &encoded {
            assert!(!e.contains('/') && e != "." && e != ".." && !e.is_empty());
        }
    }

    #[test]
    fn long_segments_are_shortened_with_a_hash() {
        let a = "é".repeat(200); // 400 bytes
        let b = format!("{}x", "é".repeat(199));
        let (ea, eb) = (encode_segment(&a), encode_segment(&b));
        assert!(ea.len() <= MAX_ENCODED_SEGMENT_BYTES && eb.len() <= MAX_ENCODED_SEGMENT_BYTES);
        assert_ne!(ea, eb);
        assert!(ea.contains("%~"));
        assert_eq!(encode_segment(&"x".repeat(250)), "x".repeat(250));
    }

    #[test]
    fn collisions_take_alternates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("c1c/a/b")).unwrap();
        std::fs::write(root.join("c1c/f"), b"x").unwrap();
        // `a` is a directory, so blob `a` takes `a%+1`; blob `a/x` may use directory `a`.
        assert_eq!(choose_data_path(root, "c1c", "a").unwrap(), "c1c/a%+1");
        assert_eq!(choose_data_path(root, "c1c", "a/x").unwrap(), "c1c/a/x");
        // `f` is a file, so blob `f/g` needs directory `f%+1`; blob `f` may replace its file.
        assert_eq!(choose_data_path(root, "c1c", "f/g").unwrap(), "c1c/f%+1/g");
        assert_eq!(choose_data_path(root, "c1c", "f").unwrap(), "c1c/f");
        assert_eq!(
            choose_data_path(root, "c1c", "../x").unwrap(),
            "c1c/%2E%2E/x"
        );
        let huge = vec!["😀".repeat(63); 16].join("/");
        let flat = choose_data_path(root, "c1c", &huge).unwrap();
        assert!(flat.starts_with("c1c/%~/"), "{flat}");
    }

    #[test]
    fn natural_paths_decode_to_their_names_and_nothing_else_does() {
        for name in [
            "a",
            "a/b",
            "dir/x.txt",
            "",
            "/",
            "a//b/",
            ".",
            "../x",
            "%",
            "%25/%2E",
            "ü 😀",
        ] {
            let rel = natural_rel("c1c", name).expect("natural");
            let below = rel.strip_prefix("c1c/").expect("container");
            assert_eq!(
                decode_natural(below.split('/')).as_deref(),
                Some(name),
                "{rel}"
            );
        }
        assert_eq!(natural_rel("c1c", &"x".repeat(300)), None);
        for taken in ["a%+1", "%~", ".%tmp.1-2-3", "a%", "%2e", "%41"] {
            assert_eq!(decode_natural([taken]), None, "{taken}");
        }
        assert_eq!(decode_natural(["a%+1", "b"]), None);
    }

    #[test]
    fn file_urls_escape_and_decode() {
        let url = file_url(Path::new("/tmp/a b/ü%"));
        assert_eq!(url, "file:///tmp/a%20b/%C3%BC%25");
        assert_eq!(
            percent_decode(&url["file://".len()..]).unwrap(),
            "/tmp/a b/ü%".as_bytes()
        );
        assert_eq!(percent_decode("%G1"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
