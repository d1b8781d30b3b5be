//! Reading drive files: the I/O engine choice, opening files safely beneath the drive root, and
//! the [`Reader`] service that fills pool buffers at given offsets.
//!
//! Two engines with one API (style.md §5 ASYNC, §6 items 4–5; neon's `io_engine.rs`):
//! * [`IoEngine::Uring`]: one dedicated OS thread runs a tokio-uring runtime; each request becomes
//!   a local task, so many reads are in flight on one ring (azure-sdk-notes.md §5, §8 item 12).
//! * [`IoEngine::Std`]: a few OS threads doing `pread`, for kernels or sandboxes without
//!   io_uring (seccomp, `kernel.io_uring_disabled`).
//!
//! Callers stay on an ordinary tokio multi-thread runtime: requests go over a bounded channel and
//! replies come back on a oneshot. Buffers are passed by value and always returned, also on
//! error (tokio-uring's `BufResult` shape).
//!
//! [`ReadFile::open_beneath`] is the only way this crate opens a drive file for reading:
//! `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, or a
//! component-by-component `O_NOFOLLOW` walk where `openat2` is missing, so no manifest path can
//! reach outside the drive.
//!
//! This module must not hash, upload or decide block sizes, and it never writes.
//! It is Linux-only (io_uring, `openat2`, `O_DIRECT`).

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::buf::{PoolBuf, BUF_ALIGN_BYTES};

/// The environment variable that forces an engine: `uring` or `std` (any other value is ignored
/// with a remark). Meant for tests and CI, which run the suite once per engine.
pub const IO_ENGINE_ENV: &str = "DRIVECOPY_IO_ENGINE";

/// The default capacity of the request channel into the reader service.
pub const READ_QUEUE_DEPTH: usize = 64;

/// The default number of `pread` threads of the std engine.
pub const STD_READER_THREADS: usize = 4;

/// The alignment, in bytes, that `O_DIRECT` reads need for the file offset and the length.
pub const DIRECT_ALIGN_BYTES: u64 = BUF_ALIGN_BYTES as u64;

/// Which I/O engine reads drive files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoEngine {
    /// io_uring through tokio-uring, on one dedicated thread.
    Uring,
    /// `pread` on a small fixed set of threads.
    Std,
}

impl IoEngine {
    /// Choose the engine at startup: the [`IO_ENGINE_ENV`] override if set to `uring` or `std`,
    /// otherwise `Uring` if [`IoEngine::feature_test`] passes and `Std` if it fails.
    ///
    /// The second value is a remark the CLI should surface as a warning event when it is
    /// `Some`: why the std engine was chosen (for example "io_uring unavailable: Operation not
    /// permitted (os error 1)"), or that the override was forced or ignored. A forced `uring` is
    /// not tested here; [`Reader::start`] then fails if the kernel refuses it.
    pub fn probe() -> (IoEngine, Option<String>) {
        let forced = std::env::var(IO_ENGINE_ENV).ok();
        probe_with(forced.as_deref(), IoEngine::feature_test)
    }

    /// Build an io_uring runtime on a scratch thread and read 4096 bytes of `/dev/zero` through
    /// it, as neon's `feature_test` does (a system without `/dev/zero` fails the test).
    ///
    /// # Errors
    /// The error that building the ring or the read gave: `EPERM` when
    /// `kernel.io_uring_disabled` or a container policy forbids io_uring, `ENOSYS` on kernels or
    /// seccomp filters without it, `ENOMEM` when the locked-memory limit is too small.
    pub fn feature_test() -> io::Result<()> {
        let scratch = std::thread::Builder::new()
            .name("drivecopy-uring-probe".into())
            .spawn(uring::feature_test)?;
        scratch
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe thread panicked")))
    }

    /// The engine's name as [`IO_ENGINE_ENV`] spells it: `uring` or `std`.
    pub fn as_str(self) -> &'static str {
        match self {
            IoEngine::Uring => "uring",
            IoEngine::Std => "std",
        }
    }
}

fn probe_with(
    forced: Option<&str>,
    test: impl FnOnce() -> io::Result<()>,
) -> (IoEngine, Option<String>) {
    let mut remark = None;
    match forced.map(str::trim) {
        Some("uring") => return (IoEngine::Uring, None),
        Some("std") => {
            return (
                IoEngine::Std,
                Some(format!("{IO_ENGINE_ENV}=std forces the std engine")),
            );
        }
        Some(other) => {
            remark = Some(format!(
                "ignoring {IO_ENGINE_ENV}={other:?} (expected uring or std)"
            ));
        }
        None => {}
    }
    match test() {
        Ok(()) => (IoEngine::Uring, remark),
        Err(err) => {
            let why = format!("io_uring unavailable, using the std engine: {err}");
            let remark = match remark {
                Some(first) => format!("{first}; {why}"),
                None => why,
            };
            (IoEngine::Std, Some(remark))
        }
    }
}

/// Why a drive file could not be opened beneath the drive root.
///
/// Converts into [`io::Error`] (kind `PermissionDenied`, `InvalidInput`, or the cause's kind) for
/// callers that work in `io::Result`.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path names something outside the root (`..`, an absolute path) or passes through a
    /// symbolic link (refused even inside the root, so both resolvers agree and no file has two
    /// names).
    #[error("{rel:?} leaves the drive root or passes through a symbolic link")]
    Escapes {
        /// The drive-relative path asked for.
        rel: PathBuf,
        /// The kernel's refusal (`EXDEV`, `ELOOP`), if it came from the kernel.
        #[source]
        source: Option<io::Error>,
    },
    /// The path names a directory, device, FIFO or socket, or is empty.
    #[error("{rel:?} is not a regular file")]
    NotRegularFile {
        /// The drive-relative path asked for.
        rel: PathBuf,
    },
    /// Any other failure to open or inspect the file (not found, permission, I/O).
    #[error("open {rel:?} beneath the drive root")]
    Io {
        /// The drive-relative path asked for.
        rel: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<OpenError> for io::Error {
    fn from(err: OpenError) -> io::Error {
        let kind = match &err {
            OpenError::Escapes { .. } => io::ErrorKind::PermissionDenied,
            OpenError::NotRegularFile { .. } => io::ErrorKind::InvalidInput,
            OpenError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, err)
    }
}

/// Why [`Reader::read_at`] failed, carried inside the returned [`io::Error`] (downcast with
/// `err.get_ref()`), with the path and offset to report.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `O_DIRECT` is on and the offset is not a multiple of [`DIRECT_ALIGN_BYTES`].
    #[error("read {rel:?} at offset {offset_bytes}: O_DIRECT needs a 4096-aligned offset")]
    UnalignedOffset {
        /// The file's drive-relative path.
        rel: PathBuf,
        /// The requested offset in bytes.
        offset_bytes: u64,
    },
    /// The requested length (rounded up to 4096 under `O_DIRECT`) exceeds the buffer.
    #[error("read {rel:?}: {len_bytes} bytes do not fit a {capacity_bytes}-byte buffer")]
    TooLong {
        /// The file's drive-relative path.
        rel: PathBuf,
        /// The length asked for, in bytes (after rounding).
        len_bytes: usize,
        /// The buffer's capacity in bytes.
        capacity_bytes: usize,
    },
    /// The OS refused the read (`EIO` from a failing drive, for example).
    #[error("read {rel:?} at offset {offset_bytes}")]
    Io {
        /// The file's drive-relative path.
        rel: PathBuf,
        /// The requested offset in bytes.
        offset_bytes: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The reader service is gone (its thread exited).
    #[error("read {rel:?}: the reader service stopped")]
    Stopped {
        /// The file's drive-relative path.
        rel: PathBuf,
    },
}

/// Open the directory `root` as an `O_PATH | O_DIRECTORY` handle, the anchor for
/// [`ReadFile::open_beneath`].
///
/// # Errors
/// The OS error: not found, not a directory, permission.
pub fn open_root(root: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
}

/// An open drive file, ready for [`Reader::read_at`]. Cheap to clone (shared handle).
#[derive(Debug, Clone)]
pub struct ReadFile {
    inner: Arc<FileInner>,
}

#[derive(Debug)]
struct FileInner {
    file: File,
    direct: bool,
    len_bytes: u64,
    rel: PathBuf,
}

impl ReadFile {
    /// Open the regular file `rel` beneath the directory handle `root` (see [`open_root`]) for
    /// reading, refusing anything that leaves the root or passes through a symbolic link.
    ///
    /// Uses `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`;
    /// where it is missing (`ENOSYS` before Linux 5.6, or `EPERM` from an older seccomp profile)
    /// walks `rel` one component at a time with `openat(O_NOFOLLOW)`. `..`, root and prefix
    /// components are refused before either.
    ///
    /// With `direct`, tries `O_DIRECT` first and silently retries without it when the file
    /// system refuses it (`EINVAL`: some FUSE, older tmpfs); [`ReadFile::is_direct`] says which.
    /// The file is opened `O_NONBLOCK` so a FIFO cannot hang the open; it is then refused.
    ///
    /// # Errors
    /// [`OpenError::Escapes`] for `..`, absolute paths and any symbolic link on the way;
    /// [`OpenError::NotRegularFile`] for directories, devices, FIFOs, sockets and an empty path;
    /// [`OpenError::Io`] for everything else (not found, permission).
    pub fn open_beneath(root: &File, rel: &Path, direct: bool) -> Result<ReadFile, OpenError> {
        open_beneath_with(root, rel, direct, Resolver::Openat2)
    }

    /// The file's size in bytes at open time (from `fstat`).
    pub fn len_bytes(&self) -> u64 {
        self.inner.len_bytes
    }

    /// Whether `O_DIRECT` is on: reads then bypass the page cache, and offsets must be
    /// 4096-aligned.
    pub fn is_direct(&self) -> bool {
        self.inner.direct
    }

    /// The drive-relative path it was opened with.
    pub fn rel_path(&self) -> &Path {
        &self.inner.rel
    }

    /// Read the whole file on the calling thread with `pread`, for small files (a manifest, a
    /// metadata or properties file) that do not go through the block pipeline.
    ///
    /// # Errors
    /// `InvalidData` if the file is longer than `max_bytes`; `InvalidInput` for a file opened
    /// with `O_DIRECT` (open small files without it); the OS read error otherwise.
    pub fn read_to_end(&self, max_bytes: u64) -> io::Result<Vec<u8>> {
        if self.inner.direct {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "read_to_end needs a file opened without O_DIRECT",
            ));
        }
        if self.inner.len_bytes > max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes is over the limit of {max_bytes}",
                    self.inner.len_bytes
                ),
            ));
        }
        let mut out = vec![0u8; usize::try_from(self.inner.len_bytes).unwrap_or(0)];
        let mut filled = 0;
        while filled < out.len() {
            match self.inner.file.read_at(&mut out[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.truncate(filled);
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolver {
    /// `openat2`, falling back to the walk on `ENOSYS`.
    Openat2,
    /// The component walk only (tests use it to cover the fallback on any kernel).
    #[cfg_attr(not(test), allow(dead_code))]
    Walk,
}

const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

fn open_beneath_with(
    root: &File,
    rel: &Path,
    direct: bool,
    resolver: Resolver,
) -> Result<ReadFile, OpenError> {
    let io_err = |source: io::Error| OpenError::Io {
        rel: rel.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(OpenError::Escapes {
                    rel: rel.to_path_buf(),
                    source: None,
                });
            }
        }
    }
    if names.is_empty() {
        return Err(OpenError::NotRegularFile {
            rel: rel.to_path_buf(),
        });
    }
    let clean: PathBuf = names.iter().collect();
    let c_rel = CString::new(clean.as_os_str().as_bytes()).map_err(|_| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ))
    })?;

    let open = |flags: libc::c_int| -> io::Result<OwnedFd> {
        match resolver {
            // ENOSYS: kernel before 5.6. EPERM: seccomp profiles that predate openat2 (older
            // Docker) refuse unknown syscalls with EPERM; the walk then gives the real answer.
            Resolver::Openat2 => match openat2_beneath(root.as_raw_fd(), &c_rel, flags) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    walk(root, &names, flags)
                }
                other => other,
            },
            Resolver::Walk => walk(root, &names, flags),
        }
    };
    let (fd, direct) = if direct {
        match open(OPEN_FLAGS | libc::O_DIRECT) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(OPEN_FLAGS), false),
            other => (other, true),
        }
    } else {
        (open(OPEN_FLAGS), false)
    };
    let fd = fd.map_err(|e| match e.raw_os_error() {
        Some(libc::EXDEV | libc::ELOOP) => OpenError::Escapes {
            rel: rel.to_path_buf(),
            source: Some(e),
        },
        _ => io_err(e),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegularFile {
            rel: rel.to_path_buf(),
        });
    }
    Ok(ReadFile {
        inner: Arc::new(FileInner {
            file,
            direct,
            len_bytes: meta.len(),
            rel: clean,
        }),
    })
}

/// `struct open_how` of `linux/openat2.h` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2_beneath(dir: RawFd, rel: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    // EAGAIN means a concurrent rename raced the lookup; the kernel asks us to retry.
    for _ in 0..8 {
        // SAFETY: `rel` is a NUL-terminated string and `how` a fully initialised `open_how` of
        // the size we pass; both outlive the call. The kernel only reads them.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            let fd = RawFd::try_from(ret).map_err(io::Error::other)?;
            // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) && err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

fn openat_nofollow(dir: RawFd, name: &std::ffi::OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c_name = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    loop {
        // SAFETY: `c_name` is NUL-terminated and outlives the call; `dir` is an open descriptor
        // borrowed for the call's duration.
        let fd = unsafe { libc::openat(dir, c_name.as_ptr(), flags | libc::O_NOFOLLOW) };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The fallback resolver: open each directory as an `O_PATH | O_NOFOLLOW` handle and check with
/// `fstat` that it is a directory (a symbolic link gives `ELOOP`), then open the last name with
/// `flags` (which hold `O_NOFOLLOW`). `names` holds only normal components.
fn walk(root: &File, names: &[&std::ffi::OsStr], flags: libc::c_int) -> io::Result<OwnedFd> {
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    };
    let mut held: Option<File> = None;
    for name in dirs {
        let dir = held.as_ref().map_or(root.as_raw_fd(), AsRawFd::as_raw_fd);
        let next = File::from(openat_nofollow(dir, name, libc::O_PATH | libc::O_CLOEXEC)?);
        let kind = next.metadata()?.file_type();
        if kind.is_symlink() {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if !kind.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        held = Some(next);
    }
    let dir = held.as_ref().map_or(root.as_raw_fd(), AsRawFd::as_raw_fd);
    openat_nofollow(dir, last, flags)
}

/// Sizes of the reader service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Capacity of the bounded request channel ([`READ_QUEUE_DEPTH`] by default). Reads in
    /// flight are further bounded by the buffers the callers hold.
    pub queue_depth: usize,
    /// Number of `pread` threads for [`IoEngine::Std`] ([`STD_READER_THREADS`] by default).
    pub std_threads: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            queue_depth: READ_QUEUE_DEPTH,
            std_threads: STD_READER_THREADS,
        }
    }
}

/// One read for the service thread(s).
struct ReadRequest {
    file: Arc<FileInner>,
    offset: u64,
    /// Bytes to ask the kernel for: `len` rounded up to 4096 under `O_DIRECT`.
    want: usize,
    buf: PoolBuf,
    reply: oneshot::Sender<(io::Result<usize>, PoolBuf)>,
}

/// A handle to the reader service: submits reads from any tokio runtime and awaits them.
///
/// Cloning shares the service. The service thread(s) exit when the last handle is dropped and
/// the reads in flight have completed; dropping does not block.
#[derive(Debug, Clone)]
pub struct Reader {
    engine: IoEngine,
    tx: mpsc::Sender<ReadRequest>,
}

impl Reader {
    /// Start the service for `engine`: one thread with an io_uring runtime, or
    /// `config.std_threads` `pread` threads.
    ///
    /// # Errors
    /// The OS error from spawning a thread, or from building the io_uring ring (for a forced
    /// `Uring` on a kernel that refuses it).
    pub fn start(engine: IoEngine, config: &ReaderConfig) -> io::Result<Reader> {
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        match engine {
            IoEngine::Uring => uring::spawn_service(rx, config.queue_depth)?,
            IoEngine::Std => spawn_std_service(rx, config.std_threads.max(1))?,
        }
        Ok(Reader { engine, tx })
    }

    /// The engine this service runs.
    pub fn engine(&self) -> IoEngine {
        self.engine
    }

    /// Read up to `len` bytes of `file` at `offset` (bytes) into `buf`, starting at the buffer's
    /// beginning, and return the count with the buffer (its length set to the count).
    ///
    /// Short reads from the kernel are retried until `len` bytes or end of file; a count below
    /// `len` therefore means end of file (0 at or past it). Under `O_DIRECT` the kernel is asked
    /// for `len` rounded up to 4096 (the buffer has the room) and the count is capped at `len`.
    /// The buffer always comes back, also on error, with length 0 then.
    ///
    /// # Errors
    /// `InvalidInput` wrapping [`ReadError::UnalignedOffset`] or [`ReadError::TooLong`];
    /// `BrokenPipe` wrapping [`ReadError::Stopped`]; otherwise the OS error's kind wrapping
    /// [`ReadError::Io`] with the path and offset (`EIO` from a failing drive).
    ///
    /// # Cancel safety
    /// Dropping the future never leaks the buffer: a read already submitted completes on the
    /// service and its buffer returns to the pool.
    pub async fn read_at(
        &self,
        file: &ReadFile,
        offset: u64,
        len: usize,
        mut buf: PoolBuf,
    ) -> (io::Result<usize>, PoolBuf) {
        buf.set_len(0);
        let inner = &file.inner;
        let want = if inner.direct {
            if !offset.is_multiple_of(DIRECT_ALIGN_BYTES) {
                let err = ReadError::UnalignedOffset {
                    rel: inner.rel.clone(),
                    offset_bytes: offset,
                };
                return (Err(io::Error::new(io::ErrorKind::InvalidInput, err)), buf);
            }
            len.checked_next_multiple_of(BUF_ALIGN_BYTES)
                .unwrap_or(usize::MAX)
        } else {
            len
        };
        if want > buf.capacity() {
            let err = ReadError::TooLong {
                rel: inner.rel.clone(),
                len_bytes: want,
                capacity_bytes: buf.capacity(),
            };
            return (Err(io::Error::new(io::ErrorKind::InvalidInput, err)), buf);
        }
        if len == 0 {
            return (Ok(0), buf);
        }
        let stopped = || {
            let err = ReadError::Stopped {
                rel: inner.rel.clone(),
            };
            io::Error::new(io::ErrorKind::BrokenPipe, err)
        };
        let pool = buf.pool();
        let (reply, answer) = oneshot::channel();
        let request = ReadRequest {
            file: Arc::clone(inner),
            offset,
            want,
            buf,
            reply,
        };
        if let Err(mpsc::error::SendError(request)) = self.tx.send(request).await {
            return (Err(stopped()), request.buf);
        }
        match answer.await {
            Ok((Ok(n), mut buf)) => {
                let n = n.min(len);
                buf.set_len(n);
                (Ok(n), buf)
            }
            Ok((Err(source), mut buf)) => {
                buf.set_len(0);
                let kind = source.kind();
                let err = ReadError::Io {
                    rel: inner.rel.clone(),
                    offset_bytes: offset,
                    source,
                };
                (Err(io::Error::new(kind, err)), buf)
            }
            // The service dropped the request (its thread died). The buffer it held goes back
            // to the pool when dropped, so a replacement is always (eventually) free.
            Err(_) => (Err(stopped()), pool.acquire().await),
        }
    }
}

fn spawn_std_service(rx: mpsc::Receiver<ReadRequest>, threads: usize) -> io::Result<()> {
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("drivecopy-read-{i}"))
            .spawn(move || loop {
                // One thread at a time waits on the channel; the lock is released before the read.
                let next = rx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .blocking_recv();
                let Some(mut request) = next else { break };
                let result = pread_full(
                    &request.file.file,
                    request.file.direct,
                    request.offset,
                    request.want,
                    &mut request.buf,
                );
                // The caller may have stopped waiting; the buffer then returns to the pool here.
                let _ = request.reply.send((result, request.buf));
            })?;
    }
    Ok(())
}

/// Fill `buf[..want]` from `offset`, retrying short reads until `want` bytes or end of file.
/// Under `O_DIRECT` a count that is not a multiple of 4096 can only mean end of file.
fn pread_full(
    file: &File,
    direct: bool,
    offset: u64,
    want: usize,
    buf: &mut PoolBuf,
) -> io::Result<usize> {
    let dst = buf.as_mut_slice();
    let mut filled = 0;
    while filled < want {
        let Some(rest) = dst.get_mut(filled..want) else {
            break;
        };
        match file.read_at(rest, offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if direct && n % BUF_ALIGN_BYTES != 0 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The io_uring engine: a tokio-uring runtime on its own thread.
pub(crate) mod uring {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::sync::Weak;
    use tokio_uring::buf::BoundedBuf as _;

    /// Start the ring thread and wait until its ring is built (or failed to build).
    pub(super) fn spawn_service(
        rx: mpsc::Receiver<ReadRequest>,
        queue_depth: usize,
    ) -> io::Result<()> {
        // The ring needs a power-of-two submission queue; at least the channel's depth.
        let entries = u32::try_from(queue_depth.clamp(8, 4096).next_power_of_two()).unwrap_or(256);
        spawn_ring("drivecopy-uring", entries, move || serve(rx))
    }

    /// Start a tokio-uring runtime of `entries` submission entries on a thread named `name`,
    /// wait until its ring is built, and run the future `serve` makes on it until it ends. The
    /// reader and the drive writer (`engine::write`) both run their ring this way.
    ///
    /// # Errors
    /// The ring cannot be built (io_uring disabled, `RLIMIT_MEMLOCK`), or the thread cannot
    /// start.
    pub(crate) fn spawn_ring<F, Fut>(name: &str, entries: u32, serve: F) -> io::Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime =
                    match tokio_uring::Runtime::new(tokio_uring::builder().entries(entries)) {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                let _ = ready_tx.send(Ok(()));
                runtime.block_on(serve());
            })?;
        ready_rx.recv().unwrap_or_else(|_| {
            Err(io::Error::other(format!(
                "the {name} thread died at startup"
            )))
        })
    }

    /// Spawn one local task per request; on shutdown, finish the reads in flight.
    async fn serve(mut rx: mpsc::Receiver<ReadRequest>) {
        let files = Rc::new(RefCell::new(RingFiles::default()));
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                request = rx.recv() => match request {
                    Some(request) => {
                        in_flight.spawn_local(serve_one(Rc::clone(&files), request));
                    }
                    None => break,
                },
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// The ring's own handle of each open [`ReadFile`]: one duplicate descriptor per file, made
    /// on its first read, so a read costs no `dup`/`close`. Entries of dropped files are swept
    /// (and their descriptors closed) whenever the table reaches [`RingFiles::SWEEP_AT`]; all
    /// close when the service stops.
    #[derive(Default)]
    struct RingFiles {
        /// Keyed by the address of the file's shared state. Each entry's `Weak` keeps that
        /// allocation (not the file) alive, so no other file can get the same address while
        /// the entry exists: a hit is always the same file.
        by_addr: HashMap<usize, (Weak<FileInner>, Rc<tokio_uring::fs::File>)>,
    }

    impl RingFiles {
        const SWEEP_AT: usize = 64;

        fn get(&mut self, file: &Arc<FileInner>) -> io::Result<Rc<tokio_uring::fs::File>> {
            let key = Arc::as_ptr(file) as usize;
            if let Some((_, ring_file)) = self.by_addr.get(&key) {
                return Ok(Rc::clone(ring_file));
            }
            if self.by_addr.len() >= Self::SWEEP_AT {
                self.by_addr.retain(|_, (weak, _)| weak.strong_count() > 0);
            }
            let ring_file = Rc::new(tokio_uring::fs::File::from_std(file.file.try_clone()?));
            self.by_addr
                .insert(key, (Arc::downgrade(file), Rc::clone(&ring_file)));
            Ok(ring_file)
        }
    }

    async fn serve_one(files: Rc<RefCell<RingFiles>>, request: ReadRequest) {
        let ReadRequest {
            file,
            offset,
            want,
            buf,
            reply,
        } = request;
        let ring_file = files.borrow_mut().get(&file);
        let result = match ring_file {
            Ok(ring_file) => read_full(&ring_file, file.direct, offset, want, buf).await,
            Err(err) => (Err(err), buf),
        };
        let _ = reply.send(result);
    }

    /// The io_uring twin of `pread_full`.
    async fn read_full(
        file: &tokio_uring::fs::File,
        direct: bool,
        offset: u64,
        want: usize,
        mut buf: PoolBuf,
    ) -> (io::Result<usize>, PoolBuf) {
        buf.set_len(0);
        let mut filled = 0;
        while filled < want {
            // The slice starts at the buffer's initialised length (`filled`), as tokio-uring
            // requires, and the kernel's count moves that length forward.
            let (result, slice) = file
                .read_at(buf.slice(filled..want), offset + filled as u64)
                .await;
            buf = slice.into_inner();
            match result {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if direct && n % BUF_ALIGN_BYTES != 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(filled), buf)
    }

    /// Build a ring and do one read of `/dev/zero` through it.
    pub(super) fn feature_test() -> io::Result<()> {
        let runtime = tokio_uring::Runtime::new(&tokio_uring::builder())?;
        let zero = File::open("/dev/zero")?;
        runtime.block_on(async move {
            let file = tokio_uring::fs::File::from_std(zero);
            let (result, buf) = file.read_at(vec![1u8; 4096], 0).await;
            let n = result?;
            if n == 4096 && buf.iter().all(|&b| b == 0) {
                Ok(())
            } else {
                Err(io::Error::other(
                    "an io_uring read of /dev/zero returned wrong data",
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::buf::BufPool;
    use std::os::unix::fs::symlink;

    /// The engines to run reader tests under: both, minus uring when the probe fails (with a
    /// printed reason), or only the one `DRIVECOPY_IO_ENGINE` names.
    fn engines() -> Vec<IoEngine> {
        let uring = match IoEngine::feature_test() {
            Ok(()) => Some(IoEngine::Uring),
            Err(err) => {
                eprintln!("skipping the io_uring engine: {err}");
                None
            }
        };
        match std::env::var(IO_ENGINE_ENV).as_deref() {
            Ok("std") => vec![IoEngine::Std],
            Ok("uring") => uring.into_iter().collect(),
            _ => uring.into_iter().chain([IoEngine::Std]).collect(),
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    struct Drive {
        dir: tempfile::TempDir,
        root: File,
    }

    fn drive() -> Drive {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = open_root(dir.path()).expect("root");
        Drive { dir, root }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    // Compile-time check: the handles cross threads and runtimes.
    const _: fn() = || {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ReadFile>();
        send_sync::<Reader>();
        send_sync::<IoEngine>();
    };

    #[test]
    fn probe_honours_the_override() {
        let fail = || Err(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(probe_with(Some("uring"), fail), (IoEngine::Uring, None));
        let (engine, remark) = probe_with(Some("std"), || Ok(()));
        assert_eq!(engine, IoEngine::Std);
        assert!(remark.expect("remark").contains("forces"));
        assert_eq!(probe_with(None, || Ok(())), (IoEngine::Uring, None));
        let (engine, remark) = probe_with(None, fail);
        assert_eq!(engine, IoEngine::Std);
        assert!(remark.expect("remark").contains("os error 1"));
        let (engine, remark) = probe_with(Some("fast"), || Ok(()));
        assert_eq!(engine, IoEngine::Uring);
        assert!(remark.expect("remark").contains("\"fast\""));
    }

    #[test]
    fn reads_across_eof_with_and_without_direct() {
        let d = drive();
        let data = pattern(3 * 4096 + 1808);
        std::fs::write(d.dir.path().join("f.bin"), &data).expect("write");
        let pool = BufPool::new(2, 8192);
        let rt = runtime();
        for engine in engines() {
            let reader = Reader::start(engine, &ReaderConfig::default()).expect("reader");
            for direct in [false, true] {
                let file =
                    ReadFile::open_beneath(&d.root, Path::new("f.bin"), direct).expect("open");
                assert_eq!(file.len_bytes(), data.len() as u64);
                if direct && !file.is_direct() {
                    eprintln!("{engine:?}: O_DIRECT refused by this file system, reading buffered");
                }
                rt.block_on(async {
                    let cases: [(u64, usize, usize); 5] = [
                        (0, 8192, 8192),
                        (4096, 5000, 5000),
                        (8192, 8192, 4096 + 1808),
                        (12288, 4096, 1808),
                        (16384, 4096, 0),
                    ];
                    for (offset, len, expect) in cases {
                        let buf = pool.acquire().await;
                        let (res, buf) = reader.read_at(&file, offset, len, buf).await;
                        let n = res.expect("read");
                        assert_eq!(n, expect, "{engine:?} direct={direct} at {offset}");
                        assert_eq!(buf.len(), n);
                        let start = offset as usize;
                        assert_eq!(buf.as_slice(), &data[start.min(data.len())..][..n]);
                    }
                    // Past the end of the file, far away.
                    let buf = pool.acquire().await;
                    let (res, buf) = reader.read_at(&file, 1 << 30, 4096, buf).await;
                    assert_eq!(res.expect("read"), 0);
                    assert!(buf.is_empty());
                });
            }
        }
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn misuse_is_an_error_and_the_buffer_comes_back() {
        let d = drive();
        std::fs::write(d.dir.path().join("f.bin"), pattern(10_000)).expect("write");
        let pool = BufPool::new(1, 4096);
        let rt = runtime();
        for engine in engines() {
            let reader = Reader::start(engine, &ReaderConfig::default()).expect("reader");
            for direct in [false, true] {
                let file =
                    ReadFile::open_beneath(&d.root, Path::new("f.bin"), direct).expect("open");
                rt.block_on(async {
                    let buf = pool.acquire().await;
                    let (res, buf) = reader.read_at(&file, 0, 4097, buf).await;
                    let err = res.expect_err("too long");
                    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
                    assert!(matches!(
                        err.get_ref().and_then(|e| e.downcast_ref::<ReadError>()),
                        Some(ReadError::TooLong {
                            len_bytes: 4097 | 8192,
                            ..
                        })
                    ));
                    let (res, buf) = reader.read_at(&file, 100, 10, buf).await;
                    if file.is_direct() {
                        let err = res.expect_err("unaligned");
                        assert!(matches!(
                            err.get_ref().and_then(|e| e.downcast_ref::<ReadError>()),
                            Some(ReadError::UnalignedOffset {
                                offset_bytes: 100,
                                ..
                            })
                        ));
                    } else {
                        assert_eq!(res.expect("buffered reads take any offset"), 10);
                        assert_eq!(buf.as_slice(), &pattern(110)[100..]);
                    }
                    drop(buf);
                });
                assert_eq!(pool.available(), 1);
            }
        }
    }

    #[test]
    fn many_reads_in_flight_return_the_right_bytes() {
        let d = drive();
        let block = 64 * 1024;
        let data = pattern(block * 40 + 123);
        std::fs::write(d.dir.path().join("big.bin"), &data).expect("write");
        let pool = BufPool::new(8, block);
        let rt = runtime();
        for engine in engines() {
            let reader = Reader::start(engine, &ReaderConfig::default()).expect("reader");
            let file = ReadFile::open_beneath(&d.root, Path::new("big.bin"), true).expect("open");
            let got = rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for index in 0..41u64 {
                    let (reader, file, pool) = (reader.clone(), file.clone(), pool.clone());
                    tasks.spawn(async move {
                        let buf = pool.acquire().await;
                        let offset = index * block as u64;
                        let (res, buf) = reader.read_at(&file, offset, block, buf).await;
                        (index, res.expect("read"), buf.freeze_len_copy())
                    });
                }
                let mut got = Vec::new();
                while let Some(done) = tasks.join_next().await {
                    got.push(done.expect("task"));
                }
                got
            });
            assert_eq!(got.len(), 41);
            for (index, n, bytes) in got {
                let start = index as usize * block;
                let expect = &data[start..(start + block).min(data.len())];
                assert_eq!(n, expect.len(), "{engine:?} block {index}");
                assert_eq!(bytes, expect, "{engine:?} block {index}");
            }
            assert_eq!(pool.available(), 8);
        }
    }

    trait CopyOut {
        fn freeze_len_copy(self) -> Vec<u8>;
    }

    impl CopyOut for PoolBuf {
        fn freeze_len_copy(self) -> Vec<u8> {
            let len = self.len();
            self.freeze(len).to_vec()
        }
    }

    #[test]
    fn reopened_files_never_read_a_stale_descriptor() {
        // The uring engine caches one descriptor per open file and sweeps those of dropped
        // files past 64 entries; each of 100 files opened and dropped in turn must still read
        // its own bytes.
        let d = drive();
        for i in 0..100u8 {
            std::fs::write(d.dir.path().join(format!("f{i}")), [i; 100]).expect("write");
        }
        let pool = BufPool::new(1, 4096);
        let rt = runtime();
        for engine in engines() {
            let reader = Reader::start(engine, &ReaderConfig::default()).expect("reader");
            rt.block_on(async {
                for i in 0..100u8 {
                    let rel = format!("f{i}");
                    let file =
                        ReadFile::open_beneath(&d.root, Path::new(&rel), false).expect("open");
                    let buf = pool.acquire().await;
                    let (res, buf) = reader.read_at(&file, 0, 4096, buf).await;
                    assert_eq!(res.expect("read"), 100);
                    assert!(
                        buf.as_slice().iter().all(|&b| b == i),
                        "{engine:?} file {i}"
                    );
                }
            });
        }
    }

    fn refused(err: &OpenError) -> bool {
        matches!(err, OpenError::Escapes { .. })
    }

    #[test]
    fn open_beneath_refuses_escapes_under_both_resolvers() {
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        std::fs::create_dir(outside.path().join("dir")).expect("mkdir");
        std::fs::write(outside.path().join("dir/f"), b"s").expect("write");

        let base = tempfile::tempdir().expect("base");
        let root_path = base.path().join("drive");
        std::fs::create_dir_all(root_path.join("a/b")).expect("mkdir");
        std::fs::write(root_path.join("a/b/file.txt"), b"hello").expect("write");
        std::fs::write(base.path().join("x"), b"sibling").expect("write");
        symlink(outside.path().join("secret"), root_path.join("abs")).expect("symlink");
        symlink("../../x", root_path.join("a/rel")).expect("symlink");
        symlink(outside.path().join("dir"), root_path.join("linkdir")).expect("symlink");
        symlink("b", root_path.join("a/inside")).expect("symlink");
        std::fs::create_dir(root_path.join("sub")).expect("mkdir");
        let root = open_root(&root_path).expect("root");

        for resolver in [Resolver::Openat2, Resolver::Walk] {
            let open = |rel: &str| open_beneath_with(&root, Path::new(rel), false, resolver);
            let file = open("a/b/file.txt").expect("a normal nested file opens");
            assert_eq!(file.len_bytes(), 5);
            assert_eq!(file.rel_path(), Path::new("a/b/file.txt"));
            assert!(open("./a/b/./file.txt").is_ok());
            for rel in [
                "../x",
                "a/../../x",
                "a/b/../../../x",
                "abs",
                "a/rel",
                "linkdir/f",
                "a/inside/file.txt",
            ] {
                let err = open(rel).expect_err(rel);
                assert!(refused(&err), "{resolver:?} {rel}: {err:?}");
                assert_eq!(io::Error::from(err).kind(), io::ErrorKind::PermissionDenied);
            }
            let abs = root_path.join("a/b/file.txt");
            assert!(refused(
                &open(abs.to_str().expect("utf-8")).expect_err("absolute")
            ));
            for rel in ["sub", "", "."] {
                let err = open(rel).expect_err(rel);
                assert!(
                    matches!(err, OpenError::NotRegularFile { .. }),
                    "{rel}: {err:?}"
                );
            }
            let err = open("a/missing").expect_err("missing");
            assert!(matches!(&err, OpenError::Io { source, .. }
                if source.kind() == io::ErrorKind::NotFound));
            let err = open("a/b/file.txt/deeper").expect_err("file as dir");
            assert!(matches!(err, OpenError::Io { .. }), "{resolver:?}: {err:?}");
        }
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let d = drive();
        let fifo = CString::new(d.dir.path().join("pipe").as_os_str().as_bytes()).expect("cstr");
        // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
        let rc = unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo");
        for resolver in [Resolver::Openat2, Resolver::Walk] {
            let err =
                open_beneath_with(&d.root, Path::new("pipe"), false, resolver).expect_err("fifo");
            assert!(matches!(err, OpenError::NotRegularFile { .. }), "{err:?}");
        }
    }

    #[test]
    fn direct_falls_back_or_stays_on() {
        // /dev/shm is tmpfs: O_DIRECT is refused there on older kernels and accepted on newer
        // ones. Either way the open succeeds and the reads are correct.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("no /dev/shm; skipping");
            return;
        };
        let data = pattern(5000);
        std::fs::write(dir.path().join("f"), &data).expect("write");
        let root = open_root(dir.path()).expect("root");
        let file = ReadFile::open_beneath(&root, Path::new("f"), true).expect("open");
        eprintln!("O_DIRECT on tmpfs: {}", file.is_direct());
        let pool = BufPool::new(1, 8192);
        let rt = runtime();
        for engine in engines() {
            let reader = Reader::start(engine, &ReaderConfig::default()).expect("reader");
            rt.block_on(async {
                let buf = pool.acquire().await;
                let (res, buf) = reader.read_at(&file, 0, 8192, buf).await;
                assert_eq!(res.expect("read"), 5000);
                assert_eq!(buf.as_slice(), &data[..]);
            });
        }
        let buffered = ReadFile::open_beneath(&root, Path::new("f"), false).expect("open");
        assert!(!buffered.is_direct());
    }
}
