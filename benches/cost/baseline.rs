//! The COST baseline: a single-threaded program that computes the same
//! notification stream as `huntflow backfill` for a hunt and a set of
//! partition files, with plain hash maps and a time-ordered loop instead of
//! timely and differential dataflow.
//!
//! It reuses the engine's record decoding and validation
//! (`huntflow::model::event::parse`, `Parsed::into_event`), the per-partition
//! lateness and duplicate rules (`huntflow::input::admission::Admission`), the hunt and
//! its zone index, and the notification record format
//! (`huntflow::output::format::format_notification`). Everything else is its own:
//! partitions are read round-robin in chunks, each keeping its frontier
//! `max(0, M - L)`; accepted events wait by time until every open partition's
//! frontier has passed it; complete times are processed in order by
//! [`state::World`].

#[path = "player.rs"]
mod player;
#[path = "state.rs"]
mod state;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use huntflow::input::admission::Admission;
use huntflow::input::stats::Summary;
use huntflow::model::event::{self, Reason};
use huntflow::model::hunt::Hunt;
use huntflow::output::format::format_notification;

use player::resolve;
use state::World;

/// Lines read from one partition before moving to the next.
const CHUNK_LINES: usize = 4096;
/// Output is written in blocks of about this many bytes.
const OUT_BLOCK: usize = 1 << 16;

/// One input file and its lateness and duplicate state.
struct Partition {
    reader: BufReader<File>,
    admission: Admission,
    open: bool,
}

/// Counts of read, accepted and rejected records.
#[derive(Default)]
struct Counts {
    read: u64,
    accepted: u64,
    rejected: [u64; Reason::ALL.len()],
}

impl Counts {
    fn summary(&self) -> Summary {
        let rejected: BTreeMap<&'static str, u64> = Reason::ALL
            .iter()
            .filter(|r| self.rejected[r.index()] > 0)
            .map(|r| (r.as_str(), self.rejected[r.index()]))
            .collect();
        Summary {
            hunt_changes: None,
            read: self.read,
            accepted: self.accepted,
            rejected,
        }
    }
}

/// Reads up to [`CHUNK_LINES`] records of `part`, buffering accepted events
/// in `world`; closes the partition at end of file.
fn read_chunk(
    part: &mut Partition,
    hunt: &Hunt,
    world: &mut World,
    counts: &mut Counts,
    line: &mut Vec<u8>,
) -> io::Result<()> {
    for _ in 0..CHUNK_LINES {
        line.clear();
        if part.reader.read_until(b'\n', line)? == 0 {
            part.open = false;
            return Ok(());
        }
        let record = line.strip_suffix(b"\n").unwrap_or(line);
        if event::is_blank(record) {
            continue;
        }
        counts.read += 1;
        let checked = event::parse(record, hunt).and_then(|parsed| {
            part.admission.admit(&parsed.id, parsed.ts)?;
            Ok(parsed)
        });
        match checked {
            Ok(parsed) => {
                counts.accepted += 1;
                if let Some(event) = parsed.into_event().and_then(|e| resolve(e, hunt)) {
                    world.push(event);
                }
            }
            Err(bad) => counts.rejected[bad.reason.index()] += 1,
        }
    }
    Ok(())
}

/// Runs the baseline over `inputs` (one partition per file), writes the
/// notifications to `out` and returns the read/accepted/rejected summary.
pub fn run(hunt: &Hunt, inputs: &[PathBuf], out: &mut dyn Write) -> io::Result<Summary> {
    let mut parts = inputs
        .iter()
        .map(|path| {
            let file = File::open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Ok(Partition {
                reader: BufReader::with_capacity(1 << 20, file),
                admission: Admission::new(hunt.max_lateness_ms),
                open: true,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;

    let mut world = World::new(hunt);
    let mut counts = Counts::default();
    let mut line = Vec::with_capacity(1024);
    let mut text = Vec::with_capacity(2 * OUT_BLOCK);
    let mut failed: Option<io::Error> = None;
    loop {
        for part in parts.iter_mut().filter(|p| p.open) {
            read_chunk(part, hunt, &mut world, &mut counts, &mut line)?;
        }
        // The input frontier: the least frontier of the open partitions;
        // none once every partition is closed, which completes every time.
        let frontier = parts
            .iter()
            .filter(|p| p.open)
            .map(|p| p.admission.frontier())
            .min();
        world.advance(frontier, |t, notes| {
            for n in notes {
                format_notification(&mut text, t, n);
            }
            if text.len() >= OUT_BLOCK && failed.is_none() {
                failed = out.write_all(&text).err();
                text.clear();
            }
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
        if frontier.is_none() {
            break;
        }
    }
    debug_assert_eq!(world.buffered(), 0);
    out.write_all(&text)?;
    out.flush()?;
    Ok(counts.summary())
}
