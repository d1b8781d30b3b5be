//! Group commit for the local store: one `syncfs(2)` makes the writes of every thread waiting at
//! the time durable, instead of an `fsync` per file and directory.
//!
//! A caller that needs what it wrote so far to be durable calls [`GroupSync::sync`]. Only a
//! `syncfs` that *starts* after the call can cover those writes. One thread per store, the
//! syncer, does the flushing: it takes every caller queued at that moment, runs one `syncfs`, and
//! wakes exactly those callers; callers who queued meanwhile wait for its next round. Under load
//! one call answers dozens of commits; alone, a caller pays one `syncfs`, about what one `fsync`
//! costs. The syncer starts with the first call and stops when the store is dropped.
//!
//! `syncfs` flushes the whole file system holding the store (its data and metadata, and other
//! programs' dirty pages on it). It is a superset of `fsync` of each file and directory, so the
//! commit protocol's ordering (data, then intent record, then rename) holds with every flush
//! point replaced by [`GroupSync::sync`].
//!
//! Why a thread of its own: with the flush run by whichever caller found none running, every
//! finish woke all the callers to retake one lock and see whether they were answered, a handful of
//! futex calls per commit on a store of small files. Now a caller parks once and is unparked once.
//!
//! A failed `syncfs` means written pages may be lost and cannot be written again from here
//! (Linux drops failed dirty pages; retrying the flush would report success), so the first
//! failure is kept and every later call returns it: no commit is ever acknowledged after it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle, Thread};

/// A shared `syncfs` of one file system (module docs).
#[derive(Debug)]
pub(super) struct GroupSync {
    shared: Arc<Shared>,
    /// The syncer, once started.
    syncer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    /// Any open descriptor on the file system (the store root).
    fs: File,
    queue: Mutex<Queue>,
    /// The first failure, kept for every later caller.
    failed: OnceLock<(io::ErrorKind, String)>,
    /// How many `syncfs` calls have returned.
    finished: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    /// The callers the next `syncfs` answers.
    waiting: Vec<Arc<Waiter>>,
    /// The syncer is parked with nothing to do (a new caller unparks it).
    idle: bool,
    /// The store is gone: the syncer returns.
    stop: bool,
}

/// One caller waiting for a `syncfs`.
#[derive(Debug)]
struct Waiter {
    thread: Thread,
    answered: AtomicBool,
}

impl GroupSync {
    /// Group commits on the file system of `fs` (an open file or directory on it).
    pub(super) fn new(fs: File) -> Self {
        GroupSync {
            shared: Arc::new(Shared {
                fs,
                queue: Mutex::new(Queue::default()),
                failed: OnceLock::new(),
                finished: AtomicU64::new(0),
            }),
            syncer: Mutex::new(None),
        }
    }

    /// Return once everything this thread wrote before the call is durable.
    ///
    /// # Errors
    /// The error of the `syncfs` that covered the call, or of any earlier failed one; the OS
    /// error when the syncer thread cannot be started.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.shared.check()?;
        let syncer = self.syncer()?;
        let me = Arc::new(Waiter {
            thread: thread::current(),
            answered: AtomicBool::new(false),
        });
        let wake = {
            let mut q = lock(&self.shared.queue);
            q.waiting.push(Arc::clone(&me));
            std::mem::take(&mut q.idle)
        };
        if wake {
            syncer.unpark();
        }
        // `park` may return early (an `unpark` meant for an earlier wait): check each time.
        while !me.answered.load(Ordering::Acquire) {
            thread::park();
        }
        self.shared.check()
    }

    /// The syncer's thread, started on first use.
    fn syncer(&self) -> io::Result<Thread> {
        let mut syncer = lock(&self.syncer);
        if let Some(handle) = syncer.as_ref() {
            return Ok(handle.thread().clone());
        }
        let shared = Arc::clone(&self.shared);
        let handle = thread::Builder::new()
            .name("drivecopy-syncfs".into())
            .spawn(move || shared.run())?;
        let thread = handle.thread().clone();
        *syncer = Some(handle);
        Ok(thread)
    }

    /// How many `syncfs` calls have finished (tests count a commit's flush points with it).
    #[cfg(test)]
    pub(super) fn finished(&self) -> u64 {
        self.shared.finished.load(Ordering::Acquire)
    }
}

impl Drop for GroupSync {
    fn drop(&mut self) {
        let Some(handle) = self
            .syncer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        lock(&self.shared.queue).stop = true;
        handle.thread().unpark();
        let _ = handle.join();
    }
}

impl Shared {
    /// The kept failure, if any.
    fn check(&self) -> io::Result<()> {
        match self.failed.get() {
            Some((kind, text)) => Err(io::Error::new(*kind, text.clone())),
            None => Ok(()),
        }
    }

    /// The syncer: one `syncfs` per round for every caller queued when the round starts.
    fn run(&self) {
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                if q.waiting.is_empty() {
                    if q.stop {
                        return;
                    }
                    q.idle = true;
                    drop(q);
                    thread::park();
                    continue;
                }
                std::mem::take(&mut q.waiting)
            };
            if let Err(e) = syncfs(&self.fs) {
                let _ = self.failed.set((e.kind(), format!("syncfs: {e}")));
            }
            self.finished.fetch_add(1, Ordering::AcqRel);
            for w in batch {
                w.answered.store(true, Ordering::Release);
                w.thread.unpark();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Flush every dirty page and inode of the file system holding `fs` (`syncfs(2)`).
///
/// # Errors
/// The OS error, including write-back errors since `fs` was opened (Linux ≥ 5.8).
pub(crate) fn syncfs(fs: &File) -> io::Result<()> {
    // SAFETY: `fs` is an open descriptor for the duration of the call; syncfs takes no pointers.
    let rc = unsafe { libc::syncfs(fs.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_caller_returns_and_calls_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(GroupSync::new(File::open(dir.path()).unwrap()));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (sync, dir) = (Arc::clone(&sync), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for j in 0..20 {
                        std::fs::write(dir.join(format!("{i}-{j}")), b"x").unwrap();
                        sync.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let flushes = sync.finished();
        assert!((1..=320).contains(&flushes), "{flushes} flushes");
    }

    #[test]
    fn a_failure_is_kept_for_every_later_caller() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(File::open(dir.path()).unwrap());
        sync.sync().unwrap();
        sync.shared
            .failed
            .set((io::ErrorKind::Other, "syncfs: EIO".into()))
            .unwrap();
        for _ in 0..2 {
            let e = sync.sync().unwrap_err();
            assert!(e.to_string().contains("EIO"), "{e}");
        }
    }
}
