//! The continuous job's state directory: snapshots and the advance log.
//!
//! ```text
//! STATE_DIR/
//!   snapshots/00000000000000000007/   one committed snapshot
//!     manifest.json                   frontier, output marks by name, files + CRC-32
//!     w0.jsonl  w1.jsonl …            one part per worker
//!     derived-open.jsonl              with --derived: the intervals open
//!   advances.jsonl                    idle advances and partition starts
//! ```
//!
//! A snapshot is written into `snapshots/tmp-N`, every file synced, then
//! renamed to `snapshots/N` (and the directory synced): a crash leaves
//! either the whole snapshot or none of it. Loading checks every file's
//! length and CRC-32 and falls back to an older snapshot if one is damaged.
//! The last two snapshots are kept (three by each process of a cluster).
//!
//! A worker part is one JSON line with the worker's input partitions
//! (admission state, next offset, accepted events at or above the frontier),
//! then one line per player of the worker's per-player state.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::decision_log::DecisionFile;
use crate::dataflow::facts::SavedPlayer;
use crate::input::kafka::{Advance, AdvanceLog, SavedPartition};
use crate::model::versions::Notice;
use crate::output::derived::OpenInterval;

/// Snapshots kept on disk by a single process.
const KEEP: usize = 2;
/// Snapshots kept on disk by each process of a cluster: a process is at
/// most one snapshot ahead of process 0, so the newest snapshot every
/// process holds is always among them.
pub const KEEP_IN_CLUSTER: usize = 3;
/// The format of the snapshots this build writes and reads.
pub const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
    #[error("{path}: a snapshot of format {found}; this huntflow reads format {VERSION}: start the job from a new state directory")]
    Version { path: PathBuf, found: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One file of a snapshot, with its length and checksum.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartFile {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// What a snapshot says besides the worker parts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub epoch: u64,
    /// Every time below it was complete and its output written.
    pub frontier: u64,
    pub topic: String,
    pub workers: usize,
    /// Per output, by name: per partition the destination's end when the
    /// snapshot was taken (Kafka offsets, or a file's length).
    pub outputs: BTreeMap<String, Vec<i64>>,
    /// `(partition, next offset)` of every input partition read.
    pub offsets: Vec<(u32, i64)>,
    pub files: Vec<PartFile>,
    /// With `--derived`: the intervals open at the frontier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_open: Option<PartFile>,
    /// With `--hunt-topic`: every hunt version this process knew when the
    /// snapshot was committed, in the order it learnt them (see
    /// [`crate::model::versions::Versions::notices`]). Process 0 of a
    /// cluster restores them from its change log; the other processes,
    /// which read no hunt topic, from here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Notice>,
}

impl Manifest {
    /// The marks of output `name`, if the snapshot has them.
    pub fn marks(&self, name: &str) -> Option<&[i64]> {
        self.outputs.get(name).map(|m| m.as_slice())
    }
}

#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// The state directory.
pub struct StateDir {
    root: PathBuf,
    log: DecisionFile,
    keep: usize,
}

/// A loaded snapshot.
pub struct Loaded {
    pub manifest: Manifest,
    pub partitions: Vec<SavedPartition>,
    pub players: Vec<SavedPlayer>,
    /// With `--derived`: the intervals open at the frontier.
    pub derived_open: Vec<OpenInterval>,
}

fn sync_dir(path: &Path) -> Result<(), SnapshotError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

impl StateDir {
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        fs::create_dir_all(root.join("snapshots")).map_err(io(root))?;
        Ok(StateDir {
            root: root.to_owned(),
            log: DecisionFile::new(root.join("advances.jsonl")),
            keep: KEEP,
        })
    }

    /// Keeps the last `keep` snapshots (at least one).
    pub fn keeping(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// The epochs of the committed snapshots, oldest first.
    pub fn epochs(&self) -> Result<Vec<u64>, SnapshotError> {
        Ok(self.committed()?.into_iter().map(|(e, _)| e).collect())
    }

    /// Snapshot `epoch`, whole (0: none, the start).
    pub fn load_epoch(&self, epoch: u64) -> Result<Option<Loaded>, SnapshotError> {
        if epoch == 0 {
            return Ok(None);
        }
        Self::load(&self.snapshots().join(format!("{epoch:020}"))).map(Some)
    }

    /// Removes the snapshots newer than `epoch`: the job resumes from
    /// `epoch`, and takes those epochs again.
    pub fn discard_after(&self, epoch: u64) -> Result<(), SnapshotError> {
        for (e, dir) in self.committed()? {
            if e > epoch {
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
        }
        sync_dir(&self.snapshots())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn committed(&self) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
        let dir = self.snapshots();
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name();
            if let Some(epoch) = name.to_str().and_then(|n| n.parse::<u64>().ok()) {
                found.push((epoch, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// The temporary directory of snapshot `epoch`, created empty.
    pub fn begin(&self, epoch: u64) -> Result<PathBuf, SnapshotError> {
        let tmp = self.snapshots().join(format!("tmp-{epoch:020}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(tmp)
    }

    /// Writes one worker's part into `tmp`: its partitions, then its
    /// players (one JSON line each, as captured).
    pub fn write_part(
        tmp: &Path,
        worker: usize,
        partitions: &[SavedPartition],
        players: &[u8],
    ) -> Result<PartFile, SnapshotError> {
        let name = format!("w{worker}.jsonl");
        let path = tmp.join(&name);
        let file = File::create(&path).map_err(io(&path))?;
        let mut w = CrcWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        serde_json::to_writer(&mut w, partitions).map_err(|e| io(&path)(e.into()))?;
        w.write_all(b"\n").map_err(io(&path))?;
        w.write_all(players).map_err(io(&path))?;
        w.inner.flush().map_err(io(&path))?;
        w.inner.get_ref().sync_all().map_err(io(&path))?;
        Ok(PartFile {
            name,
            bytes: w.bytes,
            crc32: w.crc.finalize(),
        })
    }

    /// Writes the derived intervals open at the frontier into `tmp`.
    pub fn write_open(tmp: &Path, open: &[OpenInterval]) -> Result<PartFile, SnapshotError> {
        let name = "derived-open.jsonl".to_string();
        let text = write_lines(&tmp.join(&name), open)?;
        Ok(PartFile {
            name,
            bytes: text.len() as u64,
            crc32: crc32fast::hash(&text),
        })
    }

    /// Commits the snapshot written in `tmp`; keeps the last two.
    pub fn commit(&self, tmp: &Path, manifest: &Manifest) -> Result<(), SnapshotError> {
        let path = tmp.join("manifest.json");
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| io(&path)(e.into()))?;
        let mut f = File::create(&path).map_err(io(&path))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(io(&path))?;
        sync_dir(tmp)?;
        let done = self.snapshots().join(format!("{:020}", manifest.epoch));
        fs::rename(tmp, &done).map_err(io(&done))?;
        sync_dir(&self.snapshots())?;
        let committed = self.committed()?;
        if committed.len() > self.keep {
            for (_, old) in &committed[..committed.len() - self.keep] {
                fs::remove_dir_all(old).map_err(io(old))?;
            }
        }
        self.prune_log()?;
        Ok(())
    }

    /// The newest snapshot whose files are whole, or `None`. A damaged one
    /// is reported on standard error and skipped; one of another format is
    /// an error.
    pub fn load_latest(&self) -> Result<Option<Loaded>, SnapshotError> {
        for (_, dir) in self.committed()?.into_iter().rev() {
            match Self::load(&dir) {
                Ok(loaded) => return Ok(Some(loaded)),
                Err(e @ SnapshotError::Version { .. }) => return Err(e),
                Err(e) => eprintln!("huntflow: skipping damaged snapshot: {e}"),
            }
        }
        Ok(None)
    }

    fn load(dir: &Path) -> Result<Loaded, SnapshotError> {
        let path = dir.join("manifest.json");
        let text = fs::read(&path).map_err(io(&path))?;
        if let Ok(v) = serde_json::from_slice::<Versioned>(&text) {
            if v.version != VERSION {
                return Err(SnapshotError::Version {
                    path,
                    found: v.version,
                });
            }
        }
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| SnapshotError::Bad {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut partitions = Vec::new();
        let mut players = Vec::new();
        for part in &manifest.files {
            let path = dir.join(&part.name);
            let bytes = read_checked(&path, part)?;
            let bad = |message: String| SnapshotError::Bad {
                path: path.clone(),
                message,
            };
            let mut lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            let first = lines.next().ok_or_else(|| bad("empty part".into()))?;
            let mut saved: Vec<SavedPartition> =
                serde_json::from_slice(first).map_err(|e| bad(e.to_string()))?;
            partitions.append(&mut saved);
            for line in lines {
                players.push(serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?);
            }
        }
        let mut derived_open = Vec::new();
        if let Some(open) = &manifest.derived_open {
            let path = dir.join(&open.name);
            let bytes = read_checked(&path, open)?;
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                derived_open.push(serde_json::from_slice(line).map_err(|e| {
                    SnapshotError::Bad {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?);
            }
        }
        Ok(Loaded {
            manifest,
            partitions,
            players,
            derived_open,
        })
    }

    /// The logged advances.
    pub fn advances(&self) -> Result<Vec<Advance>, SnapshotError> {
        self.log.read().map_err(io(self.log.path()))
    }

    /// Drops the advances every kept snapshot already reflects.
    fn prune_log(&self) -> Result<(), SnapshotError> {
        let mut oldest: Option<Vec<(u32, i64)>> = None;
        for (_, dir) in self.committed()? {
            if let Ok(loaded) = fs::read(dir.join("manifest.json")) {
                if let Ok(m) = serde_json::from_slice::<Manifest>(&loaded) {
                    oldest = Some(m.offsets);
                    break;
                }
            }
        }
        let Some(offsets) = oldest else { return Ok(()) };
        let keep: Vec<Advance> = self
            .advances()?
            .into_iter()
            .filter(|a| {
                offsets
                    .iter()
                    .find(|(p, _)| *p == a.partition)
                    .is_none_or(|&(_, next)| a.next >= next)
            })
            .collect();
        self.log.replace(&keep).map_err(io(self.log.path()))
    }
}

impl AdvanceLog for StateDir {
    fn record(&self, advance: &Advance) -> std::io::Result<()> {
        self.log.append(advance)
    }
}

/// Writes `items` to `path` as JSON lines and syncs it; returns the bytes.
fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<Vec<u8>, SnapshotError> {
    let mut text = Vec::new();
    for item in items {
        serde_json::to_writer(&mut text, item).map_err(|e| io(path)(e.into()))?;
        text.push(b'\n');
    }
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(io(path))?;
    Ok(text)
}

/// A snapshot file's bytes, checked against its length and checksum.
fn read_checked(path: &Path, part: &PartFile) -> Result<Vec<u8>, SnapshotError> {
    let bytes = fs::read(path).map_err(io(path))?;
    if bytes.len() as u64 != part.bytes || crc32fast::hash(&bytes) != part.crc32 {
        return Err(SnapshotError::Bad {
            path: path.to_owned(),
            message: "length or checksum does not match the manifest".into(),
        });
    }
    Ok(bytes)
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
