//! The continuous job's file outputs: a file appended to after a restart
//! (cut after its last whole line), standard output, and notifications as
//! JSON Lines that skip what the file already holds.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::format::parse_notification;
use super::line::{LineOutput, ProgressPacer};
use super::order::Notification;
use super::resume::{Held, Resume};
use super::sink::NotificationOutput;
use super::{Marks, OutputError};

/// A file written by the continuous job, appended to after a restart.
pub struct SharedFile {
    path: PathBuf,
    inner: Mutex<BufWriter<File>>,
    /// The file's length once everything handed over is written.
    position: AtomicU64,
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
                position: AtomicU64::new(complete),
            },
            lines,
        ))
    }

    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.lock()?.write_all(bytes)?;
        self.position
            .fetch_add(bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// The file's length once everything handed over so far is written.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
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

impl Destination {
    /// The position after everything handed over so far (none for standard
    /// output).
    pub fn position(&self) -> Option<u64> {
        match self {
            Destination::File(f) => Some(f.position()),
            Destination::Stdout(_) => None,
        }
    }
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
    /// The file written (none for standard output).
    file: Option<Arc<SharedFile>>,
}

impl FileNotifications {
    /// `lines`: what the file holds since the mark of the snapshot taken at
    /// frontier `below`.
    pub fn new(
        name: String,
        dest: Destination,
        lines: &[Vec<u8>],
        below: u64,
    ) -> Result<Self, OutputError> {
        let mut resume = Resume::new(1);
        for (i, line) in lines.iter().enumerate() {
            match parse_notification(line) {
                Ok(Some((t, n))) => resume.written(0, t, n),
                Ok(None) => {}
                Err(e) => {
                    return Err(OutputError::Diverged {
                        name,
                        message: format!("line {} after the snapshot mark: {e}", i + 1),
                    })
                }
            }
        }
        let pacer = ProgressPacer::new(Duration::from_millis(200), Some(below));
        let file = match &dest {
            Destination::File(f) => Some(f.clone()),
            Destination::Stdout(_) => None,
        };
        Ok(FileNotifications {
            line: LineOutput::paced(name, Box::new(dest), Some(pacer)),
            resume,
            kept: Vec::new(),
            file,
        })
    }

    /// What the file held after the snapshot's mark.
    pub fn held(&self) -> Held {
        self.resume.held()
    }
}

impl NotificationOutput for FileNotifications {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        self.kept.clear();
        for n in ns {
            if self.resume.keep(0, time, n) {
                self.kept.push(n.clone());
            }
        }
        self.line.write_time(time, &self.kept)
    }

    fn progress_due_in(&self) -> Option<Duration> {
        self.line.progress_due_in()
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        self.line.progress(frontier)
    }

    fn flush_progress(&mut self, upto: u64) -> Result<(), OutputError> {
        self.line.flush_progress(upto)
    }

    fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        self.line.hand_over()?;
        let at = self.file.as_ref().map(|f| f.position() as i64);
        marks
            .outputs
            .insert(super::NOTIFICATIONS.into(), at.into_iter().collect());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
