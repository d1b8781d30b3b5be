//! Process-level faults of an import into Azurite, through the real `drivecopy` binary:
//!
//! - the emulator is stopped (SIGTERM) and restarted on the same port and data directory while
//!   an import runs: the import retries through the outage and completes with every blob
//!   byte-identical (issue 4, "Done when", faults);
//! - drivecopy itself is SIGKILLed half-way through a multi-GiB import: the re-run reuses what
//!   the first run staged, sends less than half the bytes and completes with byte-identical blobs
//!   (issue 4, "Done when", resume).
//!
//! The first test starts its own Azurite (`DRIVECOPY_AZURITE_BIN`), the second uses the shared one
//! (`DRIVECOPY_TEST_AZURITE`); each skips with one line saying why when its emulator is not
//! available (`scripts/azurite.sh` sets both). Blobs are checked by MD5 over ranged reads, so
//! memory stays bounded whatever the drive size. The two tests take a lock so that they never
//! compete for the CPU at the same time.

mod util;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use drivecopy::names::BlobPath;
use drivecopy::store::BlobStore;
use md5::{Digest as _, Md5};
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// Source files are written in chunks of this many bytes (one manifest block).
const CHUNK: usize = 4 << 20;
/// Every this many bytes of a source file carry a 16-byte stamp (seed, offset), so that no two
/// 64 KiB pieces of the drive are alike and a misplaced range cannot go unnoticed.
const STAMP_EVERY: usize = 64 << 10;
/// Blob bytes read back per request when verifying.
const READ_BYTES: u64 = 8 * MIB;

/// Serialises the two tests: each one alone keeps the machine's cores busy.
static HEAVY: Mutex<()> = Mutex::new(());

/// One line to the real stderr, past the harness's capture (skips and measurements).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

// ---- drives ----------------------------------------------------------------------------------

/// A file on the drive and what its blob must hold.
struct Source {
    /// The blob name (without the container).
    blob: String,
    len: u64,
    md5: Vec<u8>,
}

/// A prepared drive in a temporary directory (deleted on drop) whose files go to `container`.
struct Drive {
    tmp: tempfile::TempDir,
    root: PathBuf,
    container: String,
    sources: Vec<Source>,
}

impl Drive {
    /// Bytes of all sources.
    fn bytes(&self) -> u64 {
        self.sources.iter().map(|s| s.len).sum()
    }
}

/// Write `len` bytes of `base` (one chunk of random bytes) stamped with `seed` and the offset
/// every [`STAMP_EVERY`] bytes to `path`; the MD5 of what was written.
fn write_source(path: &Path, len: u64, seed: u64, base: &[u8]) -> Vec<u8> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the source dirs");
    }
    let mut file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut chunk = base.to_vec();
    let mut md5 = Md5::new();
    let mut offset = 0u64;
    while offset < len {
        let n = usize::try_from((len - offset).min(CHUNK as u64)).expect("chunk fits");
        for at in (0..n).step_by(STAMP_EVERY) {
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&seed.to_le_bytes());
            stamp[8..].copy_from_slice(&(offset + at as u64).to_le_bytes());
            let end = (at + stamp.len()).min(n);
            chunk[at..end].copy_from_slice(&stamp[..end - at]);
        }
        file.write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        md5.update(&chunk[..n]);
        offset += n as u64;
    }
    md5.finalize().to_vec()
}

/// A drive with one file per `big` size and `small` files of up to 6 MiB (some of them two
/// blocks), prepared in place with `drivecopy prepare` for `container/`.
fn make_drive(container: &str, big: &[u64], small: u64, seed: u64) -> Drive {
    let tmp = tempfile::tempdir().expect("create a temp dir");
    let root = tmp.path().join("drive");
    let data = root.join("data");
    let base = util::random_bytes(CHUNK, seed);
    let mut sources = Vec::new();
    let mut add = |blob: String, len: u64, file_seed: u64| {
        let md5 = write_source(&data.join(&blob), len, file_seed, &base);
        sources.push(Source { blob, len, md5 });
    };
    for (i, &len) in big.iter().enumerate() {
        add(format!("big{i}.bin"), len, seed ^ ((i as u64 + 1) << 32));
    }
    for j in 0..small {
        let len = 1 + (j * 393_241 + 7919) % (6 * MIB);
        add(format!("small/s{j:03}.bin"), len, seed ^ ((j + 1000) << 32));
    }
    let out = drivecopy()
        .args([
            "prepare",
            "--json",
            "--in-place",
            "--drive-id",
            "KILLTEST01",
        ])
        .arg("--drive")
        .arg(&root)
        .arg("--src")
        .arg(&data)
        .arg("--dst")
        .arg(format!("{container}/"))
        .output()
        .expect("spawn drivecopy prepare");
    let r = util::finish(out);
    assert_eq!(r.code, 0, "prepare failed\n{}", r.describe());
    Drive {
        tmp,
        root,
        container: container.to_string(),
        sources,
    }
}

/// Free bytes on the file system holding `dir`, from `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

// ---- the drivecopy binary --------------------------------------------------------------------

/// The binary under test, with an environment independent of the caller's.
fn drivecopy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drivecopy"));
    for var in [
        "DRIVECOPY_STORAGE_ACCOUNT_KEY",
        "DRIVECOPY_CONTAINER_SAS",
        "DRIVECOPY_AZURE_AUTH",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `drivecopy import` of `drive` into the Azurite `endpoint`, authorized by the development
/// connection string (drivecopy signs its own SAS with the emulator's well-known key).
fn import_command(drive: &Drive, endpoint: &str) -> Command {
    let mut cmd = drivecopy();
    cmd.env(
        "AZURE_STORAGE_CONNECTION_STRING",
        "UseDevelopmentStorage=true",
    )
    .args(["import", "--job", "killtest", "--drive"])
    .arg(&drive.root)
    .arg("--dest")
    .arg(endpoint);
    cmd
}

/// A running import: its stdout lines arrive through a reader thread, so that every wait has a
/// deadline; the process is killed if the test ends while it runs.
struct Import {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: PathBuf,
}

impl Import {
    fn spawn(mut cmd: Command, stderr: PathBuf) -> Import {
        let err = File::create(&stderr).expect("create the stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn drivecopy import");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::sync_channel(256);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Import {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// The next stdout event, or `None` once stdout is closed. Panics at `deadline`.
    fn next_event(&mut self, deadline: Instant) -> Option<Value> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                let v = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!(
                        "stdout line is not JSON ({e}): {line:?}\n{}",
                        self.describe()
                    )
                });
                self.stdout.push(line);
                Some(v)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the import printed nothing before its deadline\n{}",
                self.describe()
            ),
        }
    }

    /// Read stdout to its end and wait for the exit, both by `deadline`.
    fn finish(&mut self, deadline: Instant) -> ExitStatus {
        while self.next_event(deadline).is_some() {}
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for drivecopy") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the import closed stdout but did not exit\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last stdout event, which must be the `result`.
    fn result(&self) -> Value {
        let last = self
            .stdout
            .last()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_else(|| panic!("no output\n{}", self.describe()));
        assert_eq!(last["type"], "result", "{}", self.describe());
        last
    }

    fn describe(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!(
            "--- stdout\n{}\n--- stderr\n{stderr}",
            self.stdout.join("\n")
        )
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Send `signal` to our own child `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers; `pid` is a child of this test that has not been
    // reaped yet (its `Child` is waited on only after this), so it cannot name another process.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

fn is_progress(ev: &Value) -> bool {
    ev["type"] == "progress"
}

fn u64_of(ev: &Value, key: &str) -> u64 {
    ev[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number: {ev}"))
}

// ---- a private Azurite -----------------------------------------------------------------------

/// An Azurite of this test alone on `port` with its data in `dir`; killed on drop.
struct Azurite {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Azurite {
    fn new(bin: PathBuf, dir: &Path, log: PathBuf) -> Azurite {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let mut a = Azurite {
            bin,
            port,
            dir: dir.to_path_buf(),
            log,
            child: None,
        };
        a.start();
        a
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/devstoreaccount1", self.port)
    }

    /// Start it and wait (60 s at most) until it accepts connections.
    fn start(&mut self) {
        assert!(self.child.is_none(), "azurite is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the azurite log");
        let child = Command::new(&self.bin)
            .args(["--disableTelemetry", "--silent", "--blobHost", "127.0.0.1"])
            .arg("--blobPort")
            .arg(self.port.to_string())
            .arg("--location")
            .arg(&self.dir)
            .stdout(Stdio::from(log.try_clone().expect("clone the log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let child = self.child.insert(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "azurite exited ({status}) while starting:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "azurite did not listen on {addr} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then wait (60 s at most) for it to exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("azurite is running");
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("wait for azurite").is_some() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("azurite did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---- verification ----------------------------------------------------------------------------

/// Every blob of `drive.container` is one of its sources, every source has its blob, and each
/// blob's bytes (read in [`READ_BYTES`] ranges) have the source's length and MD5.
async fn assert_blobs_identical(store: &dyn BlobStore, drive: &Drive) {
    let listed: BTreeSet<String> = store
        .list_blobs(&drive.container, "")
        .await
        .expect("list the blobs")
        .into_iter()
        .map(|b| b.name)
        .collect();
    let expected: BTreeSet<String> = drive.sources.iter().map(|s| s.blob.clone()).collect();
    assert_eq!(
        listed, expected,
        "the container holds other blobs than the drive"
    );
    for s in &drive.sources {
        let path = BlobPath {
            container: drive.container.clone(),
            name: s.blob.clone(),
        };
        let props = store
            .get_properties(&path)
            .await
            .unwrap_or_else(|e| panic!("properties of {}: {e:?}", s.blob));
        assert_eq!(props.length, s.len, "{}: length", s.blob);
        let mut md5 = Md5::new();
        let mut offset = 0;
        while offset < s.len {
            let end = (offset + READ_BYTES).min(s.len);
            let bytes = store
                .read_range(&path, Some(offset..end))
                .await
                .unwrap_or_else(|e| panic!("read {} at {offset}: {e:?}", s.blob));
            assert_eq!(bytes.len() as u64, end - offset, "{} at {offset}", s.blob);
            md5.update(&bytes);
            offset = end;
        }
        assert!(
            md5.finalize().to_vec() == s.md5,
            "{}: the stored bytes differ from the source file",
            s.blob
        );
    }
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn the_import_survives_an_emulator_restart() {
    const TEST: &str = "the_import_survives_an_emulator_restart";
    let Some(bin) = util::azurite_bin(TEST) else {
        return;
    };
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let work = tempfile::tempdir().expect("create a temp dir");
    let data_dir = work.path().join("azurite");
    std::fs::create_dir_all(&data_dir).expect("create the azurite dir");
    let mut azurite = Azurite::new(bin, &data_dir, work.path().join("azurite.log"));
    let endpoint = azurite.endpoint();

    let drive = make_drive(
        "restart",
        &[160 * MIB, 160 * MIB, 128 * MIB],
        40,
        0x5eed_0001,
    );
    let mut cmd = import_command(&drive, &endpoint);
    cmd.args(["--log-level", "verbose"]);
    let mut run = Import::spawn(cmd, work.path().join("import.err"));
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    let mut restarted_at = None;
    let mut progress_retries = Vec::new();
    while let Some(ev) = run.next_event(deadline) {
        if restarted_at.is_none() && is_progress(&ev) && u64_of(&ev, "percentComplete") >= 25 {
            azurite.stop();
            std::thread::sleep(Duration::from_secs(1));
            azurite.start();
            restarted_at = Some(u64_of(&ev, "percentComplete"));
        }
        if is_progress(&ev) {
            progress_retries.push(u64_of(&ev, "retries"));
        }
    }
    let status = run.finish(deadline);
    let Some(pct) = restarted_at else {
        panic!(
            "the import ended before it reached 25%: nothing was restarted\n{}",
            run.describe()
        );
    };
    assert!(
        pct < 100,
        "the first progress event at or past 25% was already 100%: the restart came too late \
         to test anything (make the drive bigger)\n{}",
        run.describe()
    );
    let result = run.result();
    assert_eq!(status.code(), Some(0), "{}", run.describe());
    assert_eq!(result["outcome"], "Completed", "{result}");
    let retries = u64_of(&result, "retries");
    assert!(retries > 0, "the emulator restart cost no retry: {result}");
    // Progress events carry the running count: never decreasing, never above the total.
    assert!(
        progress_retries.windows(2).all(|w| w[0] <= w[1])
            && progress_retries.iter().all(|&r| r <= retries),
        "progress retries {progress_retries:?} against {retries} in the result"
    );

    let store = util::azurite_store(&endpoint);
    rt().block_on(async {
        assert_blobs_identical(store.as_ref(), &drive).await;
        // The verbose log records the same count (as a comment after the DriveLog).
        let uri = result["driveStatus"]["verboseLogUri"]
            .as_str()
            .unwrap_or_else(|| panic!("no verbose log: {result}"));
        let name = uri
            .split("/waimportexport/")
            .nth(1)
            .unwrap_or_else(|| panic!("verbose log outside the diagnostics container: {uri}"))
            .replace("%2F", "/")
            .replace("%2f", "/");
        let log = store
            .read_range(&util::blob(&format!("waimportexport/{name}")), None)
            .await
            .unwrap_or_else(|e| panic!("read the verbose log {uri}: {e:?}"));
        let log = String::from_utf8_lossy(&log);
        assert!(
            log.contains(&format!("retries=\"{retries}\"")),
            "the verbose log does not record {retries} retries:\n{log}"
        );
    });
    say(&format!(
        "{TEST}: {} MiB, restarted at {pct}%, {} retries, {:.1} s in all",
        drive.bytes() / MIB,
        u64_of(&result, "retries"),
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn a_sigkilled_import_resumes_sending_under_half_the_bytes() {
    const TEST: &str = "a_sigkilled_import_resumes_sending_under_half_the_bytes";
    const NEEDED: u64 = 8 << 30;
    let Some(endpoint) = util::azurite_endpoint(TEST) else {
        return;
    };
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = std::env::temp_dir();
    match free_bytes(&tmp) {
        Some(free) if free >= NEEDED => {}
        free => {
            say(&format!(
                "skipping {TEST}: {} has {free:?} bytes free, the drive and Azurite need {NEEDED}",
                tmp.display()
            ));
            return;
        }
    }
    let started = Instant::now();
    let container = util::unique("kill");
    let drive = make_drive(&container, &[512 * MIB; 4], 48, 0x5eed_0002);
    let made = started.elapsed();
    let err = drive.tmp.path().join("import.err");
    let deadline = Instant::now() + Duration::from_secs(20 * 60);

    // The first run, SIGKILLed past half-way (at 60 %, so what is left, plus the blocks in
    // flight at the kill, stays clearly under half).
    let mut first = Import::spawn(import_command(&drive, &endpoint), err.clone());
    let mut killed_at = None;
    while let Some(ev) = first.next_event(deadline) {
        if killed_at.is_none() && is_progress(&ev) && u64_of(&ev, "percentComplete") >= 60 {
            signal(first.child.id(), libc::SIGKILL);
            killed_at = Some(ev);
        }
    }
    let status = first.finish(deadline);
    let Some(killed_at) = killed_at else {
        panic!(
            "the first run ended before it reached 60%: nothing was killed\n{}",
            first.describe()
        );
    };
    assert!(
        status.code().is_none(),
        "the first run ended on its own ({status}) before the SIGKILL landed\n{}",
        first.describe()
    );
    let first_rate = killed_at["bytesPerSecond"].as_f64().unwrap_or(0.0);
    drop(first);

    // The re-run.
    let mut second = Import::spawn(import_command(&drive, &endpoint), err);
    let status = second.finish(deadline);
    let result = second.result();
    assert_eq!(status.code(), Some(0), "{}", second.describe());
    assert_eq!(result["outcome"], "Completed", "{result}");
    let total = u64_of(&result, "bytesTotal");
    assert_eq!(total, drive.bytes(), "{result}");
    let sent = u64_of(&result, "bytesSent");
    let reused = u64_of(&result, "bytesReused");
    assert!(
        sent < total / 2,
        "the re-run sent {sent} of {total} bytes (killed at {killed_at})"
    );
    assert!(reused > 0, "the re-run reused no staged block: {result}");

    let store = util::azurite_store(&endpoint);
    rt().block_on(assert_blobs_identical(store.as_ref(), &drive));
    say(&format!(
        "{TEST}: {} MiB (written in {:.1} s); first run killed at {}% ({} bytes done) at {:.0} MiB/s; \
         re-run sent {sent}, reused {reused}, {:.1} s, {:.0} MiB/s; {:.1} s in all",
        total / MIB,
        made.as_secs_f64(),
        u64_of(&killed_at, "percentComplete"),
        u64_of(&killed_at, "bytesDone"),
        first_rate / MIB as f64,
        result["elapsedSeconds"].as_f64().unwrap_or(0.0),
        result["bytesPerSecond"].as_f64().unwrap_or(0.0) / MIB as f64,
        started.elapsed().as_secs_f64()
    ));
    drive.tmp.close().expect("delete the drive's files");
}
