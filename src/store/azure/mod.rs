//! [`AzureStore`]: the [`BlobStore`] trait over Azure Blob Storage (real Azure or Azurite) with
//! the official SDK, `azure_storage_blob` 1.x (issue 4 item 1; azure-sdk-notes.md §1, §8).
//!
//! This module owns the translation of each trait operation into Azure REST calls, the shared
//! HTTP transport, and opening a destination URL ([`open_url`]). It must not retry: the SDK's
//! own retry policy is switched off (`RetryOptions::none()`), because retrying happens in
//! exactly one place, `store::retry`, wrapped around this store by the caller (style.md §5). It
//! must never put a SAS or key into an error, a log or a URL it returns
//! ([`BlobStore::blob_url`] is the plain URL; errors go through [`error::redact`]).
//!
//! Mapping notes (each one measured against Azurite 3.35, azure-sdk-notes.md §8):
//! - `BlockChecksum::Md5` is verified here before sending (Azurite does not check Put Page MD5,
//!   item 5); `Md5` and `Md5Verified` are both sent as `Content-MD5`, so the service checks the
//!   transfer. A rejected MD5 is [`StoreError::Md5Mismatch`] with `actual` computed from the
//!   bytes sent (only on that error path).
//! - Page ranges are merged with [`merge_ranges`] (Azurite returns adjacent ranges, item 5).
//! - An empty range or a 0-byte blob is read without a ranged GET (the SDK refuses a
//!   zero-length range, item 4).
//! - Blob names exactly `.` or `..` cannot be addressed by URL (dot segments are removed by URL
//!   normalization, WHATWG URL §4.4) and fail with [`StoreError::InvalidInput`]; so do names
//!   with `\`, which the service (Azurite 3.35 measured) stores as `/` — a silent rename.
//! - Metadata names reach the service lowercased: they travel as `x-ms-meta-NAME` headers and
//!   the `http` crate lowercases header names (no case-preserving option in reqwest).
//! - A commit, Set Properties and Set Metadata return the new properties by a Get Blob
//!   Properties after the write (Put Block List does not return the length).

pub mod credential;
pub mod error;
mod open;
pub mod sas;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZero;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientSetMetadataOptions, BlobClientSetPropertiesOptions,
    BlobContainerClientListBlobsOptions, BlobType, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientStageBlockOptions, BlockBlobClientUploadOptions, BlockListType, BlockLookupList,
    HttpRange, ListBlobsIncludeItem, PageBlobClientCreateOptions,
    PageBlobClientCreateResultHeaders, PageBlobClientUploadPagesOptions,
};
use azure_storage_blob::{BlobClient, BlobServiceClient, BlobServiceClientOptions};
use bytes::Bytes;
use futures::TryStreamExt as _;
use time::OffsetDateTime;

use super::{
    merge_ranges, validate_metadata, BlobItem, BlobKind, BlobProperties, BlobStore, BlockChecksum,
    BlockId, BlockListing, CommitOptions, Condition, ContentProperties, ETag, StageBlock,
    StoreError, MAX_COMMITTED_BLOCKS, MAX_PAGE_BLOB_BYTES, MAX_PUT_PAGE_BYTES, PAGE_BYTES,
};
use crate::digest::Md5Digest;
use crate::names::BlobPath;
use credential::{Auth, EntraKind, Resolved};
use error::{Ctx, Op, RedactedError};

pub use credential::{resolve, CredentialError, FallbackCredential, Secret};
pub use open::{display_destination, is_remote, open_url, OpenError, OpenOptions};

/// The `x-ms-version` pinned for emulators: the newest Azurite 3.35 accepts
/// (azure-sdk-notes.md §8 item 1).
pub const EMULATOR_API_VERSION: &str = "2025-11-05";
/// Lifetime of a self-signed account SAS (seconds); it is re-signed when less than
/// [`SAS_REFRESH_SECS`] remain, so a long import never meets an expired token.
pub const SAS_LIFETIME_SECS: i64 = 8 * 3600;
/// Re-sign the account SAS when it has less than this left (seconds).
pub const SAS_REFRESH_SECS: i64 = 3600;
/// Idle time after which a pooled connection is closed: under Azurite's `Keep-Alive: timeout=5`
/// (azure-sdk-notes.md §8 item 7).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest part read in one GET when [`BlobStore::read_range`] reads a whole blob (bytes).
const READ_PARTITION_BYTES: usize = 64 * 1024 * 1024;
/// Largest [`BlobStore::put_blob`] sent as one Put Blob (bytes); larger ones are partitioned.
const PUT_BLOB_ONESHOT_BYTES: u64 = 256 * 1024 * 1024;

/// Build the one HTTP client all requests of a store share: a pool of `concurrency` idle
/// connections per host, TCP keep-alive and nodelay, idle connections closed after
/// [`POOL_IDLE_TIMEOUT`], rustls with the `ring` provider, no redirects; a connect timeout of
/// 20 s and a read timeout of 120 s (a stalled response becomes [`StoreError::Timeout`]).
///
/// No response is ever decompressed: reqwest's `gzip`/`deflate` features are not enabled in
/// `Cargo.toml` (azure-sdk-notes.md §8 item 2: a blob stored with `Content-Encoding: gzip` must
/// download byte-exact); the conformance suite stores such a blob and reads it back.
///
/// # Errors
/// The TLS back end failed to initialise (redacted text).
pub fn http_client(concurrency: usize) -> Result<reqwest::Client, RedactedError> {
    // Installing twice is harmless (the first provider stays); the result says which.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| RedactedError::from_error(&e))
}

/// A client of the blob service and, for a self-signed SAS, when it expires.
struct Signed {
    service: BlobServiceClient,
    expires: Option<OffsetDateTime>,
}

/// Azure Blob Storage through the official SDK. Cheap to share (`Arc`); all clients share one
/// HTTP connection pool.
pub struct AzureStore {
    resolved: Resolved,
    transport: Transport,
    entra: Option<Arc<dyn TokenCredential>>,
    current: Mutex<Option<Arc<Signed>>>,
}

impl fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureStore")
            .field("account_url", &self.resolved.endpoint.account_url.as_str())
            .field("container", &self.resolved.endpoint.container)
            .field("source", &self.resolved.source)
            .finish_non_exhaustive()
    }
}

impl AzureStore {
    /// A store for a resolved destination ([`credential::resolve`]), its requests sharing
    /// `http` (see [`http_client`]). `env` supplies the Entra ID settings, when chosen.
    ///
    /// # Errors
    /// [`StoreError::PermissionDenied`] when the Entra ID credential cannot be built;
    /// [`StoreError::InvalidInput`] when the account key is not Base64.
    pub fn new(
        resolved: Resolved,
        http: reqwest::Client,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, StoreError> {
        let transport = Transport::new(Arc::new(http));
        let entra = match &resolved.auth {
            Auth::Entra(kind) => Some(entra_credential(*kind, env, &transport).map_err(|e| {
                error::map(
                    e,
                    Ctx::new(resolved.endpoint.account_url.as_str(), Op::Other),
                )
            })?),
            _ => None,
        };
        let store = AzureStore {
            resolved,
            transport,
            entra,
            current: Mutex::new(None),
        };
        store.service()?;
        Ok(store)
    }

    /// The destination as resolved (endpoint, credential kind and its source).
    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    fn options(&self) -> BlobServiceClientOptions {
        let mut options = BlobServiceClientOptions {
            client_options: ClientOptions {
                transport: Some(self.transport.clone()),
                // Retrying happens in exactly one place: store::retry (style.md §5).
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            ..BlobServiceClientOptions::default()
        };
        if self.resolved.endpoint.emulator {
            options.version = EMULATOR_API_VERSION.to_string();
        }
        options
    }

    /// The current service client, re-signing the account SAS when it is near expiry.
    fn service(&self) -> Result<Arc<Signed>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(signed) = current.as_ref() {
            if !needs_resigning(signed.expires, now) {
                return Ok(Arc::clone(signed));
            }
        }
        let endpoint = &self.resolved.endpoint;
        let shown = endpoint.account_url.as_str();
        let mut url = endpoint.account_url.clone();
        let mut expires = None;
        match &self.resolved.auth {
            Auth::Sas(q) => url.set_query(Some(q.expose())),
            Auth::AccountKey { account, key } => {
                let expiry = now + time::Duration::seconds(SAS_LIFETIME_SECS);
                let q = sas::account_sas(
                    account,
                    key,
                    now - time::Duration::minutes(15),
                    expiry,
                    url.scheme() == "https",
                )
                .map_err(|e| StoreError::InvalidInput {
                    path: shown.to_string(),
                    reason: e.to_string(),
                })?;
                url.set_query(Some(q.expose()));
                expires = Some(expiry);
            }
            Auth::Entra(_) => {}
        }
        let service = BlobServiceClient::new(url, self.entra.clone(), Some(self.options()))
            .map_err(|e| error::map(e, Ctx::new(shown, Op::Other)))?;
        let signed = Arc::new(Signed { service, expires });
        *current = Some(Arc::clone(&signed));
        Ok(signed)
    }

    /// Refuse containers other than the URL's, and names a URL cannot carry.
    fn check_container(&self, container: &str) -> Result<(), StoreError> {
        match &self.resolved.endpoint.container {
            Some(only) if only != container => Err(StoreError::InvalidInput {
                path: container.to_string(),
                reason: format!("the destination url names container {only} only"),
            }),
            _ => Ok(()),
        }
    }

    fn blob(&self, path: &BlobPath) -> Result<BlobClient, StoreError> {
        self.check_container(&path.container)?;
        if path.name == "." || path.name == ".." {
            return Err(StoreError::InvalidInput {
                path: path.to_string(),
                reason: "azure cannot address a blob named . or .. (url dot segments)".into(),
            });
        }
        if path.name.contains('\\') {
            return Err(StoreError::InvalidInput {
                path: path.to_string(),
                reason: "the blob service stores \\ in a name as /; refused rather than renamed"
                    .into(),
            });
        }
        Ok(self
            .service()?
            .service
            .blob_client(&path.container, &path.name))
    }

    /// Get Blob of `range` (the whole blob for `None`), with `If-Match` when `if_match` is given.
    async fn download(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
        if_match: Option<&ETag>,
    ) -> Result<Bytes, StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?;
        let (http_range, partition) = match range.clone() {
            Some(r) if r.start >= r.end => {
                // The SDK refuses a zero-length range: check existence (and ETag), read nothing.
                let props = self.properties_of(path, false).await?;
                if if_match.is_some_and(|etag| *etag != props.etag) {
                    return Err(StoreError::ConditionNotMet { path: p });
                }
                return Ok(Bytes::new());
            }
            Some(r) => {
                let len = r.end - r.start;
                let part = usize::try_from(len)
                    .unwrap_or(usize::MAX)
                    .min(READ_PARTITION_BYTES);
                (Some(HttpRange::new(r.start, len)), part)
            }
            None => (None, READ_PARTITION_BYTES),
        };
        let condition = if_match.map_or(Condition::None, |etag| Condition::IfMatch(etag.clone()));
        let (if_match, _) = etag_condition(&condition);
        let options = BlobClientDownloadOptions {
            range: http_range,
            parallel: NonZero::new(1),
            partition_size: NonZero::new(partition.max(1)),
            if_match,
            ..Default::default()
        };
        let map = |e| error::map(e, ctx_for(&p, Op::Other, &condition));
        let result = client.download(Some(options)).await.map_err(map)?;
        let bytes = result.body.collect().await.map_err(map)?;
        if let (true, Some(start)) = (bytes.is_empty(), range.as_ref().map(|r| r.start)) {
            // The SDK turns Azure's 416 for a range past the end into an empty body.
            let length = self.properties_of(path, false).await?.length;
            if start >= length {
                return Err(StoreError::InvalidInput {
                    path: p,
                    reason: format!("range starts at {start}, the blob has {length} bytes"),
                });
            }
        }
        Ok(bytes)
    }

    /// Get Blob Properties. With `exact_metadata_case`, a blob with metadata costs a second
    /// request (see [`Self::metadata_case`]); the refresh after our own writes skips it, since
    /// the names we send reach the service lowercased anyway.
    async fn properties_of(
        &self,
        path: &BlobPath,
        exact_metadata_case: bool,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?;
        let resp = client
            .get_properties(None)
            .await
            .map_err(|e| error::map(e, Ctx::new(&p, Op::Other)))?;
        let h = |e: azure_core::Error| bad_response(&p, e);
        let kind = match resp.blob_type().map_err(h)? {
            Some(BlobType::PageBlob) => BlobKind::PageBlob,
            _ => BlobKind::BlockBlob,
        };
        Ok(BlobProperties {
            kind,
            length: resp.content_length().map_err(h)?.unwrap_or(0),
            etag: etag(resp.etag().map_err(h)?.map(|e| e.to_string())),
            last_modified: resp
                .last_modified()
                .map_err(h)?
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            content: ContentProperties {
                content_type: resp.content_type().map_err(h)?,
                content_encoding: resp.content_encoding().map_err(h)?,
                content_language: resp.content_language().map_err(h)?,
                cache_control: resp.cache_control().map_err(h)?,
                content_disposition: resp.content_disposition().map_err(h)?,
                content_md5: resp.content_md5().map_err(h)?.and_then(md5_of),
            },
            metadata: if exact_metadata_case {
                self.metadata_case(path, resp.metadata().map_err(h)?).await
            } else {
                resp.metadata().map_err(h)?.into_iter().collect()
            },
        })
    }

    /// HTTP header names arrive lowercased, but Azure keeps the case of metadata names, and
    /// List Blobs returns it: ask for this one blob (the first name with it as prefix is the
    /// blob itself) and take its names when they match. Without list permission, or on any
    /// error, the lowercase names are kept.
    async fn metadata_case(
        &self,
        path: &BlobPath,
        lower: HashMap<String, String>,
    ) -> BTreeMap<String, String> {
        let lowered: BTreeMap<String, String> = lower.into_iter().collect();
        if lowered.is_empty() {
            return lowered;
        }
        let Ok(signed) = self.service() else {
            return lowered;
        };
        let client = signed.service.blob_container_client(&path.container);
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(path.name.clone()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            maxresults: Some(1),
            ..Default::default()
        };
        let Ok(mut pager) = client.list_blobs(Some(options)) else {
            return lowered;
        };
        let Ok(Some(item)) = pager.try_next().await else {
            return lowered;
        };
        let listed: BTreeMap<String, String> = item
            .metadata
            .and_then(|m| m.values)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let same = item.name.as_deref() == Some(path.name.as_str())
            && listed.len() == lowered.len()
            && listed
                .iter()
                .all(|(k, v)| lowered.get(&k.to_ascii_lowercase()) == Some(v));
        if same {
            listed
        } else {
            lowered
        }
    }
}

/// Whether a client whose self-signed SAS expires at `expires` must be re-signed at `now`
/// (less than [`SAS_REFRESH_SECS`] left). A SAS from the URL or an Entra token never is.
fn needs_resigning(expires: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expires.is_some_and(|e| e - now <= time::Duration::seconds(SAS_REFRESH_SECS))
}

fn bad_response(path: &str, e: azure_core::Error) -> StoreError {
    StoreError::Other {
        path: path.to_string(),
        backend: "azure",
        source: Box::new(RedactedError::from_error(&e)),
    }
}

fn md5_of(bytes: Vec<u8>) -> Option<Md5Digest> {
    <[u8; 16]>::try_from(bytes.as_slice()).ok().map(Md5Digest)
}

fn etag_condition(
    condition: &Condition,
) -> (
    Option<azure_core::http::Etag>,
    Option<azure_core::http::Etag>,
) {
    match condition {
        Condition::None => (None, None),
        Condition::IfNoneMatchStar => (None, Some("*".into())),
        Condition::IfMatch(tag) => (Some(tag.as_str().into()), None),
    }
}

fn ctx_for<'a>(path: &'a str, op: Op, condition: &Condition) -> Ctx<'a> {
    let mut ctx = Ctx::new(path, op);
    ctx.if_match = matches!(condition, Condition::IfMatch(_));
    ctx.if_none_match = matches!(condition, Condition::IfNoneMatchStar);
    ctx
}

fn hash_map(metadata: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// Verify a [`BlockChecksum::Md5`] locally; return the digest to send as `Content-MD5`.
fn checked_md5(
    path: &BlobPath,
    data: &[u8],
    checksum: BlockChecksum,
) -> Result<Option<Md5Digest>, StoreError> {
    if let BlockChecksum::Md5(expected) = checksum {
        let actual = Md5Digest::of(data);
        if actual != expected {
            return Err(StoreError::Md5Mismatch {
                path: path.to_string(),
                expected,
                actual,
            });
        }
    }
    Ok(checksum.digest())
}

/// Build the Entra ID credential `kind` names, from `env`.
fn entra_credential(
    kind: EntraKind,
    env: &BTreeMap<String, String>,
    transport: &Transport,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    use azure_identity::{
        ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
        ManagedIdentityCredential, ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    };
    let client_options = ClientOptions {
        transport: Some(transport.clone()),
        ..ClientOptions::default()
    };
    let var = |k: &str| env.get(k).cloned().unwrap_or_default();
    Ok(match kind {
        EntraKind::ClientSecret => ClientSecretCredential::new(
            &var("AZURE_TENANT_ID"),
            var("AZURE_CLIENT_ID"),
            azure_core::credentials::Secret::new(var("AZURE_CLIENT_SECRET")),
            Some(ClientSecretCredentialOptions { client_options }),
        )?,
        EntraKind::WorkloadIdentity => WorkloadIdentityCredential::new(None)?,
        EntraKind::ManagedIdentity => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                client_options,
                ..ManagedIdentityCredentialOptions::default()
            }))?
        }
        EntraKind::DeveloperTools => DeveloperToolsCredential::new(None)?,
    })
}

#[async_trait]
impl BlobStore for AzureStore {
    async fn create_container(&self, container: &str) -> Result<(), StoreError> {
        self.check_container(container)?;
        crate::names::validate_container_name(container).map_err(|e| StoreError::InvalidInput {
            path: container.to_string(),
            reason: e.to_string(),
        })?;
        let client = self.service()?.service.blob_container_client(container);
        match client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if error::code(&e) == Some("ContainerAlreadyExists") => Ok(()),
            // A container SAS may not create its container; it is enough that it exists.
            Err(e)
                if e.http_status().map(u16::from) == Some(403)
                    && self.resolved.endpoint.container.is_some() =>
            {
                client
                    .get_properties(None)
                    .await
                    .map(|_| ())
                    .map_err(|_| error::map(e, Ctx::new(container, Op::Container)))
            }
            Err(e) => Err(error::map(e, Ctx::new(container, Op::Container))),
        }
    }

    async fn list_containers(&self) -> Result<Vec<String>, StoreError> {
        if let Some(only) = &self.resolved.endpoint.container {
            return Ok(vec![only.clone()]);
        }
        let shown = self.resolved.endpoint.account_url.to_string();
        let map = |e| error::map(e, Ctx::new(&shown, Op::Container));
        let mut pager = self.service()?.service.list_containers(None).map_err(map)?;
        let mut names = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(map)? {
            names.extend(item.name);
        }
        names.sort();
        Ok(names)
    }

    async fn stage_block(&self, path: &BlobPath, block: StageBlock) -> Result<(), StoreError> {
        let p = path.to_string();
        if block.data.is_empty() {
            return Err(StoreError::InvalidInput {
                path: p,
                reason: "a block must hold at least one byte".into(),
            });
        }
        let md5 = checked_md5(path, &block.data, block.checksum)?;
        let client = self.blob(path)?.block_blob_client();
        let options = BlockBlobClientStageBlockOptions {
            transactional_content_md5: md5.map(|d| d.0.to_vec()),
            ..Default::default()
        };
        let len = block.data.len() as u64;
        let mut ctx = Ctx::new(&p, Op::Stage);
        ctx.md5 = md5.map(|d| (d, block.data.as_ref()));
        client
            .stage_block(
                block.id.as_bytes(),
                len,
                block.data.clone().into(),
                Some(options),
            )
            .await
            .map(|_| ())
            .map_err(|e| error::map(e, ctx))
    }

    async fn commit_block_list(
        &self,
        path: &BlobPath,
        blocks: &[BlockId],
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        if let Some(first) = blocks.first() {
            if blocks.iter().any(|b| b.len() != first.len()) {
                return Err(StoreError::InvalidBlockList {
                    path: p,
                    reason: "block ids of different lengths".into(),
                });
            }
        }
        if blocks.len() > MAX_COMMITTED_BLOCKS {
            return Err(StoreError::InvalidBlockList {
                path: p,
                reason: format!("{} blocks, over {MAX_COMMITTED_BLOCKS}", blocks.len()),
            });
        }
        validate_metadata(path, &options.metadata)?;
        let client = self.blob(path)?.block_blob_client();
        let (if_match, if_none_match) = etag_condition(&options.condition);
        let c = options.content;
        let commit = BlockBlobClientCommitBlockListOptions {
            blob_cache_control: c.cache_control,
            blob_content_disposition: c.content_disposition,
            blob_content_encoding: c.content_encoding,
            blob_content_language: c.content_language,
            blob_content_md5: c.content_md5.map(|d| d.0.to_vec()),
            blob_content_type: c.content_type,
            metadata: hash_map(&options.metadata),
            if_match,
            if_none_match,
            ..Default::default()
        };
        let list = BlockLookupList {
            latest: Some(blocks.iter().map(|b| b.as_bytes().to_vec()).collect()),
            ..Default::default()
        };
        let ctx = ctx_for(&p, Op::Create, &options.condition);
        let body = list.try_into().map_err(|e| bad_response(&p, e))?;
        client
            .commit_block_list(body, Some(commit))
            .await
            .map_err(|e| error::map(e, ctx))?;
        self.properties_of(path, false).await
    }

    async fn get_block_list(&self, path: &BlobPath) -> Result<BlockListing, StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?.block_blob_client();
        let list = client
            .get_block_list(BlockListType::All, None)
            .await
            .map_err(|e| error::map(e, Ctx::new(&p, Op::Other)))?
            .into_model()
            .map_err(|e| bad_response(&p, e))?;
        let convert = |blocks: Option<Vec<azure_storage_blob::models::Block>>| {
            blocks
                .unwrap_or_default()
                .into_iter()
                .map(|b| {
                    let id = BlockId::new(b.name.unwrap_or_default()).map_err(|_| {
                        StoreError::Other {
                            path: p.clone(),
                            backend: "azure",
                            source: Box::new(RedactedError::msg(
                                "the service listed an invalid block id",
                            )),
                        }
                    })?;
                    Ok((id, u64::try_from(b.size.unwrap_or(0)).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        };
        Ok(BlockListing {
            committed: convert(list.committed_blocks)?,
            uncommitted: convert(list.uncommitted_blocks)?,
        })
    }

    async fn create_page_blob(
        &self,
        path: &BlobPath,
        length_bytes: u64,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        if !length_bytes.is_multiple_of(PAGE_BYTES) || length_bytes > MAX_PAGE_BLOB_BYTES {
            return Err(StoreError::InvalidInput {
                path: p,
                reason: format!(
                    "page blob length {length_bytes} is not a multiple of 512 up to 8 TiB"
                ),
            });
        }
        validate_metadata(path, &options.metadata)?;
        let client = self.blob(path)?.page_blob_client();
        let (if_match, if_none_match) = etag_condition(&options.condition);
        let c = options.content.clone();
        let create = PageBlobClientCreateOptions {
            blob_cache_control: c.cache_control,
            blob_content_disposition: c.content_disposition,
            blob_content_encoding: c.content_encoding,
            blob_content_language: c.content_language,
            blob_content_md5: c.content_md5.map(|d| d.0.to_vec()),
            blob_content_type: c.content_type,
            metadata: hash_map(&options.metadata),
            if_match,
            if_none_match,
            ..Default::default()
        };
        let ctx = ctx_for(&p, Op::Create, &options.condition);
        let resp = client
            .create(length_bytes, Some(create))
            .await
            .map_err(|e| error::map(e, ctx))?;
        let h = |e: azure_core::Error| bad_response(&p, e);
        Ok(BlobProperties {
            kind: BlobKind::PageBlob,
            length: length_bytes,
            etag: etag(resp.etag().map_err(h)?.map(|e| e.to_string())),
            last_modified: resp
                .last_modified()
                .map_err(h)?
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            content: options.content,
            metadata: options.metadata,
        })
    }

    async fn put_pages(
        &self,
        path: &BlobPath,
        offset_bytes: u64,
        data: Bytes,
        checksum: BlockChecksum,
    ) -> Result<(), StoreError> {
        let p = path.to_string();
        let len = data.len() as u64;
        if !offset_bytes.is_multiple_of(PAGE_BYTES)
            || !len.is_multiple_of(PAGE_BYTES)
            || len == 0
            || len > MAX_PUT_PAGE_BYTES
        {
            return Err(StoreError::InvalidInput {
                path: p,
                reason: format!("put page of {len} bytes at {offset_bytes}: not 512-aligned, empty or over 4 MiB"),
            });
        }
        let md5 = checked_md5(path, &data, checksum)?;
        let client = self.blob(path)?.page_blob_client();
        let options = PageBlobClientUploadPagesOptions {
            transactional_content_md5: md5.map(|d| d.0.to_vec()),
            ..Default::default()
        };
        let mut ctx = Ctx::new(&p, Op::Pages);
        ctx.md5 = md5.map(|d| (d, data.as_ref()));
        client
            .upload_pages(
                data.clone().into(),
                len,
                HttpRange::new(offset_bytes, len),
                Some(options),
            )
            .await
            .map(|_| ())
            .map_err(|e| error::map(e, ctx))
    }

    async fn get_page_ranges(&self, path: &BlobPath) -> Result<Vec<Range<u64>>, StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?.page_blob_client();
        let map = |e| error::map(e, Ctx::new(&p, Op::Pages));
        let mut pages = client.list_page_ranges(None).map_err(map)?;
        let mut ranges = Vec::new();
        loop {
            let page = match pages.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                // Azurite answers 416 for a 0-byte page blob, which has no ranges.
                Err(e) if e.http_status().map(u16::from) == Some(416) && ranges.is_empty() => {
                    let props = self.properties_of(path, false).await?;
                    if props.kind == BlobKind::PageBlob && props.length == 0 {
                        return Ok(Vec::new());
                    }
                    return Err(map(e));
                }
                Err(e) => return Err(map(e)),
            };
            let list = page.into_model().map_err(|e| bad_response(&p, e))?;
            for r in list.page_ranges {
                if let (Some(start), Some(end)) = (r.start, r.end) {
                    if let (Ok(s), Ok(e)) = (u64::try_from(start), u64::try_from(end)) {
                        ranges.push(s..e.saturating_add(1));
                    }
                }
            }
        }
        Ok(merge_ranges(ranges))
    }

    async fn get_properties(&self, path: &BlobPath) -> Result<BlobProperties, StoreError> {
        self.properties_of(path, true).await
    }

    async fn set_properties(
        &self,
        path: &BlobPath,
        content: ContentProperties,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?;
        let (if_match, if_none_match) = etag_condition(&condition);
        let options = BlobClientSetPropertiesOptions {
            blob_cache_control: content.cache_control,
            blob_content_disposition: content.content_disposition,
            blob_content_encoding: content.content_encoding,
            blob_content_language: content.content_language,
            blob_content_md5: content.content_md5.map(|d| d.0.to_vec()),
            blob_content_type: content.content_type,
            if_match,
            if_none_match,
            ..Default::default()
        };
        client
            .set_properties(Some(options))
            .await
            .map_err(|e| error::map(e, ctx_for(&p, Op::Other, &condition)))?;
        self.properties_of(path, false).await
    }

    async fn set_metadata(
        &self,
        path: &BlobPath,
        metadata: BTreeMap<String, String>,
        condition: Condition,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        validate_metadata(path, &metadata)?;
        let client = self.blob(path)?;
        let (if_match, if_none_match) = etag_condition(&condition);
        let options = BlobClientSetMetadataOptions {
            if_match,
            if_none_match,
            ..Default::default()
        };
        let map: HashMap<String, String> = metadata.into_iter().collect();
        client
            .set_metadata(&map, Some(options))
            .await
            .map_err(|e| error::map(e, ctx_for(&p, Op::Other, &condition)))?;
        self.properties_of(path, false).await
    }

    async fn read_range(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StoreError> {
        self.download(path, range, None).await
    }

    async fn read_range_if_match(
        &self,
        path: &BlobPath,
        range: Option<Range<u64>>,
        etag: &ETag,
    ) -> Result<Bytes, StoreError> {
        self.download(path, range, Some(etag)).await
    }

    async fn list_blobs(&self, container: &str, prefix: &str) -> Result<Vec<BlobItem>, StoreError> {
        self.check_container(container)?;
        let client = self.service()?.service.blob_container_client(container);
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            include: Some(vec![ListBlobsIncludeItem::Metadata]),
            ..Default::default()
        };
        let map = |e| error::map(e, Ctx::new(container, Op::Other));
        let mut pager = client.list_blobs(Some(options)).map_err(map)?;
        let mut out = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(map)? {
            let Some(name) = item.name else { continue };
            let props = item.properties.unwrap_or_default();
            let kind = match props.blob_type {
                Some(BlobType::PageBlob) => BlobKind::PageBlob,
                _ => BlobKind::BlockBlob,
            };
            out.push(BlobItem {
                name,
                properties: BlobProperties {
                    kind,
                    length: props.content_length.unwrap_or(0),
                    etag: etag(props.etag.map(|e| e.to_string())),
                    last_modified: props.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    content: ContentProperties {
                        content_type: props.content_type,
                        content_encoding: props.content_encoding,
                        content_language: props.content_language,
                        cache_control: props.cache_control,
                        content_disposition: props.content_disposition,
                        content_md5: props.content_md5.and_then(md5_of),
                    },
                    metadata: item
                        .metadata
                        .and_then(|m| m.values)
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                },
            });
        }
        out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(out)
    }

    async fn put_blob(
        &self,
        path: &BlobPath,
        data: Bytes,
        options: CommitOptions,
    ) -> Result<BlobProperties, StoreError> {
        let p = path.to_string();
        validate_metadata(path, &options.metadata)?;
        let client = self.blob(path)?.block_blob_client();
        let (if_match, if_none_match) = etag_condition(&options.condition);
        let mut content = options.content.clone();
        // Azure stores the MD5 of a Put Blob itself; sending ours makes that explicit.
        let md5 = *content
            .content_md5
            .get_or_insert_with(|| Md5Digest::of(&data));
        let c = content.clone();
        let len = data.len() as u64;
        let upload = BlockBlobClientUploadOptions {
            blob_cache_control: c.cache_control,
            blob_content_disposition: c.content_disposition,
            blob_content_encoding: c.content_encoding,
            blob_content_language: c.content_language,
            blob_content_md5: Some(md5.0.to_vec()),
            blob_content_type: c.content_type,
            metadata: hash_map(&options.metadata),
            if_match,
            if_none_match,
            parallel: NonZero::new(1),
            partition_size: NonZero::new(len.clamp(1, PUT_BLOB_ONESHOT_BYTES)),
            ..Default::default()
        };
        // Put Blob checks x-ms-blob-content-md5 against the body: a mismatch is Md5Mismatch.
        let mut ctx = ctx_for(&p, Op::Create, &options.condition);
        ctx.md5 = Some((md5, data.as_ref()));
        let resp = client
            .upload(data.clone().into(), Some(upload))
            .await
            .map_err(|e| error::map(e, ctx))?;
        Ok(BlobProperties {
            kind: BlobKind::BlockBlob,
            length: len,
            etag: etag(resp.etag.map(|e| e.to_string())),
            last_modified: resp.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            content,
            metadata: options.metadata,
        })
    }

    async fn delete_blob(&self, path: &BlobPath, condition: Condition) -> Result<(), StoreError> {
        let p = path.to_string();
        let client = self.blob(path)?;
        let (if_match, if_none_match) = etag_condition(&condition);
        let options = BlobClientDeleteOptions {
            if_match,
            if_none_match,
            ..Default::default()
        };
        client
            .delete(Some(options))
            .await
            .map(|_| ())
            .map_err(|e| error::map(e, ctx_for(&p, Op::Other, &condition)))
    }

    async fn blob_url(&self, path: &BlobPath) -> Result<String, StoreError> {
        self.check_container(&path.container)?;
        let mut url: Url = self.resolved.endpoint.account_url.clone();
        url.set_query(None);
        url.path_segments_mut()
            .map_err(|()| StoreError::InvalidInput {
                path: path.to_string(),
                reason: "the endpoint cannot be a base url".into(),
            })?
            .pop_if_empty()
            .extend([path.container.as_str(), path.name.as_str()]);
        Ok(url.to_string())
    }
}

/// One spelling of an ETag whichever response carried it: the `ETag` header is quoted
/// (`"0x8D..."`), the `<Etag>` of List Blobs is not; both become the quoted form, which is also
/// what `If-Match` sends.
fn etag(raw: Option<String>) -> ETag {
    let raw = raw.unwrap_or_default();
    let bare = raw.trim_matches('"');
    ETag(if bare.is_empty() {
        String::new()
    } else {
        format!("\"{bare}\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_of_headers_and_listings_are_spelled_alike() {
        let header = etag(Some("\"0x8DC0FFEE\"".into()));
        let listed = etag(Some("0x8DC0FFEE".into()));
        assert_eq!(header, listed);
        assert_eq!(header.as_str(), "\"0x8DC0FFEE\"");
        assert_eq!(etag(None).as_str(), "");
    }

    fn store(dest: &str) -> AzureStore {
        let env = BTreeMap::from([(
            credential::ENV_CONNECTION_STRING.to_string(),
            "UseDevelopmentStorage=true".to_string(),
        )]);
        let resolved = resolve(dest, &env, None).unwrap();
        AzureStore::new(resolved, http_client(4).unwrap(), &env).unwrap()
    }

    #[test]
    fn self_signed_sas_is_renewed_an_hour_before_expiry() {
        let now = OffsetDateTime::now_utc();
        let signed = |secs| Some(now + time::Duration::seconds(secs));
        assert!(!needs_resigning(None, now));
        assert!(!needs_resigning(signed(SAS_LIFETIME_SECS), now));
        assert!(!needs_resigning(signed(SAS_REFRESH_SECS + 1), now));
        assert!(needs_resigning(signed(SAS_REFRESH_SECS), now));
        assert!(needs_resigning(signed(-5), now));
        let s = store("http://127.0.0.1:1/devstoreaccount1");
        let first = s.service().unwrap();
        let expires = first.expires.expect("an account key signs an expiring sas");
        assert!(expires - now >= time::Duration::seconds(SAS_LIFETIME_SECS - 60));
        assert!(
            Arc::ptr_eq(&first, &s.service().unwrap()),
            "reused while fresh"
        );
    }

    #[test]
    fn blob_urls_are_plain_and_container_scope_is_enforced() {
        let s = store("http://127.0.0.1:1/devstoreaccount1/");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let url = rt
            .block_on(s.blob_url(&BlobPath::parse("c1c/a b/ü?.txt").unwrap()))
            .unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:1/devstoreaccount1/c1c/a%20b%2F%C3%BC%3F.txt"
        );
        assert!(!format!("{s:?}").contains("sig"));
        let scoped = store("http://127.0.0.1:1/devstoreaccount1/only");
        let err = rt
            .block_on(scoped.blob_url(&BlobPath::parse("other/x").unwrap()))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }));
        let dot = BlobPath {
            container: "only".into(),
            name: ".".into(),
        };
        assert!(matches!(
            scoped.blob(&dot),
            Err(StoreError::InvalidInput { .. })
        ));
        assert_eq!(rt.block_on(scoped.list_containers()).unwrap(), ["only"]);
    }
}
