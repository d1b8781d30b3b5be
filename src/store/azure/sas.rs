//! Account SAS signing with an account key (HMAC-SHA256): the one credential the official SDK
//! cannot build itself (azure-sdk-notes.md §1 "`azure_storage_sas` ... cannot sign with an account
//! key", §7 the working signer).
//!
//! This module owns the string-to-sign and the query string of an account SAS. It must not log,
//! and it never returns the key; the signed query is itself a [`Secret`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::credential::Secret;

/// The service version the signature is computed for (`sv`). 2022-11-02 is accepted by Azure
/// and by Azurite 3.35 (azure-sdk-notes.md §7); it is independent of the `x-ms-version` of
/// requests.
pub const SAS_VERSION: &str = "2022-11-02";

/// Account SAS permissions, in the canonical order Azure (and Azurite, which re-canonicalizes
/// before checking) expects (azure-sdk-notes.md §8 item 9): read, write, delete, list, add,
/// create, update, process.
pub const ACCOUNT_PERMISSIONS: &str = "rwdlacup";

/// Errors of signing.
#[derive(Debug, thiserror::Error)]
pub enum SasError {
    /// The account key is not standard Base64.
    #[error("the account key of {account} is not base64")]
    KeyNotBase64 {
        /// The account.
        account: String,
    },
    /// A time could not be formatted (out of range).
    #[error("cannot format the sas validity time")]
    Time,
}

/// Sign an account SAS (`ss=b`, `srt=sco`, all blob permissions) valid from `start` to `expiry`
/// (UTC, seconds resolution) for `account` with the Base64 `key`. `https_only` signs `spr=https`,
/// otherwise `spr=https,http` (an emulator on plain HTTP).
///
/// Returns the query string without a leading `?`. String-to-sign for sv ≥ 2020-12-06
/// (Create an account SAS, "Version 2020-12-06 and later"): `account\nsp\nss\nsrt\nst\nse\nsip\n
/// spr\nsv\nses\n` — note the encryption-scope line and the trailing newline
/// (azure-sdk-notes.md §7, §8 item 9).
///
/// # Errors
/// [`SasError::KeyNotBase64`]; [`SasError::Time`] for an unformattable time.
pub fn account_sas(
    account: &str,
    key: &Secret,
    start: OffsetDateTime,
    expiry: OffsetDateTime,
    https_only: bool,
) -> Result<Secret, SasError> {
    let key = B64
        .decode(key.expose().trim())
        .map_err(|_| SasError::KeyNotBase64 {
            account: account.to_string(),
        })?;
    let st = format_time(start)?;
    let se = format_time(expiry)?;
    let spr = if https_only { "https" } else { "https,http" };
    let sp = ACCOUNT_PERMISSIONS;
    let sv = SAS_VERSION;
    let to_sign = format!("{account}\n{sp}\nb\nsco\n{st}\n{se}\n\n{spr}\n{sv}\n\n");
    // HMAC accepts a key of any length; the error branch cannot happen but is not unwrapped.
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| SasError::KeyNotBase64 {
            account: account.to_string(),
        })?;
    mac.update(to_sign.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    Ok(Secret::new(format!(
        "sv={sv}&ss=b&srt=sco&sp={sp}&st={}&se={}&spr={}&sig={}",
        query_escape(&st),
        query_escape(&se),
        query_escape(spr),
        query_escape(&sig)
    )))
}

fn format_time(t: OffsetDateTime) -> Result<String, SasError> {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| SasError::Time)?;
    t.format(&Rfc3339).map_err(|_| SasError::Time)
}

/// Percent-encode the characters of Base64 and RFC 3339 times that are special in a query.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            ':' => out.push_str("%3A"),
            ',' => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Azurite's well-known development key (public, documented by Microsoft).
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn signs_the_documented_string() {
        let key = Secret::new(DEV_KEY.to_string());
        let start = datetime!(2026-01-01 00:00:00 UTC);
        let expiry = datetime!(2026-01-02 00:00:00.5 UTC);
        let sas = account_sas("devstoreaccount1", &key, start, expiry, false).unwrap();
        let q = sas.expose();
        assert!(q.starts_with("sv=2022-11-02&ss=b&srt=sco&sp=rwdlacup&st=2026-01-01T00%3A00%3A00Z&se=2026-01-02T00%3A00%3A00Z&spr=https%2Chttp&sig="), "{q}");
        // The signature is the HMAC of the string-to-sign, recomputed independently here.
        let sts = "devstoreaccount1\nrwdlacup\nb\nsco\n2026-01-01T00:00:00Z\n2026-01-02T00:00:00Z\n\nhttps,http\n2022-11-02\n\n";
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&B64.decode(DEV_KEY).unwrap()).unwrap();
        mac.update(sts.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        assert!(q.ends_with(&format!("sig={}", query_escape(&sig))));
        let https = account_sas("a", &key, start, expiry, true).unwrap();
        assert!(https.expose().contains("&spr=https&"));
        assert!(matches!(
            account_sas("a", &Secret::new("!!".into()), start, expiry, true),
            Err(SasError::KeyNotBase64 { .. })
        ));
    }
}
