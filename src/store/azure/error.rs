//! Mapping of Azure SDK errors (HTTP status, `x-ms-error-code`, transport failures) onto the
//! shared [`StoreError`] vocabulary (the table on [`StoreError`]; style.md §6 item 2), and the
//! redaction of every text that could carry a SAS signature.
//!
//! This module owns that mapping. It must not retry or decide retry policy (that is
//! `store::retry`); it only says what happened.

use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, RETRY_AFTER};

use crate::digest::Md5Digest;
use crate::store::StoreError;

/// The operation that failed: some codes mean different things per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Create or list containers.
    Container,
    /// Put Block.
    Stage,
    /// Put Block List, Put Blob, create page blob: writes that create a blob version.
    Create,
    /// Put Page, Get Page Ranges: need a page blob.
    Pages,
    /// Anything else (reads, properties, metadata, listing, delete).
    Other,
}

/// What the failed request carried that the mapping needs.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// `container/name` or the container.
    pub path: &'a str,
    /// The operation.
    pub op: Op,
    /// The transactional MD5 sent and the bytes it covered.
    pub md5: Option<(Md5Digest, &'a [u8])>,
    /// The request had `If-Match`.
    pub if_match: bool,
    /// The request had `If-None-Match: *`.
    pub if_none_match: bool,
}

impl<'a> Ctx<'a> {
    /// A context with no MD5 and no condition.
    pub fn new(path: &'a str, op: Op) -> Self {
        Ctx {
            path,
            op,
            md5: None,
            if_match: false,
            if_none_match: false,
        }
    }
}

/// An error text with every SAS signature replaced by `<redacted>`; the cause of
/// [`StoreError::Connection`] and [`StoreError::Other`] from this backend.
#[derive(Debug)]
pub struct RedactedError(String);

impl RedactedError {
    /// Render `error` and its whole source chain, redacted.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        RedactedError(redact(&text))
    }

    /// A redacted message.
    pub fn msg(text: &str) -> Self {
        RedactedError(redact(text))
    }
}

impl fmt::Display for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedactedError {}

/// Replace the value of every `sig=` query parameter (case-insensitive) with `<redacted>`.
pub fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0usize;
    let mut from = 0usize;
    while let Some(found) = lower.get(from..).and_then(|s| s.find("sig=")) {
        let start = from + found + 4;
        let value_len = text
            .get(start..)
            .map(|s| {
                s.find(|c: char| c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace())
                    .unwrap_or(s.len())
            })
            .unwrap_or(0);
        out.push_str(text.get(rest..start).unwrap_or_default());
        out.push_str("<redacted>");
        rest = start + value_len;
        from = rest.max(start);
    }
    out.push_str(text.get(rest..).unwrap_or_default());
    out
}

/// The `x-ms-error-code` of a service error, if it is one.
pub(crate) fn code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// Parse `Retry-After` (delta seconds) or `x-ms-retry-after-ms` / `retry-after-ms`.
fn retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(ms) = headers
            .get_optional_str(&HeaderName::from_static(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    headers
        .get_optional_str(&RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Map an SDK error onto [`StoreError`].
pub(crate) fn map(e: azure_core::Error, ctx: Ctx<'_>) -> StoreError {
    let path = ctx.path.to_string();
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let status = u16::from(*status);
            let code = error_code.clone().unwrap_or_default();
            let body = raw_response
                .as_ref()
                .map(|r| String::from_utf8_lossy(r.body().as_ref()).into_owned())
                .unwrap_or_default();
            let retry = raw_response.as_ref().and_then(|r| retry_after(r.headers()));
            map_status(status, &code, &body, retry, ctx)
        }
        ErrorKind::Connection | ErrorKind::Io => {
            let timeout = e
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout);
            if timeout {
                StoreError::Timeout { path }
            } else {
                StoreError::Connection {
                    path,
                    source: Box::new(RedactedError::from_error(&e)),
                }
            }
        }
        ErrorKind::Credential => StoreError::PermissionDenied {
            path,
            source: Some(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                RedactedError::from_error(&e),
            )),
        },
        _ => StoreError::Other {
            path,
            backend: "azure",
            source: Box::new(RedactedError::from_error(&e)),
        },
    }
}

/// The status-and-code table.
pub(crate) fn map_status(
    status: u16,
    code: &str,
    body: &str,
    retry: Option<Duration>,
    ctx: Ctx<'_>,
) -> StoreError {
    let path = ctx.path.to_string();
    let message = body
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(m, _)| m.lines().next().unwrap_or_default().trim())
        .filter(|m| !m.is_empty());
    let reason = || {
        let mut text = format!("status {status}");
        if !code.is_empty() {
            text.push(' ');
            text.push_str(code);
        }
        if let Some(m) = message {
            text.push_str(": ");
            text.push_str(&redact(m));
        }
        text
    };
    match status {
        400 => {
            let md5_text = body.to_ascii_lowercase().contains("md5");
            let md5_code = code == "Md5Mismatch" || (code == "InvalidOperation" && md5_text);
            match (md5_code, ctx.md5) {
                (true, Some((expected, data))) => StoreError::Md5Mismatch {
                    path,
                    expected,
                    actual: Md5Digest::of(data),
                },
                _ if matches!(code, "InvalidBlockList" | "BlockListTooLong")
                    && ctx.op == Op::Create =>
                {
                    StoreError::InvalidBlockList {
                        path,
                        reason: reason(),
                    }
                }
                _ => StoreError::InvalidInput {
                    path,
                    reason: reason(),
                },
            }
        }
        403 => StoreError::PermissionDenied {
            path,
            source: Some(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                reason(),
            )),
        },
        404 if ctx.if_match && ctx.op == Op::Create && code != "ContainerNotFound" => {
            StoreError::ConditionNotMet { path }
        }
        404 if code == "ContainerNotFound" => StoreError::NotFound {
            path: path.split('/').next().unwrap_or_default().to_string(),
        },
        404 => StoreError::NotFound { path },
        409 => match (code, ctx.op) {
            ("BlobAlreadyExists", _) => StoreError::AlreadyExists { path },
            ("InvalidBlobType", Op::Create) => StoreError::AlreadyExists { path },
            ("InvalidBlobType", _) => StoreError::InvalidInput {
                path,
                reason: "the blob has the other type".to_string(),
            },
            _ => StoreError::Other {
                path,
                backend: "azure",
                source: Box::new(RedactedError::msg(&reason())),
            },
        },
        412 if ctx.if_none_match => StoreError::AlreadyExists { path },
        412 => StoreError::ConditionNotMet { path },
        416 => StoreError::InvalidInput {
            path,
            reason: reason(),
        },
        408 => StoreError::Timeout { path },
        500 if code == "OperationTimedOut" => StoreError::Timeout { path },
        429 => StoreError::Throttled {
            path,
            retry_after: retry,
        },
        503 if code == "ServerBusy" || code.ends_with("OverAccountLimit") || retry.is_some() => {
            StoreError::Throttled {
                path,
                retry_after: retry,
            }
        }
        500..=599 => StoreError::Server {
            path,
            status,
            code: (!code.is_empty()).then(|| code.to_string()),
        },
        _ => StoreError::Other {
            path,
            backend: "azure",
            source: Box::new(RedactedError::msg(&reason())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(status: u16, code: &str, op: Op) -> StoreError {
        map_status(status, code, "", None, Ctx::new("c/b", op))
    }

    #[test]
    fn table() {
        assert!(matches!(
            m(403, "AuthorizationFailure", Op::Other),
            StoreError::PermissionDenied { .. }
        ));
        assert!(
            matches!(m(404, "BlobNotFound", Op::Other), StoreError::NotFound { path } if path == "c/b")
        );
        assert!(
            matches!(m(404, "ContainerNotFound", Op::Create), StoreError::NotFound { path } if path == "c")
        );
        assert!(matches!(
            m(409, "BlobAlreadyExists", Op::Create),
            StoreError::AlreadyExists { .. }
        ));
        assert!(matches!(
            m(409, "InvalidBlobType", Op::Create),
            StoreError::AlreadyExists { .. }
        ));
        assert!(matches!(
            m(409, "InvalidBlobType", Op::Pages),
            StoreError::InvalidInput { .. }
        ));
        assert!(matches!(
            m(412, "ConditionNotMet", Op::Create),
            StoreError::ConditionNotMet { .. }
        ));
        assert!(matches!(
            m(400, "InvalidBlockList", Op::Create),
            StoreError::InvalidBlockList { .. }
        ));
        assert!(matches!(
            m(400, "InvalidHeaderValue", Op::Stage),
            StoreError::InvalidInput { .. }
        ));
        assert!(matches!(
            m(416, "InvalidRange", Op::Other),
            StoreError::InvalidInput { .. }
        ));
        assert!(matches!(m(408, "", Op::Other), StoreError::Timeout { .. }));
        assert!(matches!(
            m(500, "OperationTimedOut", Op::Other),
            StoreError::Timeout { .. }
        ));
        assert!(matches!(
            m(500, "InternalError", Op::Other),
            StoreError::Server { status: 500, .. }
        ));
        assert!(matches!(
            m(502, "", Op::Other),
            StoreError::Server {
                status: 502,
                code: None,
                ..
            }
        ));
        assert!(matches!(
            m(503, "ServerBusy", Op::Other),
            StoreError::Throttled {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(m(503, "", Op::Other), StoreError::Server { .. }));
        let t = map_status(
            429,
            "",
            "",
            Some(Duration::from_secs(3)),
            Ctx::new("c/b", Op::Other),
        );
        assert!(
            matches!(t, StoreError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(3))
        );
        let mut ctx = Ctx::new("c/b", Op::Create);
        ctx.if_match = true;
        assert!(matches!(
            map_status(404, "BlobNotFound", "", None, ctx),
            StoreError::ConditionNotMet { .. }
        ));
        ctx.if_none_match = true;
        assert!(matches!(
            map_status(412, "ConditionNotMet", "", None, ctx),
            StoreError::AlreadyExists { .. }
        ));
    }

    #[test]
    fn md5_mismatch_carries_both_digests() {
        let data = b"bytes";
        let wrong = Md5Digest::of(b"other");
        let mut ctx = Ctx::new("c/b", Op::Stage);
        ctx.md5 = Some((wrong, data));
        let body = "<Error><Code>InvalidOperation</Code><Message>Provided contentMD5 doesn't match.</Message></Error>";
        match map_status(400, "InvalidOperation", body, None, ctx) {
            StoreError::Md5Mismatch {
                expected, actual, ..
            } => {
                assert_eq!((expected, actual), (wrong, Md5Digest::of(data)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map_status(400, "Md5Mismatch", "", None, ctx),
            StoreError::Md5Mismatch { .. }
        ));
        assert!(matches!(
            map_status(400, "InvalidOperation", "other", None, ctx),
            StoreError::InvalidInput { .. }
        ));
    }

    #[test]
    fn redaction() {
        let text = "error sending request for url (http://127.0.0.1/a/c?sv=1&sig=AbC%2B%3D&se=2) then SIG=xyz\"";
        let r = redact(text);
        assert_eq!(r, "error sending request for url (http://127.0.0.1/a/c?sv=1&sig=<redacted>&se=2) then SIG=<redacted>\"");
        assert_eq!(redact("no secret"), "no secret");
        assert_eq!(redact("sig="), "sig=<redacted>");
    }
}
