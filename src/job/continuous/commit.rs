//! Committing a snapshot, off the workers' threads: once every worker has
//! written its part and the sink has marked the outputs, the outputs are
//! made durable up to their marks (files synced, topic records delivered),
//! then the manifest is written and the snapshot renamed into place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::outputs::{Durable, REJECTS};
use super::snapshot::{Manifest, PartFile, StateDir, VERSION};
use super::RunError;
use crate::model::versions::Notice;
use crate::output::Marks;

/// Everything a snapshot's commit needs.
pub struct Commit {
    pub state: Arc<StateDir>,
    pub tmp: PathBuf,
    pub epoch: u64,
    pub frontier: u64,
    pub topic: String,
    pub workers: usize,
    pub files: Vec<PartFile>,
    pub offsets: Vec<(u32, i64)>,
    /// The sink's marks; the rejects' are taken apart (when the snapshot
    /// began). Processes of a cluster other than 0 write no output: none.
    pub marks: Marks,
    pub reject_marks: Option<Vec<i64>>,
    /// Where the rejects output stood when the commit began: every reject
    /// read before the sources' captures is written by then (some after
    /// the rejects' marks), and is made durable too.
    pub rejects_end: Option<Vec<i64>>,
    pub durable: Arc<Vec<(&'static str, Durable)>>,
    /// The hunt versions in effect below the frontier (with `--hunt-topic`).
    pub versions: Vec<Notice>,
}

impl Commit {
    /// Commits on a thread of its own; the handle tells how it went.
    pub fn spawn(mut self) -> JoinHandle<Result<u64, RunError>> {
        if let Some(marks) = self.reject_marks.take() {
            self.marks.outputs.insert(REJECTS.into(), marks);
        }
        std::thread::Builder::new()
            .name("huntflow-commit".into())
            .spawn(move || self.run())
            .expect("spawn a commit thread")
    }

    fn run(self) -> Result<u64, RunError> {
        self.make_durable()?;
        let derived_open = match &self.marks.open {
            Some(open) => Some(StateDir::write_open(&self.tmp, open)?),
            None => None,
        };
        let manifest = Manifest {
            version: VERSION,
            epoch: self.epoch,
            frontier: self.frontier,
            topic: self.topic.clone(),
            workers: self.workers,
            outputs: self.marks.outputs.clone(),
            offsets: self.offsets.clone(),
            files: self.files.clone(),
            derived_open,
            versions: self.versions.clone(),
        };
        self.state.commit(&self.tmp, &manifest)?;
        Ok(self.epoch)
    }

    /// Waits until every output is durable up to its mark; the broker may
    /// be away for a while (says so, and keeps waiting).
    fn make_durable(&self) -> Result<(), RunError> {
        let empty: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let outputs = if self.marks.outputs.is_empty() {
            &empty
        } else {
            &self.marks.outputs
        };
        for (name, d) in self.durable.iter() {
            let marks = match (&self.rejects_end, *name == REJECTS) {
                (Some(end), true) => end.clone(),
                _ => outputs.get(*name).cloned().unwrap_or_default(),
            };
            let mut warned = Instant::now();
            loop {
                let deadline = Instant::now() + Duration::from_secs(5);
                if d.durable_to(&marks, deadline)? {
                    break;
                }
                if warned.elapsed() > Duration::from_secs(5) {
                    eprintln!(
                        "huntflow: snapshot {} waits for {name} to be written ({})",
                        self.epoch,
                        d.waiting(&marks)
                    );
                    warned = Instant::now();
                }
            }
        }
        Ok(())
    }
}
