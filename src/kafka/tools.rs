//! `huntflow produce` (dataset files into a topic, keyed by player) and
//! `huntflow dump` (a topic's partitions into one file each, so a backfill
//! can run over exactly what the continuous job read).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admin::{read_to_end, Admin};
use super::partitioner::partition_of;
use super::producer::{ProduceError, Producer};
use super::{KafkaConfig, KafkaError};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(serde::Deserialize)]
struct KeyFields {
    player: Option<String>,
    ts: Option<u64>,
}

/// One input file being merged.
struct Input {
    path: PathBuf,
    reader: BufReader<File>,
    next: Option<Vec<u8>>,
    /// The `ts` of `next`, or of the last line that had one.
    ts: u64,
}

impl Input {
    fn advance(&mut self) -> Result<(), ToolError> {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .map_err(io(&self.path))?;
        if n == 0 {
            self.next = None;
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Ok(k) = serde_json::from_slice::<KeyFields>(&line) {
            if let Some(ts) = k.ts {
                self.ts = ts;
            }
        }
        self.next = Some(line);
        Ok(())
    }
}

/// What `produce` did.
#[derive(Debug, Default)]
pub struct Produced {
    pub records: u64,
    pub partitions: u32,
}

/// Publishes the lines of `files` into `topic` (created with `partitions`
/// partitions if missing), each keyed by its `player` and placed by Kafka's
/// default partitioner. Files are merged by `ts` so that every partition
/// receives its records in time order, as a live feed would. `rate` limits
/// records per second.
pub fn produce(
    cfg: &KafkaConfig,
    topic: &str,
    partitions: u32,
    files: &[PathBuf],
    rate: Option<f64>,
    progress: bool,
) -> Result<Produced, ToolError> {
    let admin = Admin::new(cfg)?;
    let n = admin.ensure_topic(topic, partitions)?;
    let producer = Arc::new(Producer::new(cfg)?);
    let mut inputs = Vec::new();
    let mut total = 0;
    for path in files {
        let file = File::open(path).map_err(io(path))?;
        total += file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut input = Input {
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 20, file),
            next: None,
            ts: 0,
        };
        input.advance()?;
        inputs.push(input);
    }
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .expect("valid template"),
        );
        bar
    });
    let started = Instant::now();
    let mut done = Produced {
        records: 0,
        partitions: n,
    };
    while let Some(input) = inputs
        .iter_mut()
        .filter(|i| i.next.is_some())
        .min_by_key(|i| i.ts)
    {
        let line = input.next.take().expect("filtered");
        input.advance()?;
        let key = serde_json::from_slice::<KeyFields>(&line)
            .ok()
            .and_then(|k| k.player);
        let p = match &key {
            Some(k) => partition_of(k.as_bytes(), n),
            None => partition_of(&line, n),
        };
        producer.send(topic, p, key.as_deref().map(str::as_bytes), &line)?;
        done.records += 1;
        if let Some(bar) = &bar {
            bar.inc(line.len() as u64 + 1);
        }
        if let Some(rate) = rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(done.records as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    producer.flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(done)
}

/// Writes every partition of `topic`, up to its current end, into
/// `dir/part-NNN.jsonl` (one value per line). Returns the files written and
/// the records in each.
pub fn dump(cfg: &KafkaConfig, topic: &str, dir: &Path) -> Result<Vec<(PathBuf, u64)>, ToolError> {
    let admin = Admin::new(cfg)?;
    let n = admin
        .partitions(topic)?
        .ok_or_else(|| KafkaError::NoTopic(topic.to_string()))?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut out = Vec::new();
    for p in 0..n {
        let path = dir.join(format!("part-{p:03}.jsonl"));
        let file = File::create(&path).map_err(io(&path))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut records = 0;
        let mut failed = None;
        read_to_end(cfg, topic, p, None, |_, value| {
            records += 1;
            if failed.is_none() {
                if let Err(e) = w.write_all(value).and_then(|_| w.write_all(b"\n")) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(io(&path)(e));
        }
        w.flush().map_err(io(&path))?;
        out.push((path, records));
    }
    Ok(out)
}
