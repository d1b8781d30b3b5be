//! Writing drive files for an export: safe creation beneath the drive root, temp names and
//! atomic renames, and the [`Writer`] service that writes byte ranges at given offsets.
//!
//! The twin of [`super::read`] (style.md §5 ASYNC): with [`IoEngine::Uring`] one dedicated OS
//! thread runs a tokio-uring runtime and every write is a local task on its ring; with
//! [`IoEngine::Std`] a few threads call `pwrite`. Callers stay on their tokio runtime; requests go
//! over a bounded channel and answers come back on a oneshot.
//!
//! `O_DIRECT`: a file created by [`DriveDir::create_temp`] is opened a second time with
//! `O_DIRECT` when the file system allows it. A write whose offset and length are multiples of
//! 4096 bytes goes through that handle (no page-cache copy), from its own memory when that is
//! 4096-aligned too (the local store's reads are), else from a copy in an aligned pool buffer;
//! any other write (a file's tail) goes through the ordinary handle.
//!
//! Path safety: every directory is opened or created one component at a time with
//! `openat(O_NOFOLLOW | O_DIRECTORY)` / `mkdirat` beneath an `O_PATH` handle of the drive root,
//! so no name and no symbolic link on the drive can make a write land outside the root; the
//! components come from a [`DrivePath`], which has no `..`, root or separator.
//!
//! This module never hashes, never decides what to write, and never reads.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::buf::{BufPool, PoolBuf, BUF_ALIGN_BYTES};
use super::read::IoEngine;
use crate::names::DrivePath;

/// Capacity of the request channel into the writer service.
pub const WRITE_QUEUE_DEPTH: usize = 64;
/// Number of `pwrite` threads of the std engine.
pub const STD_WRITER_THREADS: usize = 4;
/// Aligned buffers the writer keeps for `O_DIRECT` copies.
pub const DIRECT_BUFFERS: usize = 8;

fn cstr(name: &str) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// `openat(dir, name, flags, mode)` returning an owned descriptor.
fn openat(dir: &impl AsRawFd, name: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; `dir` is an open
    // descriptor borrowed for the call; the returned descriptor is checked before it is owned.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A directory on the drive, opened beneath the root without following symbolic links.
#[derive(Debug)]
pub struct DriveDir {
    fd: OwnedFd,
}

impl DriveDir {
    /// Open (creating as needed, mode 0755) the directory of every segment of `path` but the
    /// last, beneath `root` (an `O_PATH | O_DIRECTORY` handle, see [`super::read::open_root`]).
    ///
    /// # Errors
    /// `ELOOP`/`ENOTDIR` when a component is a symbolic link or a file; any other OS error.
    pub fn parent_of(root: &File, path: &DrivePath) -> io::Result<DriveDir> {
        DriveDir::open_parent(root, path, true)
    }

    /// Open the directory of every segment of `path` but the last beneath `root`, creating
    /// missing ones only when `create` is set.
    ///
    /// # Errors
    /// As [`DriveDir::parent_of`]; `NotFound` for a missing directory without `create`.
    pub fn open_parent(root: &File, path: &DrivePath, create: bool) -> io::Result<DriveDir> {
        let segments = path.segments();
        let parents = segments.split_last().map_or(&[][..], |(_, p)| p);
        let mut dir = openat(root, ".", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        for seg in parents {
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            dir = match openat(&dir, seg, flags, 0) {
                Ok(fd) => fd,
                Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                    let c = cstr(seg)?;
                    // SAFETY: `c` is a valid C string; `dir` is an open directory descriptor.
                    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
                    if rc != 0 {
                        let err = last_error();
                        if err.kind() != io::ErrorKind::AlreadyExists {
                            return Err(err);
                        }
                    }
                    openat(&dir, seg, flags, 0)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(DriveDir { fd: dir })
    }

    /// Create `name` in this directory, exclusively (`O_EXCL`, never through a link), for
    /// writing, and open it a second time with `O_DIRECT` when `direct` is set and the file
    /// system allows it. An existing file of that name is replaced first (a temp file left by
    /// an earlier, interrupted run).
    ///
    /// # Errors
    /// The OS error.
    pub fn create_temp(&self, name: &str, direct: bool) -> io::Result<WriteFile> {
        let file = self.create_exclusive(name)?;
        let direct_file = if direct {
            openat(
                &self.fd,
                name,
                libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_DIRECT,
                0,
            )
            .ok()
            .map(File::from)
        } else {
            None
        };
        Ok(WriteFile {
            inner: Arc::new(WriteInner {
                file,
                direct: direct_file,
            }),
        })
    }

    /// Write a small file (a side file, the manifest) under a temp name, `fdatasync` it when
    /// `sync` is set, then rename it to `name`: readers see the old file or the whole new one.
    ///
    /// # Errors
    /// The OS error.
    pub fn write_small(&self, name: &str, temp: &str, data: &[u8], sync: bool) -> io::Result<()> {
        let file = self.create_small(temp, data)?;
        if sync {
            if let Err(e) = file.sync_data() {
                let _ = self.unlink(temp);
                return Err(e);
            }
        }
        self.rename(temp, name)
    }

    /// Create `name` holding `data`, as [`DriveDir::create_temp`] creates it (replacing a file of
    /// that name), not flushed. Returns the open file; on a failed write the file is removed.
    ///
    /// # Errors
    /// The OS error.
    pub fn create_small(&self, name: &str, data: &[u8]) -> io::Result<File> {
        let file = self.create_exclusive(name)?;
        if let Err(e) = file.write_all_at(data, 0) {
            let _ = self.unlink(name);
            return Err(e);
        }
        Ok(file)
    }

    /// Create `name` for writing (`O_EXCL`, never through a link), replacing a file of that name:
    /// it is unlinked, not truncated, so a hard link to another file is never written through.
    /// The unlink is tried only when the name is taken (one system call in the common case).
    fn create_exclusive(&self, name: &str) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        match openat(&self.fd, name, flags, 0o644) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.unlink(name)?;
                Ok(File::from(openat(&self.fd, name, flags, 0o644)?))
            }
            other => Ok(File::from(other?)),
        }
    }

    /// Rename `from` to `to` within this directory (replacing `to`).
    ///
    /// # Errors
    /// The OS error.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: both strings are valid C strings; `fd` is an open directory descriptor.
        let rc = unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Remove the file `name` from this directory.
    ///
    /// # Errors
    /// The OS error (`NotFound` when it is absent).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: `c` is a valid C string; the descriptor is an open directory.
        let rc = unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Rename `from` in this directory to `to` in `target` (replacing `to`); both directories
    /// must be on the same file system.
    ///
    /// # Errors
    /// The OS error.
    pub fn rename_into(&self, from: &str, target: &DriveDir, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        // SAFETY: both strings are valid C strings; both descriptors are open directories.
        let rc = unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                f.as_ptr(),
                target.fd.as_raw_fd(),
                t.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Remove the empty directory `name` from this directory.
    ///
    /// # Errors
    /// The OS error (`DirectoryNotEmpty`, `NotFound`).
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: `c` is a valid C string; the descriptor is an open directory.
        let rc = unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Open the regular file `name` in this directory for reading, without following a link.
    ///
    /// # Errors
    /// `InvalidInput` for anything but a regular file; the OS error otherwise (`ELOOP` for a
    /// symbolic link).
    pub fn open_read(&self, name: &str) -> io::Result<File> {
        let file = File::from(openat(
            &self.fd,
            name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )?);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// Whether `name` exists in this directory (any type, links not followed).
    pub fn exists(&self, name: &str) -> bool {
        openat(&self.fd, name, libc::O_PATH | libc::O_NOFOLLOW, 0).is_ok()
    }
}

/// The directories files were recently placed in, kept open: placing many files in one directory
/// opens its components once instead of once per file ([`DriveDir::parent_of`] opens each).
///
/// At most [`DirCache::MAX_OPEN`] directories are kept (descriptors of `O_PATH` handles); when
/// full, the cache is emptied and fills again. A cached handle stays valid if the directory is
/// renamed, so it must only be used on a drive that nothing else changes during the copy.
#[derive(Debug)]
pub struct DirCache {
    root: Arc<File>,
    open: Mutex<HashMap<Vec<String>, Arc<DriveDir>>>,
}

impl DirCache {
    /// The most directories kept open.
    pub const MAX_OPEN: usize = 64;

    /// An empty cache for directories beneath `root` (an `O_PATH | O_DIRECTORY` handle).
    pub fn new(root: Arc<File>) -> Self {
        DirCache {
            root,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of every segment of `path` but the last, as [`DriveDir::parent_of`] opens
    /// (and creates) it, from the cache when it was opened before.
    ///
    /// # Errors
    /// As [`DriveDir::parent_of`].
    pub fn parent_of(&self, path: &DrivePath) -> io::Result<Arc<DriveDir>> {
        let segments = path.segments();
        let parents = &segments[..segments.len().saturating_sub(1)];
        if let Some(dir) = lock(&self.open).get(parents) {
            return Ok(Arc::clone(dir));
        }
        let dir = Arc::new(DriveDir::parent_of(&self.root, path)?);
        let mut open = lock(&self.open);
        if open.len() >= Self::MAX_OPEN {
            open.clear();
        }
        open.insert(parents.to_vec(), Arc::clone(&dir));
        Ok(dir)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes free for an unprivileged writer on the file system holding `root`
/// (`fstatvfs`: available blocks × fragment size).
///
/// # Errors
/// The OS error.
pub fn free_bytes(root: &File) -> io::Result<u64> {
    // SAFETY: `statvfs` is plain old data; all-zero is a valid value that the call overwrites.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `root` is an open descriptor and `st` a valid, writable `statvfs`.
    let rc = unsafe { libc::fstatvfs(root.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(last_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Flushes of the file system holding a drive (`syncfs`: one call instead of an `fsync` per
/// file), all through one handle opened at the start of the copy.
///
/// Linux reports a write-back error to each `syncfs` handle opened before it happened, once
/// (≥ 5.8): a handle opened for the last flush would miss an error that background write-back
/// met earlier. So the handle is opened once, and the first error any flush sees is kept and
/// returned by every later one.
#[derive(Debug)]
pub struct DriveFlush {
    dir: File,
    failed: Mutex<Option<String>>,
}

impl DriveFlush {
    /// Open the flush handle of the file system holding `root` (an `O_PATH` directory handle).
    ///
    /// # Errors
    /// The OS error.
    pub fn open(root: &File) -> io::Result<DriveFlush> {
        // `root` is an `O_PATH` handle, which syncfs refuses: open the directory itself.
        let dir = File::from(openat(root, ".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?);
        Ok(DriveFlush {
            dir,
            failed: Mutex::new(None),
        })
    }

    /// Flush every written file of the file system to the drive.
    ///
    /// # Errors
    /// The OS error of this flush, or of any earlier flush through this handle.
    pub fn flush(&self) -> io::Result<()> {
        let result = crate::store::local::syncfs(&self.dir);
        let mut failed = lock(&self.failed);
        if let Err(e) = &result {
            failed.get_or_insert_with(|| e.to_string());
        }
        match &*failed {
            Some(first) => Err(io::Error::other(first.clone())),
            None => Ok(()),
        }
    }
}

/// A file being written, ready for [`Writer::write_at`]. Cheap to clone (shared handle).
#[derive(Debug, Clone)]
pub struct WriteFile {
    inner: Arc<WriteInner>,
}

#[derive(Debug)]
struct WriteInner {
    file: File,
    direct: Option<File>,
}

impl WriteFile {
    /// Set the file's length in bytes (`ftruncate`): a page blob's file is sized first, so the
    /// holes between written ranges stay unallocated (sparse).
    ///
    /// # Errors
    /// The OS error.
    pub fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.file.set_len(len_bytes)
    }

    /// Flush the file's data to the drive (`fdatasync`).
    ///
    /// # Errors
    /// The OS error.
    pub fn sync(&self) -> io::Result<()> {
        self.inner.file.sync_data()
    }

    /// Whether aligned writes go through an `O_DIRECT` handle.
    pub fn is_direct(&self) -> bool {
        self.inner.direct.is_some()
    }
}

/// The bytes of one write: shared bytes from the store, or an aligned copy for `O_DIRECT`.
enum WriteData {
    Shared(Bytes),
    Aligned(PoolBuf),
}

impl WriteData {
    fn as_slice(&self) -> &[u8] {
        match self {
            WriteData::Shared(b) => b,
            WriteData::Aligned(p) => p.as_slice(),
        }
    }
}

struct WriteRequest {
    file: Arc<WriteInner>,
    offset: u64,
    data: WriteData,
    /// Aligned offset, length and memory: the write goes through the `O_DIRECT` handle.
    direct: bool,
    reply: oneshot::Sender<io::Result<()>>,
}

impl WriteRequest {
    fn target(&self) -> &File {
        match (self.direct, &self.file.direct) {
            (true, Some(direct)) => direct,
            _ => &self.file.file,
        }
    }
}

/// A handle to the writer service. Cloning shares it; the service stops when the last handle is
/// dropped and the writes in flight are done.
#[derive(Debug, Clone)]
pub struct Writer {
    engine: IoEngine,
    tx: mpsc::Sender<WriteRequest>,
    aligned: BufPool,
}

impl Writer {
    /// Start the service: one io_uring thread, or [`STD_WRITER_THREADS`] `pwrite` threads.
    /// `direct_buffer_bytes` sizes the aligned buffers kept for `O_DIRECT` copies (the largest
    /// write that can go direct).
    ///
    /// # Errors
    /// The OS error from spawning a thread or building the ring.
    pub fn start(engine: IoEngine, direct_buffer_bytes: usize) -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_DEPTH);
        match engine {
            IoEngine::Uring => uring::spawn_service(rx)?,
            IoEngine::Std => spawn_std_service(rx, STD_WRITER_THREADS)?,
        }
        let size = direct_buffer_bytes.max(BUF_ALIGN_BYTES);
        Ok(Writer {
            engine,
            tx,
            aligned: BufPool::new(DIRECT_BUFFERS, size),
        })
    }

    /// The engine this service runs.
    pub fn engine(&self) -> IoEngine {
        self.engine
    }

    /// Write all of `data` at `offset` (bytes) of `file`.
    ///
    /// # Errors
    /// The OS error (`ENOSPC` when the drive is full); `BrokenPipe` when the service stopped.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop a write already submitted.
    pub async fn write_at(&self, file: &WriteFile, offset: u64, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let align = BUF_ALIGN_BYTES as u64;
        let direct_ok = file.inner.direct.is_some()
            && offset.is_multiple_of(align)
            && (data.len() as u64).is_multiple_of(align);
        let (data, direct) = if !direct_ok {
            (WriteData::Shared(data), false)
        } else if (data.as_ptr() as usize).is_multiple_of(BUF_ALIGN_BYTES) {
            // Aligned memory already (the local store's reads): straight to the drive.
            (WriteData::Shared(data), true)
        } else {
            let mut buf = self.aligned.acquire().await;
            match buf.as_mut_slice().get_mut(..data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(&data);
                    buf.set_len(data.len());
                    (WriteData::Aligned(buf), true)
                }
                None => (WriteData::Shared(data), false),
            }
        };
        let (reply, answer) = oneshot::channel();
        let request = WriteRequest {
            file: Arc::clone(&file.inner),
            offset,
            data,
            direct,
            reply,
        };
        let stopped = || io::Error::new(io::ErrorKind::BrokenPipe, "the writer service stopped");
        if self.tx.send(request).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn spawn_std_service(rx: mpsc::Receiver<WriteRequest>, threads: usize) -> io::Result<()> {
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("drivecopy-write-{i}"))
            .spawn(move || loop {
                let next = rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .blocking_recv();
                let Some(request) = next else { break };
                let result = request
                    .target()
                    .write_all_at(request.data.as_slice(), request.offset);
                let _ = request.reply.send(result);
            })?;
    }
    Ok(())
}

/// The io_uring engine: a tokio-uring runtime on its own thread.
mod uring {
    use super::*;

    /// The bytes of a write, lent to the ring by value.
    struct RingBuf(WriteData);

    // SAFETY: `stable_ptr` points into either a `Bytes` allocation (immutable, reference-counted,
    // never moved while this value holds a reference) or a pool buffer's boxed pages (which do
    // not move while the `PoolBuf` exists). Every byte up to `bytes_total` is initialised.
    unsafe impl tokio_uring::buf::IoBuf for RingBuf {
        fn stable_ptr(&self) -> *const u8 {
            self.0.as_slice().as_ptr()
        }

        fn bytes_init(&self) -> usize {
            self.0.as_slice().len()
        }

        fn bytes_total(&self) -> usize {
            self.0.as_slice().len()
        }
    }

    pub(super) fn spawn_service(rx: mpsc::Receiver<WriteRequest>) -> io::Result<()> {
        let entries = u32::try_from(WRITE_QUEUE_DEPTH.next_power_of_two()).unwrap_or(64);
        crate::engine::read::uring::spawn_ring("drivecopy-uring-write", entries, move || serve(rx))
    }

    async fn serve(mut rx: mpsc::Receiver<WriteRequest>) {
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                request = rx.recv() => match request {
                    Some(request) => { in_flight.spawn_local(serve_one(request)); }
                    None => break,
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn serve_one(request: WriteRequest) {
        let result = match request.target().try_clone() {
            Ok(std_file) => {
                let file = tokio_uring::fs::File::from_std(std_file);
                let (res, _buf) = file
                    .write_all_at(RingBuf(request.data), request.offset)
                    .await;
                let closed = file.close().await;
                res.and(closed)
            }
            Err(e) => Err(e),
        };
        let _ = request.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::read::open_root;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn engines() -> Vec<IoEngine> {
        let mut v = vec![IoEngine::Std];
        if IoEngine::feature_test().is_ok() {
            v.push(IoEngine::Uring);
        }
        v
    }

    #[test]
    fn writes_land_beneath_the_root_and_holes_stay_sparse() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        for engine in engines() {
            let dir = tempfile::tempdir().unwrap();
            let root = open_root(dir.path()).unwrap();
            let path = DrivePath::from_segments(["c1", "a b", "f.bin"]).unwrap();
            let d = DriveDir::parent_of(&root, &path).unwrap();
            let f = d.create_temp(".f.tmp", true).unwrap();
            let len = 8 << 20;
            f.set_len(len).unwrap();
            let writer = Writer::start(engine, 1 << 20).unwrap();
            let aligned = Bytes::from(vec![7u8; 1 << 20]);
            let tail = Bytes::from(vec![9u8; 100]);
            rt.block_on(async {
                writer.write_at(&f, 0, aligned.clone()).await.unwrap();
                writer.write_at(&f, len - 100, tail.clone()).await.unwrap();
            });
            f.sync().unwrap();
            d.rename(".f.tmp", "f.bin").unwrap();
            let on_disk = std::fs::read(dir.path().join("c1/a b/f.bin")).unwrap();
            assert_eq!(on_disk.len() as u64, len);
            assert_eq!(&on_disk[..1 << 20], &aligned[..]);
            assert_eq!(&on_disk[(len - 100) as usize..], &tail[..]);
            assert!(on_disk[1 << 20..(len - 100) as usize]
                .iter()
                .all(|&b| b == 0));
            let meta = std::fs::metadata(dir.path().join("c1/a b/f.bin")).unwrap();
            assert!(meta.blocks() * 512 < len, "{engine:?}: file is not sparse");
        }
    }

    #[test]
    fn symlinks_on_the_way_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), dir.path().join("c1")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let path = DrivePath::from_segments(["c1", "x"]).unwrap();
        assert!(DriveDir::parent_of(&root, &path).is_err());
        // A symlink in the place of the temp name is replaced, never followed.
        std::fs::create_dir(dir.path().join("c2")).unwrap();
        symlink(
            outside.path().join("victim"),
            dir.path().join("c2").join(".t"),
        )
        .unwrap();
        let d =
            DriveDir::parent_of(&root, &DrivePath::from_segments(["c2", "y"]).unwrap()).unwrap();
        d.write_small("y", ".t", b"hello", true).unwrap();
        assert!(!outside.path().join("victim").exists());
        assert_eq!(std::fs::read(dir.path().join("c2/y")).unwrap(), b"hello");
        assert!(!d.exists(".t"));
    }
}
