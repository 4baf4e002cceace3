//! `huntflow run` as a child process, its status file, and when its
//! snapshots are taken.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The continuous job; killed when dropped or when the bench dies.
pub struct Job {
    child: Child,
    pub state: PathBuf,
}

impl Job {
    /// `huntflow` with `args` (`run …`, its state directory `state`, made
    /// fresh here); its standard error goes to `STATE.log`.
    pub fn start(state: &Path, args: &[OsString]) -> Job {
        let _ = std::fs::remove_dir_all(state);
        std::fs::create_dir_all(state).expect("state dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huntflow"));
        cmd.args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(std::fs::File::create(log_path(state)).expect("job log"));
        // SAFETY: the closure only makes a system call, which is safe
        // between fork and exec. The job is killed if the bench dies.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        Job {
            child: cmd.spawn().expect("start huntflow run"),
            state: state.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the job's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the job exited ({status}):\n{}",
                std::fs::read_to_string(log_path(&self.state)).unwrap_or_default()
            );
        }
    }

    /// `STATE/status.json`, rewritten by the job every second.
    pub fn status(&self) -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(self.state.join("status.json")).ok()?).ok()
    }

    /// Waits until the status lists `partitions` input partitions.
    pub fn wait_ready(&mut self, partitions: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.assert_running();
            let listed = self
                .status()
                .and_then(|s| s["partitions"].as_array().map(Vec::len))
                .unwrap_or(0);
            if listed >= partitions {
                return;
            }
            assert!(Instant::now() < deadline, "the job did not start reading");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rejects the job wrote (to its default file in the state directory).
    pub fn rejects(&self) -> usize {
        std::fs::read_to_string(self.state.join("rejects.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_path(state: &Path) -> PathBuf {
    state.with_extension("log")
}

/// A snapshot as seen from outside: its directory `snapshots/tmp-N`
/// (being written) and `snapshots/N` (committed), first seen at these
/// moments, looked for every 10 ms.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub number: u64,
    pub writing: Option<Instant>,
    pub committed: Option<Instant>,
}

/// Watches `STATE/snapshots/` on a thread of its own.
pub struct SnapshotWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Snapshot>>,
}

impl SnapshotWatch {
    pub fn start(state: &Path) -> SnapshotWatch {
        let dir = state.join("snapshots");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<Snapshot> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let now = Instant::now();
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let (number, committed) = match name.strip_prefix("tmp-") {
                        Some(n) => (n.parse::<u64>(), false),
                        None => (name.parse::<u64>(), true),
                    };
                    let Ok(number) = number else { continue };
                    let i = match seen.iter().position(|s| s.number == number) {
                        Some(i) => i,
                        None => {
                            seen.push(Snapshot {
                                number,
                                writing: None,
                                committed: None,
                            });
                            seen.len() - 1
                        }
                    };
                    let slot = if committed {
                        &mut seen[i].committed
                    } else {
                        &mut seen[i].writing
                    };
                    slot.get_or_insert(now);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen.sort_by_key(|s| s.number);
            seen
        });
        SnapshotWatch { stop, thread }
    }

    pub fn stop(self) -> Vec<Snapshot> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("snapshot watcher")
    }
}
