//! An append-only log of decisions that are not a function of the input
//! (idle advances, partition starts, hunt changes), one JSON line each,
//! synced before the decision takes effect. A line cut short by a crash
//! was never acted on, and is skipped when the log is read.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct DecisionFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("decision log lock poisoned")
}

impl DecisionFile {
    pub fn new(path: PathBuf) -> Self {
        DecisionFile {
            path,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `item` and syncs it.
    pub fn append<T: Serialize>(&self, item: &T) -> std::io::Result<()> {
        let mut guard = self.file.lock().map_err(|_| poisoned())?;
        if guard.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *guard = Some(f);
        }
        let f = guard.as_mut().expect("opened");
        let mut line = serde_json::to_vec(item)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    }

    /// Every whole line, in order.
    pub fn read<T: DeserializeOwned>(&self) -> std::io::Result<Vec<T>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in BufReader::new(file).lines() {
            if let Ok(item) = serde_json::from_str::<T>(&line?) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Replaces the log by `items` at once (written aside, synced, renamed).
    pub fn replace<T: Serialize>(&self, items: &[T]) -> std::io::Result<()> {
        let mut guard = self.file.lock().map_err(|_| poisoned())?;
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut text = Vec::new();
        for item in items {
            serde_json::to_writer(&mut text, item)?;
            text.push(b'\n');
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        *guard = None;
        Ok(())
    }
}
