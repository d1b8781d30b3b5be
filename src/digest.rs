//! MD5 digests and their two text encodings: Base16 (the manifest and drive log `Hash`
//! attributes) and Base64 (Put Block ids, `Content-MD5` in properties files and HTTP headers).
//!
//! Source: the manifest and log format docs (azure-import-export.md §0, §1.5): hashes are
//! "Base16 (hex) MD5", written in uppercase; readers accept either case and surrounding spaces
//! (§7, the verbose log sample has `Hash=" 9C8A…"`).

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5_many::{Digest as _, Md5};

/// A 16-byte MD5 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Md5Digest(pub [u8; 16]);

/// A string that is not a valid encoding of an MD5 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not 32 hexadecimal digits (after trimming surrounding whitespace).
    #[error("{value:?} is not a 32-digit hexadecimal MD5")]
    BadHex {
        /// The rejected text.
        value: String,
    },
    /// Not Base64 of exactly 16 bytes.
    #[error("{value:?} is not a Base64-encoded 16-byte MD5")]
    BadBase64 {
        /// The rejected text.
        value: String,
    },
}

impl Md5Digest {
    /// The MD5 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Md5Digest(Md5::digest(data).into())
    }

    /// Parse Base16 text: 32 hex digits of either case, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`DigestError::BadHex`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, DigestError> {
        let t = text.trim();
        let bad = || DigestError::BadHex {
            value: text.to_string(),
        };
        if t.len() != 32 || !t.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in t.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Md5Digest(out))
    }

    /// Uppercase Base16, as every Azure sample writes it (32 characters).
    pub fn to_hex(&self) -> String {
        upper_hex(&self.0)
    }

    /// Parse standard Base64 of exactly 16 bytes, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`DigestError::BadBase64`] for anything else.
    pub fn from_base64(text: &str) -> Result<Self, DigestError> {
        let bad = || DigestError::BadBase64 {
            value: text.to_string(),
        };
        let bytes = B64.decode(text.trim()).map_err(|_| bad())?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| bad())?;
        Ok(Md5Digest(arr))
    }

    /// Standard Base64 (24 characters), the `Content-MD5` form.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

/// Uppercase Base16 of any byte string.
pub fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Md5Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Md5Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5Digest({})", self.to_hex())
    }
}

impl std::str::FromStr for Md5Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Md5Digest::from_hex(s)
    }
}

impl serde::Serialize for Md5Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Md5Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Md5Digest::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_tolerance() {
        let d = Md5Digest::of(b"abc");
        assert_eq!(d.to_hex(), "900150983CD24FB0D6963F7D28E17F72");
        for text in [
            "900150983CD24FB0D6963F7D28E17F72",
            "900150983cd24fb0d6963f7d28e17f72",
            " 900150983CD24FB0D6963F7D28E17F72 ",
        ] {
            assert_eq!(Md5Digest::from_hex(text).unwrap(), d);
        }
        for bad in [
            "",
            "900150983CD24FB0D6963F7D28E17F7",
            "900150983CD24FB0D6963F7D28E17F7G",
            "ü0150983CD24FB0D6963F7D28E17F7",
        ] {
            assert!(Md5Digest::from_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base64_matches_the_tool_block_id_sample() {
        // azure-import-export.md §1.5: Id "MD5/cAzn4h7VVSWXf696qp5Uaw==" has Hash 700CE7E2….
        let d = Md5Digest::from_base64("cAzn4h7VVSWXf696qp5Uaw==").unwrap();
        assert_eq!(d.to_hex(), "700CE7E21ED55525977FAF7AAA9E546B");
        assert_eq!(d.to_base64(), "cAzn4h7VVSWXf696qp5Uaw==");
        assert!(Md5Digest::from_base64("AAAAAA==").is_err());
    }
}
