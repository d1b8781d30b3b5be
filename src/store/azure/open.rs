//! [`open_url`]: open the store a `--dest` names, local or Azure.
//!
//! This module owns the choice of backend by URL scheme. It must not retry or wrap stores
//! itself: the caller passes the wrapper (the `store::retry` layer) as a function.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::credential::{resolve, strip_query, CredentialError, FallbackCredential};
use super::error::RedactedError;
use super::{http_client, AzureStore};
use crate::store::local::LocalStore;
use crate::store::{BlobStore, StoreError};

/// How to open a destination.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Requests in flight at once; sizes the HTTP connection pool.
    pub concurrency: usize,
    /// Local store only: fsync commits.
    pub fsync: bool,
    /// The credential to use when the URL and the environment give none (the manifest's).
    pub fallback: Option<FallbackCredential>,
    /// The environment to resolve credentials from (normally [`OpenOptions::process_env`]).
    pub env: BTreeMap<String, String>,
}

impl OpenOptions {
    /// Options with the process environment, fsync on and no fallback.
    pub fn new(concurrency: usize) -> Self {
        OpenOptions {
            concurrency,
            fsync: true,
            fallback: None,
            env: Self::process_env(),
        }
    }

    /// The process environment as a map (non-UTF-8 variables are skipped).
    pub fn process_env() -> BTreeMap<String, String> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

/// Why a destination cannot be opened. No message carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The local store could not be opened.
    #[error("open the local store {dest}")]
    Local {
        /// The destination.
        dest: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The Azure destination or its credential is unusable.
    #[error("resolve the azure destination")]
    Credential(#[source] CredentialError),
    /// The Azure client could not be built.
    #[error("set up the azure client for {dest}")]
    Client {
        /// The destination, query removed.
        dest: String,
        /// The cause, redacted.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Whether `dest` names an Azure endpoint (`http://`, `https://`, or `devstorage:` with a
/// connection string) rather than a local store.
pub fn is_remote(dest: &str) -> bool {
    dest.starts_with("http://") || dest.starts_with("https://") || dest == "devstorage:"
}

/// The destination as it may be shown in events and logs: the query string (a SAS) removed.
pub fn display_destination(dest: &str) -> String {
    if is_remote(dest) {
        strip_query(dest)
    } else {
        dest.to_string()
    }
}

/// Open the store `dest` names: a plain path or `file://` URL is a [`LocalStore`]; an
/// `http(s)://` URL (or `devstorage:`) is an [`AzureStore`] with the credential
/// [`resolve`] picks from the URL, `options.env` and `options.fallback`. `wrap` is applied to
/// the Azure store only: it is where the caller adds the retry layer (`store::retry`), the one
/// place that retries.
///
/// # Errors
/// [`OpenError`].
pub fn open_url(
    dest: &str,
    options: &OpenOptions,
    wrap: impl FnOnce(Arc<dyn BlobStore>) -> Arc<dyn BlobStore>,
) -> Result<Arc<dyn BlobStore>, OpenError> {
    if !is_remote(dest) {
        let store = LocalStore::from_url(dest).map_err(|source| OpenError::Local {
            dest: dest.to_string(),
            source,
        })?;
        return Ok(Arc::new(store.with_fsync(options.fsync)));
    }
    let resolved =
        resolve(dest, &options.env, options.fallback.as_ref()).map_err(OpenError::Credential)?;
    let shown = strip_query(dest);
    let http = http_client(options.concurrency).map_err(|e| OpenError::Client {
        dest: shown.clone(),
        source: Box::new(e),
    })?;
    let store = AzureStore::new(resolved, http, &options.env).map_err(|e| OpenError::Client {
        dest: shown,
        source: Box::new(RedactedError::from_error(&e)),
    })?;
    Ok(wrap(Arc::new(store)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_choose_the_backend() {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = OpenOptions::new(4);
        opts.env = BTreeMap::new();
        let local = open_url(tmp.path().to_str().unwrap(), &opts, |s| s).unwrap();
        assert!(format!("{local:?}").contains("LocalStore"));
        let sas = "http://127.0.0.1:1/devstoreaccount1/c1c?sv=2022-11-02&sig=TOPSECRET";
        let mut wrapped = false;
        let azure = open_url(sas, &opts, |s| {
            wrapped = true;
            s
        })
        .unwrap();
        assert!(wrapped, "the retry hook wraps remote stores");
        assert!(format!("{azure:?}").contains("AzureStore"));
        assert!(!format!("{azure:?}").contains("TOPSECRET"));
        assert_eq!(
            display_destination(sas),
            "http://127.0.0.1:1/devstoreaccount1/c1c"
        );
        let err = open_url("https://a.blob.core.windows.net/", &opts, |s| s).unwrap_err();
        assert!(matches!(
            err,
            OpenError::Credential(CredentialError::NoCredential { .. })
        ));
    }
}
