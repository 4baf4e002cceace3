//! The one path of rejects, in both jobs: sources emit them as data
//! ([`Reject`]), and one sink operator hands them to a [`RejectSink`] — a
//! file (or standard output) or a topic — in their format
//! (docs/spec.md §3):
//!
//! - from files: `{"reason","detail","source","line","raw"}`;
//! - from a topic: `{"reason","detail","topic","partition","offset","line","raw"}`;
//!
//! each with `raw_base64` too when the raw bytes are not UTF-8.
//!
//! A backfill writes its rejects on worker 0 once their time is complete,
//! ordered by [`Reject::order_key`], so the file is a function of the input
//! whatever the number of workers ([`When::Complete`]). The continuous job
//! writes each reject as it is read, on the worker that read it
//! ([`When::AsRead`]): a snapshot then records input offsets that cover
//! exactly the rejects written, and a restart re-reads the rest. In a
//! cluster, the continuous job's rejects go to worker 0 as they are read,
//! and are written there in the order each worker read them
//! ([`When::Gathered`]); its snapshot waits until worker 0 has written, for
//! each input partition, the rejects emitted before the capture.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use base64::Engine;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::format::json_str;
use super::resume::{Held, WrittenRejects};
use super::sink::{record_error, ErrorSlot};
use super::OutputError;
use crate::input::changes::CHANGES;
use crate::input::reject::{Place, Reject};

/// What a reject's partition number names.
#[derive(Clone, Debug)]
pub enum Origins {
    /// A backfill's input files, by partition, and its change log.
    Files {
        inputs: Arc<Vec<String>>,
        changes: Option<String>,
    },
    /// The continuous job's input topic, and its hunt topic.
    Topic {
        events: String,
        changes: Option<String>,
    },
}

impl Origins {
    /// The change log or hunt topic, if any.
    pub fn changes(&self) -> Option<&str> {
        match self {
            Origins::Files { changes, .. } | Origins::Topic { changes, .. } => changes.as_deref(),
        }
    }

    /// The name of partition `p`'s source: its file, or the topic; the
    /// change log or hunt topic for [`CHANGES`].
    pub fn name(&self, p: u32) -> &str {
        let (inputs, changes) = match self {
            Origins::Files { inputs, changes } => {
                (inputs.get(p as usize).map(|n| n.as_str()), changes)
            }
            Origins::Topic { events, changes } => (Some(events.as_str()), changes),
        };
        if p == CHANGES {
            changes.as_deref().unwrap_or("?")
        } else {
            inputs.unwrap_or("?")
        }
    }
}

/// Appends one reject as a JSON line.
pub fn format_reject(out: &mut Vec<u8>, origins: &Origins, r: &Reject) {
    let _ = write!(out, "{{\"reason\":\"{}\",\"detail\":", r.reason.as_str());
    json_str(out, &r.detail);
    let name = origins.name(r.partition);
    match r.place {
        Place::Message { offset, line } => {
            out.extend_from_slice(b",\"topic\":");
            json_str(out, name);
            // The hunt topic has one partition.
            let partition = if r.partition == CHANGES {
                0
            } else {
                r.partition
            };
            let _ = write!(
                out,
                ",\"partition\":{partition},\"offset\":{offset},\"line\":{line}"
            );
        }
        Place::Line(line) => {
            out.extend_from_slice(b",\"source\":");
            json_str(out, name);
            let _ = write!(out, ",\"line\":{line}");
        }
    }
    out.extend_from_slice(b",\"raw\":");
    match std::str::from_utf8(&r.raw) {
        Ok(text) => json_str(out, text),
        Err(_) => {
            json_str(out, &String::from_utf8_lossy(&r.raw));
            out.extend_from_slice(b",\"raw_base64\":\"");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&r.raw);
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

#[derive(serde::Deserialize)]
struct Origin {
    topic: String,
    partition: u32,
    offset: i64,
    line: u32,
}

/// `(topic, partition, (offset, line))` of a reject read from a topic, as
/// written by [`format_reject`].
pub fn parse_reject_origin(record: &[u8]) -> Option<(String, u32, (i64, u32))> {
    let o: Origin = serde_json::from_slice(record).ok()?;
    Some((o.topic, o.partition, (o.offset, o.line)))
}

/// Where rejects are written.
pub trait RejectSink: Send {
    /// Writes one reject, unless its destination already holds it.
    fn write(&mut self, r: &Reject) -> Result<(), OutputError>;
    /// Hands what was written to the destination.
    fn flush(&mut self) -> Result<(), OutputError>;
    /// Per partition of the destination, where the next reject will go
    /// (a file's length, a topic partition's next offset; empty for
    /// standard output).
    fn mark(&mut self) -> Vec<i64>;
}

/// A reject sink the workers share.
pub type SharedRejects = Arc<Mutex<Box<dyn RejectSink>>>;

/// When rejects are written (see the module's header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Complete,
    AsRead,
    Gathered,
}

/// Rejects as JSON Lines to a file or standard output, skipping those it
/// already holds (after a restart).
pub struct FileRejects {
    name: String,
    dest: Box<dyn Write + Send>,
    origins: Origins,
    written: WrittenRejects,
    buf: Vec<u8>,
    /// The file's length once everything written is (none for standard
    /// output).
    position: Option<u64>,
}

impl FileRejects {
    /// `held`: the lines the file holds beyond the snapshot's mark;
    /// `position`: its length (none for standard output).
    pub fn new(
        name: String,
        dest: Box<dyn Write + Send>,
        origins: Origins,
        held: &[Vec<u8>],
        position: Option<u64>,
    ) -> Self {
        let mut written = WrittenRejects::default();
        for line in held {
            written.note(line, origins.changes());
        }
        FileRejects {
            name,
            dest,
            origins,
            written,
            buf: Vec::with_capacity(1 << 16),
            position,
        }
    }

    /// What the file held beyond the snapshot's mark.
    pub fn held(&self) -> Held {
        self.written.held()
    }
}

impl RejectSink for FileRejects {
    fn write(&mut self, r: &Reject) -> Result<(), OutputError> {
        if self.written.is_new(r) {
            format_reject(&mut self.buf, &self.origins, r);
        }
        if self.buf.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        let result = self
            .dest
            .write_all(&self.buf)
            .and_then(|_| self.dest.flush());
        if let Some(p) = self.position.as_mut() {
            *p += self.buf.len() as u64;
        }
        self.buf.clear();
        result.map_err(|e| OutputError::io(&self.name, e))
    }

    fn mark(&mut self) -> Vec<i64> {
        // Rejects are flushed as they are written.
        self.position.map(|p| p as i64).into_iter().collect()
    }
}

/// How many rejects this worker's sink has written ([`When::AsRead`]): a
/// snapshot waits until it has written every reject its source emitted.
#[derive(Clone, Default)]
pub struct Written(Rc<Cell<u64>>, Rc<RefCell<BTreeMap<u32, u64>>>);

impl Written {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// ([`When::Gathered`], on worker 0) the rejects written of the input
    /// partitions `of` selects.
    pub fn of(&self, of: impl Fn(u32) -> bool) -> u64 {
        self.1
            .borrow()
            .iter()
            .filter(|(&p, _)| of(p))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Writes the rejects stream to `sink` (or only drains it where `sink` is
/// `None`).
pub fn reject_sink<'scope>(
    rejects: Stream<'scope, u64, Vec<Reject>>,
    sink: Option<SharedRejects>,
    when: When,
    errors: ErrorSlot,
) -> Written {
    let written = Written::default();
    match when {
        When::Complete => complete(rejects, sink, errors),
        When::AsRead => as_read(rejects, sink, errors, written.clone()),
        When::Gathered => gathered(rejects, sink, errors, written.clone()),
    }
    written
}

fn write_all<'a>(
    sink: &SharedRejects,
    rejects: impl Iterator<Item = &'a Reject>,
) -> Result<u64, OutputError> {
    let Ok(mut sink) = sink.lock() else {
        return Ok(0);
    };
    let mut n = 0;
    for r in rejects {
        sink.write(r)?;
        n += 1;
    }
    sink.flush()?;
    Ok(n)
}

/// On worker 0, in order, once complete.
fn complete(rejects: Stream<'_, u64, Vec<Reject>>, sink: Option<SharedRejects>, errors: ErrorSlot) {
    let mut sink = sink;
    let mut pending: BTreeMap<(u64, u32, Place), Reject> = BTreeMap::new();
    rejects.sink(
        Exchange::new(|_: &Reject| 0),
        "RejectSink",
        move |(input, frontier)| {
            input.for_each(|_cap, data| {
                for r in data.drain(..) {
                    if sink.is_some() {
                        pending.insert(r.order_key(), r);
                    }
                }
            });
            let Some(s) = sink.as_ref() else { return };
            let limit = frontier.frontier().first().copied();
            let mut due = Vec::new();
            while let Some(entry) = pending.first_entry() {
                if limit.is_some_and(|f| entry.key().0 >= f) {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() || limit.is_none() {
                if let Err(e) = write_all(s, due.iter()) {
                    record_error(&errors, e);
                }
            }
            if limit.is_none() {
                sink = None;
            }
        },
    );
}

/// On worker 0, as they arrive from every worker ([`When::Gathered`]).
fn gathered(
    rejects: Stream<'_, u64, Vec<Reject>>,
    sink: Option<SharedRejects>,
    errors: ErrorSlot,
    written: Written,
) {
    let exchange = Exchange::new(|_: &Reject| 0);
    rejects.sink(exchange, "RejectSink", move |(input, _frontier)| {
        input.for_each(|_cap, data| write_counted(&sink, data, &written, &errors));
    });
}

/// On the worker that read them, at once.
fn as_read(
    rejects: Stream<'_, u64, Vec<Reject>>,
    sink: Option<SharedRejects>,
    errors: ErrorSlot,
    written: Written,
) {
    rejects.sink(Pipeline, "RejectSink", move |(input, _frontier)| {
        input.for_each(|_cap, data| write_counted(&sink, data, &written, &errors));
    });
}

/// Writes a batch of rejects (where there is a sink), counting them in
/// all and by input partition.
fn write_counted(
    sink: &Option<SharedRejects>,
    data: &mut Vec<Reject>,
    written: &Written,
    errors: &ErrorSlot,
) {
    let result = match sink {
        Some(s) => write_all(s, data.iter()),
        None => Ok(data.len() as u64),
    };
    match result {
        Ok(n) => {
            written.0.set(written.0.get() + n);
            let mut by = written.1.borrow_mut();
            for r in data.iter() {
                *by.entry(r.partition).or_default() += 1;
            }
        }
        Err(e) => record_error(errors, e),
    }
    data.clear();
}
