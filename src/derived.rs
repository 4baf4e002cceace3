//! Derived streams for offline analysis (`--derived DIR`): presence and
//! eligibility as intervals, JSON Lines that DuckDB or pandas read directly.
//!
//! - `DIR/presence.jsonl`: `{"player","zone","from","until"}`
//! - `DIR/eligibility.jsonl`: `{"player","reward","from","until"}`
//!
//! An interval is `[from, until)` in event time; it is written when it
//! closes, in notification order. At the end of a backfill the intervals
//! still open are written with `"until": null`, sorted by player and item.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::event::Id;
use crate::hunt::Hunt;
use crate::sink::{Notification, NotificationOutput, PlayerKind};

/// The interval files and the intervals still open.
pub struct Derived {
    presence: BufWriter<File>,
    eligibility: BufWriter<File>,
    open: HashMap<(Id, bool, u32), u64>,
    names: (Vec<String>, Vec<String>),
}

impl Derived {
    pub fn create(dir: &Path, hunt: &Hunt) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Derived {
            presence: BufWriter::new(File::create(dir.join("presence.jsonl"))?),
            eligibility: BufWriter::new(File::create(dir.join("eligibility.jsonl"))?),
            open: HashMap::new(),
            names: (
                hunt.zones.iter().map(|z| z.id.clone()).collect(),
                hunt.rewards.iter().map(|r| r.id.clone()).collect(),
            ),
        })
    }

    fn write(
        &mut self,
        player: &str,
        reward: bool,
        item: u32,
        from: u64,
        until: Option<u64>,
    ) -> std::io::Result<()> {
        let (w, field, name) = if reward {
            (
                &mut self.eligibility,
                "reward",
                &self.names.1[item as usize],
            )
        } else {
            (&mut self.presence, "zone", &self.names.0[item as usize])
        };
        let mut line = Vec::with_capacity(96);
        line.extend_from_slice(b"{\"player\":");
        serde_json::to_writer(&mut line, player)?;
        write!(line, ",\"{field}\":")?;
        serde_json::to_writer(&mut line, name)?;
        match until {
            Some(u) => writeln!(line, ",\"from\":{from},\"until\":{u}}}")?,
            None => writeln!(line, ",\"from\":{from},\"until\":null}}")?,
        }
        w.write_all(&line)
    }

    /// The notifications of one completed time.
    pub fn observe(&mut self, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        for n in ns {
            let Notification::Player {
                player, kind, item, ..
            } = n
            else {
                continue;
            };
            let reward = matches!(kind, PlayerKind::Eligible | PlayerKind::Ineligible);
            let key = (player.clone(), reward, *item);
            if matches!(kind, PlayerKind::Enter | PlayerKind::Eligible) {
                self.open.insert(key, time);
            } else if let Some(from) = self.open.remove(&key) {
                self.write(player, reward, *item, from, Some(time))?;
            }
        }
        Ok(())
    }

    /// Every time is complete: writes the open intervals.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let mut open: Vec<((Id, bool, u32), u64)> = self.open.drain().collect();
        open.sort_unstable();
        for ((player, reward, item), from) in open {
            self.write(&player, reward, item, from, None)?;
        }
        self.presence.flush()?;
        self.eligibility.flush()
    }
}

/// A notification output that also writes the interval files.
pub struct WithDerived {
    pub inner: Box<dyn NotificationOutput>,
    pub derived: Derived,
}

impl NotificationOutput for WithDerived {
    fn write_time(&mut self, hunt: &Hunt, time: u64, ns: &[Notification]) -> std::io::Result<()> {
        self.inner.write_time(hunt, time, ns)?;
        self.derived.observe(time, ns)
    }

    fn progress(&mut self, frontier: Option<u64>) -> std::io::Result<()> {
        self.inner.progress(frontier)?;
        if frontier.is_none() {
            self.derived.finish()?;
        }
        Ok(())
    }
}
