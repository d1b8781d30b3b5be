//! Group commit for the local store: one `syncfs(2)` makes the writes of every thread waiting at
//! the time durable, instead of an `fsync` per file and directory.
//!
//! A caller that needs what it wrote so far to be durable calls [`GroupSync::sync`]. Only a
//! `syncfs` that *starts* after the call can cover those writes, so each caller waits for the
//! next one to start and finish; whichever waiting thread finds no `syncfs` running starts it,
//! and every caller that arrived before it started is answered by it. Under load one call
//! answers dozens of commits; alone, a caller pays one `syncfs`, about what one `fsync` costs.
//!
//! `syncfs` flushes the whole file system holding the store (its data and metadata, and other
//! programs' dirty pages on it). It is a superset of `fsync` of each file and directory, so the
//! commit protocol's ordering (data, then intent record, then rename) holds with every flush
//! point replaced by [`GroupSync::sync`].
//!
//! A failed `syncfs` means written pages may be lost and cannot be written again from here
//! (Linux drops failed dirty pages; retrying the flush would report success), so the first
//! failure is kept and every later call returns it: no commit is ever acknowledged after it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A shared `syncfs` of one file system (module docs).
#[derive(Debug)]
pub(super) struct GroupSync {
    /// Any open descriptor on the file system (the store root).
    fs: File,
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The number of `syncfs` calls started so far; the next one is number `started + 1`.
    started: u64,
    /// The number of the last `syncfs` that returned.
    finished: u64,
    running: bool,
    /// The first failure, kept for every later caller.
    failed: Option<(io::ErrorKind, String)>,
}

impl GroupSync {
    /// Group commits on the file system of `fs` (an open file or directory on it).
    pub(super) fn new(fs: File) -> Self {
        GroupSync {
            fs,
            state: Mutex::new(State::default()),
            finished: Condvar::new(),
        }
    }

    /// Return once everything this thread wrote before the call is durable.
    ///
    /// # Errors
    /// The error of the `syncfs` that covered the call, or of any earlier failed one.
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut s = self.lock();
        // The first `syncfs` to start after this point covers our writes.
        let wanted = s.started + 1;
        loop {
            if let Some((kind, text)) = &s.failed {
                return Err(io::Error::new(*kind, text.clone()));
            }
            if s.finished >= wanted {
                return Ok(());
            }
            if s.running {
                s = self
                    .finished
                    .wait(s)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            s.running = true;
            s.started += 1;
            let number = s.started;
            drop(s);
            let result = syncfs(&self.fs);
            s = self.lock();
            s.running = false;
            s.finished = number;
            if let Err(e) = result {
                s.failed
                    .get_or_insert_with(|| (e.kind(), format!("syncfs: {e}")));
            }
            self.finished.notify_all();
        }
    }

    /// How many `syncfs` calls have finished (tests count a commit's flush points with it).
    #[cfg(test)]
    pub(super) fn finished(&self) -> u64 {
        self.lock().finished
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
        let s = sync.lock();
        assert_eq!(s.started, s.finished);
        assert!(s.started >= 1 && s.started <= 320, "{} flushes", s.started);
    }

    #[test]
    fn a_failure_is_kept_for_every_later_caller() {
        let dir = tempfile::tempdir().unwrap();
        let sync = GroupSync::new(File::open(dir.path()).unwrap());
        sync.sync().unwrap();
        sync.lock().failed = Some((io::ErrorKind::Other, "syncfs: EIO".into()));
        for _ in 0..2 {
            let e = sync.sync().unwrap_err();
            assert!(e.to_string().contains("EIO"), "{e}");
        }
    }
}
