//! The continuous job as a cluster of processes (`-n` > 1, see
//! [`crate::job::cluster`]): what each process records in its state
//! directory, which snapshot the processes resume from together, and the
//! records they send each other through the dataflow.
//!
//! - `cluster.json` in each state directory names the cluster it was built
//!   by (`-n`, `-w`, `-p`, the hostfile's addresses); a process started
//!   otherwise refuses to start ([`check_layout`]).
//! - When the processes connect, each says which snapshots it holds; all
//!   resume from the newest every process holds ([`resume_epoch`]).
//! - Every worker reports to worker 0 ([`Report`]): its sources' least
//!   frontier (the control operator follows the least of all), where its
//!   partitions stand (`status.json`, and the outputs' held prefix), and,
//!   from each process, the snapshots it committed with the rejects its
//!   workers had emitted by then (process 0 commits a snapshot only once
//!   every process has committed its part, and worker 0 has written those
//!   rejects).
//! - On every worker, a relay receives the control records: the snapshot
//!   markers reach the sources of every process through it.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::{Scope, Stream};

use super::RunError;
use crate::dataflow::Control;
use crate::input::kafka::{Shared, SourceHandle};
use crate::input::stats::{Counts, Stats};
use crate::job::cluster::{Cluster, HeldEpochs};

/// The file naming the cluster a state directory was built by.
const LAYOUT: &str = "cluster.json";

/// The cluster a state directory was built by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    processes: usize,
    threads: usize,
    process: usize,
    hosts: Vec<String>,
}

impl Layout {
    fn of(cluster: &Cluster) -> Layout {
        Layout {
            processes: cluster.processes(),
            threads: cluster.threads(),
            process: cluster.process(),
            hosts: (0..cluster.processes())
                .filter_map(|p| cluster.address(p).map(str::to_owned))
                .collect(),
        }
    }

    /// The first difference between the recorded layout and this one.
    fn difference(&self, now: &Layout) -> Option<String> {
        if self.processes != now.processes {
            return Some(format!(
                "built with -n {}, started with -n {}",
                self.processes, now.processes
            ));
        }
        if self.threads != now.threads {
            return Some(format!(
                "built with -w {}, started with -w {}",
                self.threads, now.threads
            ));
        }
        if self.process != now.process {
            return Some(format!(
                "built by process -p {}, started as -p {}",
                self.process, now.process
            ));
        }
        if self.hosts != now.hosts {
            let at = self
                .hosts
                .iter()
                .zip(&now.hosts)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some(format!(
                "built with process {at} at {} in the hostfile, started with {}",
                self.hosts.get(at).map_or("?", String::as_str),
                now.hosts.get(at).map_or("?", String::as_str)
            ));
        }
        None
    }
}

/// Checks that the state directory `root` was built by this cluster
/// layout, and records the layout in a new one. A state directory with
/// snapshots and no record was built by a single process.
pub fn check_layout(root: &Path, cluster: &Cluster, has_snapshots: bool) -> Result<(), RunError> {
    let path = root.join(LAYOUT);
    let now = Layout::of(cluster);
    let io = |e: std::io::Error| RunError::Config(format!("{}: {e}", path.display()));
    let recorded: Option<Layout> = match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            RunError::Config(format!("{}: not a cluster record: {e}", path.display()))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let refuse = |difference: String| RunError::Layout {
        state: root.to_owned(),
        difference,
    };
    match recorded {
        Some(built) => match built.difference(&now) {
            Some(d) => Err(refuse(d)),
            None => Ok(()),
        },
        None if now.processes == 1 => Ok(()),
        None if has_snapshots => Err(refuse(format!(
            "built by a single process (-n 1), started with -n {}",
            now.processes
        ))),
        None => {
            let text = serde_json::to_vec_pretty(&now).map_err(|e| io(e.into()))?;
            let tmp = root.join("cluster.json.tmp");
            std::fs::write(&tmp, text).map_err(io)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)
        }
    }
}

/// The snapshots a state directory holds, from its epochs (oldest first).
pub fn held(epochs: &[u64]) -> HeldEpochs {
    HeldEpochs {
        oldest: epochs.first().copied().unwrap_or(0),
        newest: epochs.last().copied().unwrap_or(0),
    }
}

/// The snapshot every process resumes from: the newest one every process
/// holds (0: none, the start). `held` is by process.
pub fn resume_epoch(held: &[HeldEpochs], cluster: &Cluster) -> Result<u64, RunError> {
    let common = held.iter().map(|h| h.newest).min().unwrap_or(0);
    if common == 0 {
        return Ok(0);
    }
    for (p, h) in held.iter().enumerate() {
        if h.oldest > common {
            let lowest = held.iter().position(|x| x.newest == common).unwrap_or(0);
            return Err(RunError::Config(format!(
                "no snapshot every process holds: process {p} ({}) holds snapshots {} to {}, process {lowest} ({}) none newer than {common}; start every process from new state directories",
                cluster.address(p).unwrap_or("?"),
                h.oldest,
                h.newest,
                cluster.address(lowest).unwrap_or("?"),
            )));
        }
    }
    Ok(common)
}

/// What a worker tells worker 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Report {
    /// Global worker `worker`'s least partition frontier (`u64::MAX`: it
    /// reads no partition).
    Low { worker: u64, low: u64 },
    /// Where input partition `partition` stands: next offset, frontier,
    /// latest time.
    Partition {
        partition: u32,
        next: Option<i64>,
        frontier: u64,
        latest: Option<u64>,
    },
    /// Process `process` committed snapshot `epoch`; its workers had
    /// emitted these rejects (global worker, count) when they captured it.
    Committed {
        process: u64,
        epoch: u64,
        rejects: Vec<(u64, u64)>,
    },
    /// What a process other than 0 read since its last report.
    Counts(Counts),
}

/// Reports a worker has yet to send.
pub type Outbox = Rc<RefCell<Vec<Report>>>;

/// How often a worker sends where its partitions stand.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// Builds a worker's reports to worker 0, and worker 0's end, which hands
/// each report to `receive`; `counts`: this process's counts, which this
/// worker reports. The reports' operator keeps its capability at time 0:
/// nothing but worker 0's end follows its stream.
pub fn reports<'scope>(
    scope: Scope<'scope, u64>,
    shared: Arc<Shared>,
    sources: SourceHandle,
    outbox: Outbox,
    counts: Option<Arc<Stats>>,
    receive: Box<dyn Fn(Report)>,
) {
    let index = scope.index();
    let stream: Stream<'scope, u64, Vec<Report>> = source(scope, "Reports", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut last_low = None;
        let mut status_at: Option<Instant> = None;
        let mut reported = Counts::default();
        move |output| {
            let mut session = output.session(&cap);
            let low = shared.low(index);
            if last_low != Some(low) {
                last_low = Some(low);
                session.give(Report::Low {
                    worker: index as u64,
                    low,
                });
            }
            if status_at.is_none_or(|t| t.elapsed() >= STATUS_EVERY) {
                status_at = Some(Instant::now());
                let offsets: std::collections::BTreeMap<u32, i64> =
                    sources.offsets().into_iter().collect();
                for (partition, frontier, latest) in sources.frontiers() {
                    session.give(Report::Partition {
                        partition,
                        next: offsets.get(&partition).copied(),
                        frontier,
                        latest,
                    });
                }
                if let Some(stats) = &counts {
                    let now = stats.totals();
                    let new = now.since(&reported);
                    if new != Counts::default() {
                        session.give(Report::Counts(new));
                        reported = now;
                    }
                }
            }
            for r in outbox.borrow_mut().drain(..) {
                session.give(r);
            }
            activator.activate_after(Duration::from_millis(5));
        }
    });
    stream.sink(
        Exchange::new(|_: &Report| 0),
        "ReportsIn",
        move |(input, _frontier)| {
            input.for_each(|_cap, data| {
                for r in data.drain(..) {
                    receive(r);
                }
            });
        },
    );
}

/// The relay on every worker: the snapshot markers of the control records
/// go to this process's sources (on processes other than 0, where the
/// control operator runs), and the control records' frontier is published.
pub fn relay(control: &Stream<'_, u64, Vec<Control>>, shared: Arc<Shared>, leader: bool) {
    control
        .clone()
        .broadcast()
        .sink(Pipeline, "Relay", move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for record in data.drain(..) {
                    if let (Control::Snapshot { epoch, at }, false) = (record, leader) {
                        shared.relay_capture(epoch, at);
                    }
                }
            });
            let f = frontier.frontier().first().copied().unwrap_or(u64::MAX);
            if let Some(r) = &shared.relayed {
                r.fetch_max(f, Ordering::AcqRel);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::cluster::ClusterFlags;

    fn scratch(label: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("huntflow-peers-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn cluster(dir: &Path, (n, w, p): (usize, usize, usize), hosts: &str) -> Cluster {
        let hostfile = dir.join(format!("hosts-{n}-{w}-{p}"));
        std::fs::write(&hostfile, hosts).unwrap();
        let flags = ClusterFlags {
            processes: n,
            process: p,
            hostfile: (n > 1).then_some(hostfile),
            ..ClusterFlags::default()
        };
        Cluster::load(w, &flags).unwrap()
    }

    fn held(oldest: u64, newest: u64) -> HeldEpochs {
        HeldEpochs { oldest, newest }
    }

    #[test]
    fn all_resume_from_the_newest_snapshot_every_process_holds() {
        let dir = scratch("resume");
        let c = cluster(&dir, (2, 1, 0), "a:1\nb:1\n");
        assert_eq!(resume_epoch(&[held(0, 0), held(0, 0)], &c).unwrap(), 0);
        assert_eq!(resume_epoch(&[held(7, 9), held(8, 10)], &c).unwrap(), 9);
        assert_eq!(resume_epoch(&[held(0, 0), held(1, 1)], &c).unwrap(), 0);
        let e = resume_epoch(&[held(3, 4), held(6, 8)], &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("process 1 (b:1) holds snapshots 6 to 8, process 0 (a:1) none newer than 4"),
            "{e}"
        );
        assert_eq!(super::held(&[4, 5, 6]), held(4, 6));
        assert_eq!(super::held(&[]), held(0, 0));
    }

    #[test]
    fn a_state_dir_keeps_the_cluster_it_was_built_by() {
        let dir = scratch("layout");
        let hosts = "a:1\nb:1\n";
        let built = cluster(&dir, (2, 2, 1), hosts);
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        check_layout(&state, &built, false).unwrap();
        check_layout(&state, &built, true).unwrap();
        let refused = |c: &Cluster| check_layout(&state, c, true).unwrap_err().to_string();
        let e = refused(&cluster(&dir, (3, 2, 1), "a:1\nb:1\nc:1\n"));
        assert!(e.contains("built with -n 2, started with -n 3"), "{e}");
        assert!(e.contains(&state.display().to_string()), "{e}");
        let e = refused(&cluster(&dir, (2, 1, 1), hosts));
        assert!(e.contains("built with -w 2, started with -w 1"), "{e}");
        let e = refused(&cluster(&dir, (2, 2, 0), hosts));
        assert!(e.contains("built by process -p 1, started as -p 0"), "{e}");
        let e = refused(&cluster(&dir, (2, 2, 1), "a:1\nc:1\n"));
        assert!(
            e.contains("built with process 1 at b:1 in the hostfile, started with c:1"),
            "{e}"
        );
        let e = refused(&Cluster::single(2));
        assert!(e.contains("built with -n 2, started with -n 1"), "{e}");
        // A single process's state directory, with snapshots.
        let lone = dir.join("lone");
        std::fs::create_dir_all(&lone).unwrap();
        check_layout(&lone, &Cluster::single(1), true).unwrap();
        let e = check_layout(&lone, &built, true).unwrap_err().to_string();
        assert!(
            e.contains("built by a single process (-n 1), started with -n 2"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
