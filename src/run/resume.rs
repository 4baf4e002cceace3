//! Output that resumes after a restart without gap or duplicate: the
//! continuous job re-creates, from its last snapshot, exactly the records it
//! wrote before it stopped, and each output skips those its destination
//! already holds. This module has the bookkeeping ([`Resume`]), the reject
//! record format of the continuous job, and the file outputs (a Kafka topic
//! is in `kafka::output`).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

use crate::hunt::Hunt;
use crate::kafka::source::{KafkaReject, RejectWriter};
use crate::sink::{
    parse_notification, LineOutput, Notification, NotificationOutput, ProgressPacer,
};

/// Which regenerated notifications an output must skip: those below the
/// snapshot frontier (the restored state re-derived), and per output
/// partition those up to the last one the destination already holds. A
/// partition's notifications are in SPEC order, `(time, notification)`.
pub struct Resume {
    below: u64,
    last: Vec<Option<(u64, Notification)>>,
}

impl Resume {
    pub fn new(below: u64, partitions: usize) -> Self {
        Resume {
            below,
            last: vec![None; partitions.max(1)],
        }
    }

    /// The destination holds `n` at `time` in partition `p` (called in order).
    pub fn written(&mut self, p: usize, time: u64, n: Notification) {
        self.last[p] = Some((time, n));
    }

    /// What the destination holds beyond the snapshot: its latest time,
    /// over all partitions (before anything is written).
    pub fn held(&self) -> Held {
        Held {
            until: self.last.iter().flatten().map(|(t, _)| *t).max(),
            ..Held::default()
        }
    }

    /// Whether `n` at `time` must be written to partition `p`.
    pub fn keep(&mut self, p: usize, time: u64, n: &Notification) -> bool {
        if time < self.below {
            return false;
        }
        match &self.last[p] {
            Some((t, last)) if (time, n) <= (*t, last) => false,
            Some(_) => {
                self.last[p] = None;
                true
            }
            None => true,
        }
    }
}

/// What the outputs held beyond the snapshot's marks when the job
/// started: what it wrote after that snapshot before it stopped. Until the
/// job has re-created all of it, an output's end is ahead of the job, and a
/// snapshot taken then would mark it as written at the snapshot's frontier:
/// the next start would skip none of it and write it twice. The snapshot
/// protocol waits until it is [`passed`](Held::passed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// The latest time of a record held.
    pub until: Option<u64>,
    /// Per input partition, the latest offset of a reject held.
    pub offsets: BTreeMap<u32, i64>,
}

impl Held {
    pub fn time(&mut self, time: Option<u64>) {
        self.until = self.until.max(time);
    }

    pub fn offset(&mut self, partition: u32, offset: i64) {
        let o = self.offsets.entry(partition).or_insert(offset);
        *o = (*o).max(offset);
    }

    pub fn merge(&mut self, other: Held) {
        self.time(other.until);
        for (p, o) in other.offsets {
            self.offset(p, o);
        }
    }

    /// Whether the job has re-created all of it: every time up to the latest
    /// written (`written`: every time below it is), and every input
    /// partition read past its latest reject (`next`: a partition's next
    /// offset, if known).
    pub fn passed(&self, written: u64, next: impl Fn(u32) -> Option<i64>) -> bool {
        self.until.is_none_or(|t| written > t)
            && self
                .offsets
                .iter()
                .all(|(&p, &o)| next(p).is_some_and(|n| n > o))
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// One reject of the continuous job as a JSON line: reason, detail, topic,
/// partition, offset, line within the message, the raw value as text, and
/// in base64 as well when it is not UTF-8.
pub fn format_kafka_reject(out: &mut Vec<u8>, topic: &str, r: &KafkaReject<'_>) {
    out.extend_from_slice(b"{\"reason\":\"");
    out.extend_from_slice(r.invalid.reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"detail\":");
    json_str(out, &r.invalid.detail);
    out.extend_from_slice(b",\"topic\":");
    json_str(out, topic);
    let _ = write!(
        out,
        ",\"partition\":{},\"offset\":{},\"line\":{},\"raw\":",
        r.partition, r.offset, r.line
    );
    match std::str::from_utf8(r.raw) {
        Ok(text) => json_str(out, text),
        Err(_) => {
            json_str(out, &String::from_utf8_lossy(r.raw));
            out.extend_from_slice(b",\"raw_base64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(r.raw)
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

#[derive(serde::Deserialize)]
struct Origin {
    partition: u32,
    offset: i64,
    line: u32,
}

/// `(partition, (offset, line))` of a record written by [`format_kafka_reject`].
pub fn parse_reject_origin(record: &[u8]) -> Option<(u32, (i64, u32))> {
    let o: Origin = serde_json::from_slice(record).ok()?;
    Some((o.partition, (o.offset, o.line)))
}

/// Per input partition, the last reject a destination already holds, as
/// `(offset, line)`; rejects up to it are not written again.
#[derive(Default)]
pub struct WrittenRejects(Mutex<HashMap<u32, (i64, u32)>>);

impl WrittenRejects {
    /// Notes a record read back from the destination.
    pub fn note(&mut self, record: &[u8]) {
        if let (Some((p, at)), Ok(map)) = (parse_reject_origin(record), self.0.get_mut()) {
            let slot = map.entry(p).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Per input partition, the offset of the last reject held.
    pub fn held(&self) -> Held {
        let mut held = Held::default();
        if let Ok(map) = self.0.lock() {
            for (&p, &(offset, _)) in map.iter() {
                held.offset(p, offset);
            }
        }
        held
    }

    /// Whether the reject of `(partition, offset, line)` must be written.
    pub fn is_new(&self, r: &KafkaReject<'_>) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        match map.get(&r.partition) {
            Some(&last) if (r.offset, r.line) <= last => false,
            Some(_) => {
                map.remove(&r.partition);
                true
            }
            None => true,
        }
    }
}

/// A file written by the continuous job, appended to after a restart.
pub struct SharedFile {
    path: PathBuf,
    inner: Mutex<BufWriter<File>>,
}

impl SharedFile {
    /// Opens `path` for appending after cutting a partial last line (a
    /// write cut short by a crash); returns it with the complete lines from
    /// byte `from` on.
    pub fn open(path: &Path, from: u64) -> std::io::Result<(Self, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let from = from.min(len);
        file.seek(SeekFrom::Start(from))?;
        let mut reader = BufReader::new(Read::by_ref(&mut file));
        let mut lines = Vec::new();
        let mut complete = from;
        loop {
            let mut line = Vec::new();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            complete += n as u64;
            line.pop();
            lines.push(line);
        }
        drop(reader);
        if complete < len {
            file.set_len(complete)?;
        }
        file.seek(SeekFrom::Start(complete))?;
        Ok((
            SharedFile {
                path: path.to_owned(),
                inner: Mutex::new(BufWriter::with_capacity(1 << 16, file)),
            },
            lines,
        ))
    }

    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.lock()?.write_all(bytes)
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, BufWriter<File>>> {
        self.inner
            .lock()
            .map_err(|_| std::io::Error::other("output lock poisoned"))
    }

    pub fn flush(&self) -> std::io::Result<()> {
        self.lock()?.flush()
    }

    /// Writes everything to disk; returns the file's length.
    pub fn sync(&self) -> std::io::Result<u64> {
        let mut w = self.lock()?;
        w.flush()?;
        w.get_ref().sync_data()?;
        Ok(w.get_ref().metadata()?.len())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where a file output writes: a file that resumes, or standard output.
pub enum Destination {
    File(Arc<SharedFile>),
    Stdout(BufWriter<std::io::Stdout>),
}

impl Write for Destination {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Destination::File(f) => f.write(bytes)?,
            Destination::Stdout(s) => s.write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Destination::File(f) => f.flush(),
            Destination::Stdout(s) => s.flush(),
        }
    }
}

/// Notifications to a file (or standard output) as JSON Lines, with
/// progress records at most every 200 ms: a [`LineOutput`] that skips what
/// the file already holds.
pub struct FileNotifications {
    line: LineOutput,
    resume: Resume,
    kept: Vec<Notification>,
    written: Arc<AtomicU64>,
}

impl FileNotifications {
    /// `lines`: what the file holds since the snapshot's mark.
    pub fn new(
        dest: Destination,
        hunt: &Hunt,
        lines: &[Vec<u8>],
        below: u64,
        written: Arc<AtomicU64>,
    ) -> Result<Self, String> {
        let mut resume = Resume::new(below, 1);
        for (i, line) in lines.iter().enumerate() {
            match parse_notification(hunt, line) {
                Ok(Some((t, n))) => resume.written(0, t, n),
                Ok(None) => {}
                Err(e) => return Err(format!("line {} after the snapshot mark: {e}", i + 1)),
            }
        }
        let pacer = ProgressPacer::new(Duration::from_millis(200), Some(below));
        Ok(FileNotifications {
            line: LineOutput::paced(Box::new(dest), Some(pacer)),
            resume,
            kept: Vec::new(),
            written,
        })
    }

    /// What the file held after the snapshot's mark.
    pub fn held(&self) -> Held {
        self.resume.held()
    }
}

impl NotificationOutput for FileNotifications {
    fn write_time(&mut self, hunt: &Hunt, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        self.kept.clear();
        for n in ns {
            if self.resume.keep(0, time, n) {
                self.kept.push(n.clone());
            }
        }
        self.line.write_time(hunt, time, &self.kept)
    }

    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()> {
        self.line.progress(frontier)?;
        self.written
            .store(frontier.unwrap_or(u64::MAX), Ordering::Release);
        Ok(())
    }
}

/// Rejects to a file (or standard output), skipping those it already holds.
pub struct FileRejects {
    dest: Mutex<Destination>,
    written: WrittenRejects,
}

impl FileRejects {
    pub fn new(dest: Destination, lines: &[Vec<u8>]) -> Self {
        let mut written = WrittenRejects::default();
        for line in lines {
            written.note(line);
        }
        FileRejects {
            dest: Mutex::new(dest),
            written,
        }
    }

    /// What the file held after the snapshot's mark.
    pub fn held(&self) -> Held {
        self.written.held()
    }
}

impl RejectWriter for FileRejects {
    fn reject(&self, topic: &str, r: KafkaReject<'_>) -> Result<(), String> {
        if !self.written.is_new(&r) {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(256 + r.raw.len());
        format_kafka_reject(&mut buf, topic, &r);
        let mut dest = self.dest.lock().map_err(|_| "rejects lock poisoned")?;
        dest.write_all(&buf)
            .and_then(|_| dest.flush())
            .map_err(|e| format!("writing rejects: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::PlayerKind;

    fn player(p: &str, kind: PlayerKind, item: u32) -> Notification {
        Notification::Player {
            rank_priority: std::cmp::Reverse(1),
            player: p.into(),
            kind,
            item,
        }
    }

    #[test]
    fn skips_below_the_frontier_and_up_to_the_last_written() {
        let mut r = Resume::new(10, 2);
        r.written(0, 12, player("b", PlayerKind::Enter, 0));
        assert!(!r.keep(0, 9, &player("z", PlayerKind::Enter, 0)));
        assert!(!r.keep(0, 12, &player("a", PlayerKind::Enter, 0)));
        assert!(!r.keep(0, 12, &player("b", PlayerKind::Enter, 0)));
        assert!(r.keep(1, 12, &player("a", PlayerKind::Enter, 0)));
        assert!(r.keep(0, 12, &player("c", PlayerKind::Enter, 0)));
        // Once past the last written, everything is new.
        assert!(r.keep(0, 13, &player("a", PlayerKind::Enter, 0)));
    }

    #[test]
    fn what_was_held_is_passed_once_written_and_read_beyond_it() {
        let mut held = Held::default();
        assert!(held.passed(0, |_| None), "nothing held");
        held.time(Some(20));
        held.merge(Held {
            until: Some(15),
            offsets: [(1, 7)].into(),
        });
        held.offset(1, 5);
        assert_eq!(held.until, Some(20));
        assert_eq!(held.offsets, [(1, 7)].into());
        assert!(!held.passed(20, |_| Some(100)), "time 20 not yet written");
        assert!(!held.passed(21, |_| Some(7)), "offset 7 not yet read");
        assert!(!held.passed(21, |_| None), "partition 1 not yet read");
        assert!(held.passed(21, |_| Some(8)));
    }

    #[test]
    fn a_partial_last_line_is_cut() {
        let dir = std::env::temp_dir().join(format!("huntflow-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        std::fs::write(&path, b"one\ntwo\nthr").unwrap();
        let (f, lines) = SharedFile::open(&path, 4).unwrap();
        assert_eq!(lines, vec![b"two".to_vec()]);
        f.write(b"three\n").unwrap();
        assert_eq!(f.sync().unwrap(), 14);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
