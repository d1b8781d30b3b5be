//! The import disposition's rename rule (azure-import-export.md §1.4).
//!
//! When a blob already exists and the disposition is `rename`, the service tries `name (2)`,
//! `name (3)`, ... until a name is free. With a dot in the last path segment, the counter goes
//! before the last dot (`Seattle (2).jpg`); without one it is appended (`BlobNameWithoutDot (2)`).
//! Every documented example has a space before the parenthesis, so we write `" (N)"`.

/// The `n`-th rename candidate of blob name `name` (`n` ≥ 2), e.g. `a/Seattle.jpg`, 2 →
/// `a/Seattle (2).jpg`.
///
/// Only a dot in the last `/`-separated segment counts, and a leading dot (a hidden-file name such as
/// `.profile`) is not an extension.
pub fn rename_candidate(name: &str, n: u32) -> String {
    let segment_start = name.rfind('/').map_or(0, |i| i + 1);
    let last = &name[segment_start..];
    match last.rfind('.') {
        Some(dot) if dot > 0 => {
            let at = segment_start + dot;
            format!("{} ({n}){}", &name[..at], &name[at..])
        }
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        assert_eq!(rename_candidate("Seattle.jpg", 2), "Seattle (2).jpg");
        assert_eq!(rename_candidate("Seattle.jpg", 3), "Seattle (3).jpg");
        assert_eq!(
            rename_candidate("BlobNameWithoutDot", 2),
            "BlobNameWithoutDot (2)"
        );
    }

    #[test]
    fn only_the_last_segment_and_last_dot_count() {
        assert_eq!(rename_candidate("a.b/c", 2), "a.b/c (2)");
        assert_eq!(
            rename_candidate("x/archive.tar.gz", 2),
            "x/archive.tar (2).gz"
        );
        assert_eq!(rename_candidate("x/.profile", 2), "x/.profile (2)");
        assert_eq!(rename_candidate("x/name.", 4), "x/name (4).");
    }
}
