//! Export planning: resolve a blob list against a store, order it, and split it across drives.
//!
//! The one planning function shared by `drivecopy export` and `drivecopy plan-export`
//! (PreviewExport, azure-import-export.md §5.2), so the two cannot disagree:
//! 1. [`resolve`]: every `BlobPath` and `BlobPathPrefix` entry (§4.1: `/` every container,
//!    `/book` containers starting with `book`, `/music/` one container, `/music/love` a blob-name
//!    prefix, `$root`) is matched against the store's listings; entries are counted as unique,
//!    duplicate (the same entry again) or nonexistent (matching no blob); the blobs are the union,
//!    each once, sorted by blob path (container, then name, bytewise);
//! 2. [`plan_drive`]: in that order, each blob whose [`blob_cost_bytes`] still fits the drive's
//!    usable bytes goes on the drive (first fit: a blob that does not fit is passed over and
//!    smaller later ones may still go); the others are the remainder, which becomes the
//!    incomplete blob list (§5.6, `incompleteBlobListUri`);
//! 3. [`plan_drives`]: drive after drive on the remainder, as exporting the incomplete list onto
//!    the next drive does; a blob bigger than a whole drive is not exportable.
//!
//! A blob's cost is what it takes on an NTFS-like drive: its length rounded up to 4 KiB clusters
//! (a page blob counts its full length, although holes stay sparse), one cluster for its
//! `.properties` file, its `.metadata` file rounded up to clusters, and its estimated share of the
//! drive manifest. A drive's usable bytes are its capacity less [`DRIVE_RESERVE_BYTES`].
//!
//! This module does no drive I/O; it reads only listings and properties from the store.

use std::collections::{BTreeMap, HashMap};

use crate::bloblist::{BlobList, Selector};
use crate::names::BlobPath;
use crate::store::{BlobProperties, BlobStore, StoreError};

/// Cluster size assumed for allocation, bytes (NTFS default).
pub const CLUSTER_BYTES: u64 = 4096;
/// Bytes kept free on every drive for directories and the file system, bytes.
pub const DRIVE_RESERVE_BYTES: u64 = 1 << 20;
/// The range size the export downloads and records in the manifest, bytes (§1.3: ≤ 4 MB).
pub const RANGE_BYTES: u64 = 4 * 1024 * 1024;

/// One blob to export, with the properties its listing gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanBlob {
    /// The blob.
    pub path: BlobPath,
    /// Its properties at listing time (the ETag every later read is checked against).
    pub properties: BlobProperties,
}

/// A blob list resolved against a store.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The blobs, each once, sorted by blob path.
    pub blobs: Vec<PlanBlob>,
    /// Distinct entries of the list.
    pub unique_entries: u64,
    /// Entries that repeat an earlier one.
    pub duplicate_entries: u64,
    /// Entries that match no blob, in list order.
    pub nonexistent: Vec<Selector>,
}

/// Round up to whole clusters.
fn clusters(bytes: u64) -> u64 {
    bytes.div_ceil(CLUSTER_BYTES).saturating_mul(CLUSTER_BYTES)
}

/// The drive bytes a blob takes once exported (module docs): data clusters, side files and its
/// manifest entry.
pub fn blob_cost_bytes(blob: &PlanBlob) -> u64 {
    let len = blob.properties.length;
    let path_bytes = blob.path.to_string().len() as u64;
    let metadata_bytes: u64 = blob
        .properties
        .metadata
        .iter()
        .map(|(k, v)| 2 * k.len() as u64 + v.len() as u64 + 16)
        .sum::<u64>()
        + 64;
    // Ranges follow committed blocks, merged up to 4 MiB: at most two per 4 MiB, plus one.
    let ranges = 2 * len.div_ceil(RANGE_BYTES) + 1;
    let manifest_entry = 512 + 4 * path_bytes + 120 * ranges;
    clusters(len)
        .saturating_add(CLUSTER_BYTES)
        .saturating_add(clusters(metadata_bytes))
        .saturating_add(manifest_entry)
}

/// The usable bytes of a drive of `capacity_bytes`.
pub fn usable_bytes(capacity_bytes: u64) -> u64 {
    capacity_bytes.saturating_sub(DRIVE_RESERVE_BYTES)
}

/// Resolve `list` against `store` (module docs, step 1).
///
/// # Errors
/// A [`StoreError`] from a listing or properties call other than `NotFound` (a missing container
/// or blob makes its entry nonexistent).
pub async fn resolve(store: &dyn BlobStore, list: &BlobList) -> Result<Resolved, StoreError> {
    let mut out = Resolved::default();
    let mut seen: Vec<&Selector> = Vec::new();
    let mut found: BTreeMap<BlobPath, BlobProperties> = BTreeMap::new();
    let mut containers: Option<Vec<String>> = None;
    let mut listed: HashMap<String, Vec<(BlobPath, BlobProperties)>> = HashMap::new();
    for entry in &list.entries {
        if seen.contains(&entry) {
            out.duplicate_entries += 1;
            continue;
        }
        seen.push(entry);
        out.unique_entries += 1;
        let mut hits: Vec<(BlobPath, BlobProperties)> = Vec::new();
        match entry {
            Selector::Exact(path) => match store.get_properties(path).await {
                Ok(p) => hits.push((path.clone(), p)),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            },
            Selector::BlobPrefix { container, prefix } => {
                hits = list_container(store, container, prefix).await?;
            }
            Selector::All | Selector::ContainerPrefix(_) | Selector::Container(_) => {
                let names: Vec<String> = match entry {
                    Selector::Container(c) => vec![c.clone()],
                    _ => {
                        if containers.is_none() {
                            containers = Some(store.list_containers().await?);
                        }
                        containers
                            .iter()
                            .flatten()
                            .filter(|c| match entry {
                                Selector::ContainerPrefix(p) => c.starts_with(p.as_str()),
                                _ => true,
                            })
                            .cloned()
                            .collect()
                    }
                };
                for c in names {
                    if !listed.contains_key(&c) {
                        let blobs = list_container(store, &c, "").await?;
                        listed.insert(c.clone(), blobs);
                    }
                    hits.extend(listed.get(&c).into_iter().flatten().cloned());
                }
            }
        }
        if hits.is_empty() {
            out.nonexistent.push(entry.clone());
        }
        for (path, props) in hits {
            found.entry(path).or_insert(props);
        }
    }
    out.blobs = found
        .into_iter()
        .map(|(path, properties)| PlanBlob { path, properties })
        .collect();
    Ok(out)
}

async fn list_container(
    store: &dyn BlobStore,
    container: &str,
    prefix: &str,
) -> Result<Vec<(BlobPath, BlobProperties)>, StoreError> {
    match store.list_blobs(container, prefix).await {
        Ok(items) => Ok(items
            .into_iter()
            .map(|item| {
                (
                    BlobPath {
                        container: container.to_string(),
                        name: item.name,
                    },
                    item.properties,
                )
            })
            .collect()),
        Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// What one drive takes: indexes into the resolved blobs, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriveSplit {
    /// Blobs that go on the drive.
    pub selected: Vec<usize>,
    /// Blobs that do not fit (the incomplete blob list).
    pub rest: Vec<usize>,
    /// Sum of the selected blobs' lengths, bytes.
    pub blob_bytes: u64,
    /// Sum of the selected blobs' costs ([`blob_cost_bytes`]), bytes.
    pub occupied_bytes: u64,
}

/// Split `candidates` (indexes into `blobs`, in export order) for one drive of `usable` bytes
/// (module docs, step 2).
pub fn plan_drive(blobs: &[PlanBlob], candidates: &[usize], usable: u64) -> DriveSplit {
    let mut split = DriveSplit::default();
    for &i in candidates {
        let Some(blob) = blobs.get(i) else { continue };
        let cost = blob_cost_bytes(blob);
        if split.occupied_bytes.saturating_add(cost) <= usable {
            split.occupied_bytes += cost;
            split.blob_bytes += blob.properties.length;
            split.selected.push(i);
        } else {
            split.rest.push(i);
        }
    }
    split
}

/// A plan over as many drives as it takes (PreviewExport).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportPlan {
    /// Usable bytes per drive.
    pub usable_bytes: u64,
    /// Each drive in turn.
    pub drives: Vec<DriveSplit>,
    /// Blobs larger than a whole drive (indexes into the resolved blobs).
    pub not_exportable: Vec<usize>,
}

/// Plan drive after drive of `drive_size_bytes` until every exportable blob is placed (module
/// docs, step 3).
pub fn plan_drives(blobs: &[PlanBlob], drive_size_bytes: u64) -> ExportPlan {
    let usable = usable_bytes(drive_size_bytes);
    let (mut pending, not_exportable): (Vec<usize>, Vec<usize>) =
        (0..blobs.len()).partition(|&i| blob_cost_bytes(&blobs[i]) <= usable);
    let mut drives = Vec::new();
    while !pending.is_empty() {
        let split = plan_drive(blobs, &pending, usable);
        if split.selected.is_empty() {
            break;
        }
        pending = split.rest.clone();
        drives.push(split);
    }
    ExportPlan {
        usable_bytes: usable,
        drives,
        not_exportable,
    }
}

/// The blob list naming exactly `indexes` of `blobs` (`BlobPath` entries, in order): the
/// incomplete blob list of §5.6.
pub fn blob_list_of(blobs: &[PlanBlob], indexes: &[usize]) -> BlobList {
    BlobList {
        entries: indexes
            .iter()
            .filter_map(|&i| blobs.get(i))
            .map(|b| Selector::Exact(b.path.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::LocalStore;
    use crate::store::CommitOptions;
    use bytes::Bytes;

    fn bp(s: &str) -> BlobPath {
        BlobPath::parse(s).unwrap()
    }

    #[test]
    fn resolve_counts_entries_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            for c in ["music", "musicals", "books", "$root"] {
                store.create_container(c).await.unwrap();
            }
            for p in [
                "music/love-2",
                "music/love-1",
                "music/hate",
                "musicals/cats",
                "books/a",
                "$root/logo.bmp",
            ] {
                store
                    .put_blob(&bp(p), Bytes::from_static(b"x"), CommitOptions::default())
                    .await
                    .unwrap();
            }
            let list = BlobList::parse(
                b"<BlobList><BlobPathPrefix>/music/love</BlobPathPrefix>\
                  <BlobPath>$root/logo.bmp</BlobPath><BlobPathPrefix>/mus</BlobPathPrefix>\
                  <BlobPathPrefix>/music/love</BlobPathPrefix><BlobPath>books/none</BlobPath>\
                  <BlobPathPrefix>/nothere/</BlobPathPrefix></BlobList>",
            )
            .unwrap();
            let r = resolve(&store, &list).await.unwrap();
            let names: Vec<String> = r.blobs.iter().map(|b| b.path.to_string()).collect();
            assert_eq!(
                names,
                [
                    "$root/logo.bmp",
                    "music/hate",
                    "music/love-1",
                    "music/love-2",
                    "musicals/cats"
                ]
            );
            assert_eq!((r.unique_entries, r.duplicate_entries), (5, 1));
            assert_eq!(r.nonexistent.len(), 2);
            let all = BlobList::parse(b"<BlobList><BlobPathPrefix>/</BlobPathPrefix></BlobList>")
                .unwrap();
            assert_eq!(resolve(&store, &all).await.unwrap().blobs.len(), 6);
        });
    }

    fn blob(name: &str, len: u64) -> PlanBlob {
        PlanBlob {
            path: bp(name),
            properties: BlobProperties {
                kind: crate::store::BlobKind::BlockBlob,
                length: len,
                etag: crate::store::ETag("e".into()),
                last_modified: time::OffsetDateTime::UNIX_EPOCH,
                content: Default::default(),
                metadata: Default::default(),
            },
        }
    }

    #[test]
    fn first_fit_and_multi_drive_plans_agree() {
        let mb = 1_000_000;
        let blobs: Vec<PlanBlob> = [5, 3, 4, 1, 30, 2]
            .iter()
            .enumerate()
            .map(|(i, n)| blob(&format!("c1c/b{i}"), n * mb))
            .collect();
        let size = 9 * mb;
        let plan = plan_drives(&blobs, size);
        assert_eq!(plan.not_exportable, [4]);
        let usable = usable_bytes(size);
        let first = plan_drive(&blobs, &[0, 1, 2, 3, 4, 5], usable);
        // Whatever the first drive takes, the plan's first drive is the same.
        assert_eq!(first.selected, plan.drives[0].selected);
        assert!(first.occupied_bytes <= usable);
        // The second drive of the plan is what exporting the first drive's remainder does.
        let second = plan_drive(&blobs, &first.rest, usable);
        assert_eq!(second.selected, plan.drives[1].selected);
        let placed: usize = plan.drives.iter().map(|d| d.selected.len()).sum();
        assert_eq!(placed, 5);
        let list = blob_list_of(&blobs, &first.rest);
        assert_eq!(list.entries.len(), first.rest.len());
        assert!(blob_cost_bytes(&blob("c1c/z", 0)) >= CLUSTER_BYTES);
    }
}
