//! Where an Azure destination is and which credential reaches it: the pure resolution of a
//! `--dest` URL, the process environment and a caller-given fallback into an [`Endpoint`] and an
//! [`Auth`], in issue 4's order of precedence.
//!
//! This module owns the precedence, the connection-string grammar and the [`Secret`] type. It
//! must not do I/O, read the clock or the real environment (the caller passes a map), and it
//! never puts a secret into an error, a `Debug` or a `Display`.

use std::collections::BTreeMap;
use std::fmt;

use azure_core::http::Url;

/// Azurite's well-known account name (`UseDevelopmentStorage=true`).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, documented by Microsoft for the emulator).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default blob endpoint for `UseDevelopmentStorage=true`.
const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Environment variable: a storage connection string.
pub const ENV_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// Environment variable: the storage account name (with [`ENV_KEY`]).
pub const ENV_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
/// Environment variable: the storage account key, Base64 (with [`ENV_ACCOUNT`]).
pub const ENV_KEY: &str = "AZURE_STORAGE_KEY";
/// Environment variable: force an Entra ID credential kind (`cli`, `managed-identity`).
pub const ENV_AUTH: &str = "DRIVECOPY_AZURE_AUTH";

/// A secret string (SAS query, account key, client secret): `Debug` and `Display` print
/// `<redacted>`; only [`expose`](Self::expose) gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The secret text. Never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The credential a caller offers when the URL and the environment give none: the manifest's
/// `StorageAccountKey` or `ContainerSas` (azure-import-export.md §1, as the service uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackCredential {
    /// A storage account key (Base64); drivecopy signs its own account SAS with it.
    StorageAccountKey(Secret),
    /// A SAS query string (with or without the leading `?`), usually container-scoped.
    ContainerSas(Secret),
}

/// Which Entra ID (`azure_identity`) credential to use; chosen from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraKind {
    /// `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`: a service principal.
    ClientSecret,
    /// `AZURE_FEDERATED_TOKEN_FILE` (+ tenant and client id): Kubernetes workload identity.
    WorkloadIdentity,
    /// `IDENTITY_ENDPOINT` / `MSI_ENDPOINT`, or `DRIVECOPY_AZURE_AUTH=managed-identity`.
    ManagedIdentity,
    /// `DRIVECOPY_AZURE_AUTH=cli`: the Azure CLI / Azure Developer CLI login.
    DeveloperTools,
}

/// How requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A SAS query string appended to every request URL (no leading `?`).
    Sas(Secret),
    /// An account key: drivecopy signs short-lived account SAS tokens with it.
    AccountKey {
        /// The account name the key belongs to.
        account: String,
        /// The Base64 key.
        key: Secret,
    },
    /// A Microsoft Entra ID bearer token (https only).
    Entra(EntraKind),
}

/// Which rule of the precedence chose the credential (for the `start` event and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// A SAS in the destination URL.
    UrlSas,
    /// `AZURE_STORAGE_CONNECTION_STRING`.
    ConnectionString,
    /// `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`.
    AccountKeyEnv,
    /// Entra ID from the environment.
    EntraId,
    /// The caller's fallback (the manifest's key or SAS).
    Fallback,
}

/// Where the blobs go: the account's blob endpoint and, for a container URL, the one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The account's blob service URL, no query
    /// (`https://acct.blob.core.windows.net/`, `http://127.0.0.1:10000/devstoreaccount1`).
    pub account_url: Url,
    /// The account name.
    pub account: String,
    /// The container the URL names, if it names one; operations on others fail.
    pub container: Option<String>,
    /// An emulator endpoint (loopback host or `devstoreaccount1`): pin the x-ms-version Azurite
    /// accepts (azure-sdk-notes.md §8 item 1).
    pub emulator: bool,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Where.
    pub endpoint: Endpoint,
    /// With what.
    pub auth: Auth,
    /// Which rule chose `auth`.
    pub source: CredentialSource,
}

/// Why a destination cannot be used. Messages name the URL without its query string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// The destination is not an `http(s)://` URL of an account or a container.
    #[error("invalid azure destination {url}: {reason}")]
    InvalidUrl {
        /// The URL, query removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection string is malformed.
    #[error("invalid {ENV_CONNECTION_STRING}: {reason}")]
    ConnectionString {
        /// What is wrong (never a value).
        reason: String,
    },
    /// Entra ID was selected for a plain-HTTP endpoint (bearer tokens need https).
    #[error("entra id credentials need an https destination, not {url}")]
    EntraNeedsHttps {
        /// The URL, query removed.
        url: String,
    },
    /// Nothing authorizes the destination.
    #[error(
        "no credential for {url}: give a sas in the url, {ENV_CONNECTION_STRING}, \
         {ENV_ACCOUNT} and {ENV_KEY}, or an entra id login"
    )]
    NoCredential {
        /// The URL, query removed.
        url: String,
    },
}

/// The URL `text` with its query string and fragment removed (for messages and events).
pub fn strip_query(text: &str) -> String {
    let end = text.find(['?', '#']).unwrap_or(text.len());
    text.get(..end).unwrap_or(text).to_string()
}

/// Resolve a destination in issue 4's order of precedence:
/// 1. a SAS in `dest`'s query string;
/// 2. `AZURE_STORAGE_CONNECTION_STRING` (`UseDevelopmentStorage=true`, `AccountName` +
///    `AccountKey`, `SharedAccessSignature`; `BlobEndpoint` is used when `dest` names no host),
///    else `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`;
/// 3. Entra ID when the environment names one ([`EntraKind`]);
/// 4. `fallback`.
///
/// `dest` is `https://ACCOUNT.blob.core.windows.net/[CONTAINER][?SAS]` or a path-style emulator
/// URL `http://127.0.0.1:PORT/ACCOUNT/[CONTAINER][?SAS]` (loopback host or IP address); it may
/// also be the bare word `devstorage:` together with a connection string, which then supplies
/// the endpoint. Only the account and one container level are accepted.
///
/// # Errors
/// [`CredentialError`]; no variant carries a secret.
pub fn resolve(
    dest: &str,
    env: &BTreeMap<String, String>,
    fallback: Option<&FallbackCredential>,
) -> Result<Resolved, CredentialError> {
    let shown = strip_query(dest);
    let conn = match env
        .get(ENV_CONNECTION_STRING)
        .filter(|s| !s.trim().is_empty())
    {
        Some(text) => Some(parse_connection_string(text)?),
        None => None,
    };
    let dest_url = if dest == "devstorage:" {
        let endpoint = conn
            .as_ref()
            .and_then(|c| c.blob_endpoint.clone())
            .ok_or_else(|| CredentialError::InvalidUrl {
                url: shown.clone(),
                reason: format!("devstorage: needs {ENV_CONNECTION_STRING} with a blob endpoint"),
            })?;
        Url::parse(&endpoint).map_err(|e| CredentialError::ConnectionString {
            reason: format!("BlobEndpoint is not a url ({e})"),
        })?
    } else {
        Url::parse(dest).map_err(|e| CredentialError::InvalidUrl {
            url: shown.clone(),
            reason: e.to_string(),
        })?
    };
    let endpoint = parse_endpoint(&dest_url, &shown)?;
    let https = dest_url.scheme() == "https";

    let url_sas = dest_url.query().filter(|q| q.contains("sig="));
    let (auth, source) = if let Some(q) = url_sas {
        (
            Auth::Sas(Secret::new(q.to_string())),
            CredentialSource::UrlSas,
        )
    } else if let Some(conn) = conn {
        let auth = if let Some(sas) = conn.sas {
            Auth::Sas(sas)
        } else if let (Some(account), Some(key)) = (conn.account, conn.key) {
            Auth::AccountKey { account, key }
        } else {
            return Err(CredentialError::ConnectionString {
                reason: "it has neither AccountName with AccountKey nor SharedAccessSignature"
                    .to_string(),
            });
        };
        (auth, CredentialSource::ConnectionString)
    } else if let (Some(account), Some(key)) = (
        env.get(ENV_ACCOUNT).filter(|s| !s.is_empty()),
        env.get(ENV_KEY).filter(|s| !s.is_empty()),
    ) {
        (
            Auth::AccountKey {
                account: account.clone(),
                key: Secret::new(key.clone()),
            },
            CredentialSource::AccountKeyEnv,
        )
    } else if let Some(kind) = entra_kind(env) {
        if !https {
            return Err(CredentialError::EntraNeedsHttps { url: shown });
        }
        (Auth::Entra(kind), CredentialSource::EntraId)
    } else if let Some(fallback) = fallback {
        let auth = match fallback {
            FallbackCredential::StorageAccountKey(key) => Auth::AccountKey {
                account: endpoint.account.clone(),
                key: key.clone(),
            },
            FallbackCredential::ContainerSas(sas) => Auth::Sas(Secret::new(
                sas.expose().trim_start_matches('?').to_string(),
            )),
        };
        (auth, CredentialSource::Fallback)
    } else {
        return Err(CredentialError::NoCredential { url: shown });
    };
    Ok(Resolved {
        endpoint,
        auth,
        source,
    })
}

fn entra_kind(env: &BTreeMap<String, String>) -> Option<EntraKind> {
    let has = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    match env.get(ENV_AUTH).map(String::as_str) {
        Some("cli") => return Some(EntraKind::DeveloperTools),
        Some("managed-identity") => return Some(EntraKind::ManagedIdentity),
        _ => {}
    }
    if has("AZURE_FEDERATED_TOKEN_FILE") && has("AZURE_CLIENT_ID") && has("AZURE_TENANT_ID") {
        Some(EntraKind::WorkloadIdentity)
    } else if has("AZURE_CLIENT_SECRET") && has("AZURE_CLIENT_ID") && has("AZURE_TENANT_ID") {
        Some(EntraKind::ClientSecret)
    } else if has("IDENTITY_ENDPOINT") || has("MSI_ENDPOINT") {
        Some(EntraKind::ManagedIdentity)
    } else {
        None
    }
}

/// Split a destination URL into the account endpoint and an optional container.
fn parse_endpoint(url: &Url, shown: &str) -> Result<Endpoint, CredentialError> {
    let bad = |reason: &str| CredentialError::InvalidUrl {
        url: shown.to_string(),
        reason: reason.to_string(),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let loopback = matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        || host.eq_ignore_ascii_case("localhost");
    let path_style = loopback || segments.first() == Some(&DEV_ACCOUNT);
    let (account, rest) = if path_style {
        let (first, rest) = segments
            .split_first()
            .ok_or_else(|| bad("an emulator url needs the account as its first path segment"))?;
        ((*first).to_string(), rest)
    } else {
        let label = host.split('.').next().unwrap_or(host);
        (label.to_string(), &segments[..])
    };
    let container = match rest {
        [] => None,
        [c] => Some(
            crate::names::validate_container_name(c)
                .map(|()| (*c).to_string())
                .map_err(|_| bad("the path does not name a valid container"))?,
        ),
        _ => {
            return Err(bad(
                "name the account or one container, not a blob or prefix",
            ))
        }
    };
    let mut account_url = url.clone();
    account_url.set_query(None);
    account_url.set_fragment(None);
    // No trailing slash after the account: the SDK appends container and blob as path
    // segments, and `/devstoreaccount1/` would become `/devstoreaccount1//container`.
    account_url.set_path(&if path_style {
        format!("/{account}")
    } else {
        "/".to_string()
    });
    Ok(Endpoint {
        account_url,
        emulator: loopback || account == DEV_ACCOUNT,
        account,
        container,
    })
}

/// The parts of a connection string drivecopy uses.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectionString {
    account: Option<String>,
    key: Option<Secret>,
    sas: Option<Secret>,
    blob_endpoint: Option<String>,
}

/// Parse `Key=Value;...` (keys case-insensitive; values may contain `=`).
fn parse_connection_string(text: &str) -> Result<ConnectionString, CredentialError> {
    let mut out = ConnectionString::default();
    let mut protocol = "https".to_string();
    let mut suffix = "core.windows.net".to_string();
    let mut dev = false;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(CredentialError::ConnectionString {
                reason: "a part has no '='".to_string(),
            });
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "usedevelopmentstorage" => dev = v.eq_ignore_ascii_case("true"),
            "accountname" => out.account = Some(v.to_string()),
            "accountkey" => out.key = Some(Secret::new(v.to_string())),
            "sharedaccesssignature" => {
                out.sas = Some(Secret::new(v.trim_start_matches('?').to_string()))
            }
            "blobendpoint" => out.blob_endpoint = Some(v.to_string()),
            "defaultendpointsprotocol" => protocol = v.to_string(),
            "endpointsuffix" => suffix = v.to_string(),
            _ => {}
        }
    }
    if dev {
        out.account.get_or_insert_with(|| DEV_ACCOUNT.to_string());
        if out.sas.is_none() {
            out.key
                .get_or_insert_with(|| Secret::new(DEV_KEY.to_string()));
        }
        out.blob_endpoint
            .get_or_insert_with(|| DEV_BLOB_ENDPOINT.to_string());
    } else if let (None, Some(account)) = (&out.blob_endpoint, &out.account) {
        out.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SAS: &str =
        "sv=2022-11-02&ss=b&srt=sco&sp=rwdlacup&se=2099-01-01&spr=https&sig=SECRETSIG%3D";

    #[test]
    fn url_sas_wins_over_everything() {
        let e = env(&[
            (ENV_CONNECTION_STRING, "UseDevelopmentStorage=true"),
            (ENV_ACCOUNT, "a"),
            (ENV_KEY, "a2V5"),
        ]);
        let r = resolve(
            &format!("https://acct.blob.core.windows.net/?{SAS}"),
            &e,
            None,
        )
        .unwrap();
        assert_eq!(r.source, CredentialSource::UrlSas);
        assert_eq!(r.auth, Auth::Sas(Secret::new(SAS.to_string())));
        assert_eq!(r.endpoint.account, "acct");
        assert_eq!(r.endpoint.container, None);
        assert!(!r.endpoint.emulator);
        assert_eq!(
            r.endpoint.account_url.as_str(),
            "https://acct.blob.core.windows.net/"
        );
    }

    #[test]
    fn azurite_container_url_and_connection_strings() {
        let r = resolve(
            "http://127.0.0.1:10000/devstoreaccount1/logs",
            &env(&[(ENV_CONNECTION_STRING, "UseDevelopmentStorage=true")]),
            None,
        )
        .unwrap();
        assert_eq!(r.source, CredentialSource::ConnectionString);
        assert_eq!(
            r.auth,
            Auth::AccountKey {
                account: DEV_ACCOUNT.into(),
                key: Secret::new(DEV_KEY.into())
            }
        );
        assert_eq!(r.endpoint.container.as_deref(), Some("logs"));
        assert!(r.endpoint.emulator);
        assert_eq!(
            r.endpoint.account_url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );

        let cs = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net";
        let r = resolve("devstorage:", &env(&[(ENV_CONNECTION_STRING, cs)]), None).unwrap();
        assert_eq!(
            r.endpoint.account_url.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(
            r.auth,
            Auth::AccountKey {
                account: "acct".into(),
                key: Secret::new("a2V5==".into())
            }
        );
        let cs = format!(
            "BlobEndpoint=http://localhost:10000/devstoreaccount1;SharedAccessSignature=?{SAS}"
        );
        let r = resolve("devstorage:", &env(&[(ENV_CONNECTION_STRING, &cs)]), None).unwrap();
        assert_eq!(r.auth, Auth::Sas(Secret::new(SAS.into())));
        assert!(r.endpoint.emulator);
        assert!(matches!(
            resolve(
                "https://a.blob.core.windows.net/",
                &env(&[(ENV_CONNECTION_STRING, "AccountName=a")]),
                None
            ),
            Err(CredentialError::ConnectionString { .. })
        ));
    }

    #[test]
    fn account_key_env_then_entra_then_fallback() {
        let url = "https://acct.blob.core.windows.net/c1c";
        let r = resolve(url, &env(&[(ENV_ACCOUNT, "acct"), (ENV_KEY, "a2V5")]), None).unwrap();
        assert_eq!(r.source, CredentialSource::AccountKeyEnv);
        let sp = env(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        let fallback = FallbackCredential::ContainerSas(Secret::new(format!("?{SAS}")));
        let r = resolve(url, &sp, Some(&fallback)).unwrap();
        assert_eq!(r.auth, Auth::Entra(EntraKind::ClientSecret));
        assert_eq!(
            resolve("http://127.0.0.1:1/devstoreaccount1", &sp, None),
            Err(CredentialError::EntraNeedsHttps {
                url: "http://127.0.0.1:1/devstoreaccount1".into()
            })
        );
        let r = resolve(url, &env(&[(ENV_AUTH, "cli")]), None).unwrap();
        assert_eq!(r.auth, Auth::Entra(EntraKind::DeveloperTools));
        let r = resolve(url, &env(&[("IDENTITY_ENDPOINT", "http://x")]), None).unwrap();
        assert_eq!(r.auth, Auth::Entra(EntraKind::ManagedIdentity));
        let r = resolve(url, &env(&[]), Some(&fallback)).unwrap();
        assert_eq!(
            (r.source, r.auth),
            (
                CredentialSource::Fallback,
                Auth::Sas(Secret::new(SAS.into()))
            )
        );
        let key = FallbackCredential::StorageAccountKey(Secret::new("a2V5".into()));
        let r = resolve(url, &env(&[]), Some(&key)).unwrap();
        assert_eq!(
            r.auth,
            Auth::AccountKey {
                account: "acct".into(),
                key: Secret::new("a2V5".into())
            }
        );
        assert_eq!(
            resolve(url, &env(&[]), None),
            Err(CredentialError::NoCredential { url: url.into() })
        );
    }

    #[test]
    fn bad_urls_and_no_secret_in_messages() {
        for bad in [
            "ftp://a/b",
            "https://acct.blob.core.windows.net/c1/blob",
            "https://acct.blob.core.windows.net/Bad_Container",
            "http://127.0.0.1:10000/",
            "not a url",
        ] {
            let err = resolve(&format!("{bad}?{SAS}"), &env(&[]), None).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("SECRETSIG"), "{text}");
        }
        let cs = "AccountName=a;AccountKey=SECRETSIG;Bogus";
        let err = resolve("devstorage:", &env(&[(ENV_CONNECTION_STRING, cs)]), None).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SECRETSIG"));
        let s = Secret::new("SECRETSIG".into());
        assert!(!format!("{s} {s:?}").contains("SECRETSIG"));
        assert_eq!(strip_query("https://a/b?sig=x#f"), "https://a/b");
    }
}
