//! Derived streams for offline analysis (`--derived DIR`): presence and
//! eligibility as intervals, JSON Lines that DuckDB or pandas read directly.
//!
//! - `DIR/presence.jsonl`: `{"player","zone","from","until"}`
//! - `DIR/eligibility.jsonl`: `{"player","reward","from","until"}`
//!
//! An interval is `[from, until)` in event time; it is written when it
//! closes, in notification order. At the end of a backfill the intervals
//! still open are written with `"until": null`, sorted by player and item.
//!
//! The continuous job resumes the files after a restart like its other
//! outputs: a snapshot records where each file ends and the intervals then
//! open ([`OpenInterval`]); the lines a file holds beyond that mark are the
//! first the restarted job re-creates, so they are checked against it and
//! not written again.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::order::{Notification, PlayerKind};
use super::sink::NotificationOutput;
use super::{Marks, OutputError, ELIGIBILITY, PRESENCE};
use crate::model::event::Id;

/// The two files, in this order.
pub const FILES: [&str; 2] = ["presence.jsonl", "eligibility.jsonl"];

/// The end of a closed interval written by [`Derived`], read back from
/// its line; `None` when the line is not one.
pub fn closed_until(line: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Closed {
        until: u64,
    }
    serde_json::from_slice::<Closed>(line).ok().map(|c| c.until)
}

/// An interval still open when a snapshot was taken: one JSON line of the
/// snapshot, a zone's or a reward's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpenInterval {
    pub player: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<String>,
    pub from: u64,
}

/// One interval file.
struct IntervalFile {
    path: PathBuf,
    out: Box<dyn Write + Send>,
    /// Lines the file holds beyond the snapshot's mark, still to be
    /// re-created.
    held: VecDeque<Vec<u8>>,
    /// The file's length once every line emitted is written (the job's
    /// files; not a backfill's).
    position: Option<u64>,
}

impl IntervalFile {
    fn emit(&mut self, line: &[u8]) -> Result<(), OutputError> {
        if let Some(p) = self.position.as_mut() {
            *p += line.len() as u64;
        }
        match self.held.pop_front() {
            None => self
                .out
                .write_all(line)
                .map_err(|e| OutputError::io(self.path.display(), e)),
            Some(held) if held == line[..line.len() - 1] => Ok(()),
            Some(held) => Err(OutputError::Diverged {
                name: self.path.display().to_string(),
                message: format!(
                    "beyond the snapshot's mark the file holds {:?}, but the job re-creates {:?}; was it written by another job?",
                    String::from_utf8_lossy(&held),
                    String::from_utf8_lossy(&line[..line.len() - 1]),
                ),
            }),
        }
    }
}

/// The interval files and the intervals still open.
pub struct Derived {
    files: [IntervalFile; 2],
    /// `(player, reward?, item id)` → from.
    open: HashMap<(Id, bool, Id), u64>,
}

/// Where a snapshot left the files: where each was marked and what it
/// holds beyond, and the intervals then open.
#[derive(Default)]
pub struct Resumed {
    /// The marks (none: the files' positions are not followed).
    pub marks: [Option<u64>; 2],
    pub held: [Vec<Vec<u8>>; 2],
    pub open: Vec<OpenInterval>,
}

impl Derived {
    /// New files in `dir`, replacing any there.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let create = |name: &str| -> std::io::Result<Box<dyn Write + Send>> {
            Ok(Box::new(BufWriter::new(File::create(dir.join(name))?)))
        };
        let outs = [create(FILES[0])?, create(FILES[1])?];
        Self::resume(dir, outs, Resumed::default(), &|_, _| true)
    }

    /// Files in `dir` written through `outs`, resumed from a snapshot;
    /// `known(reward?, id)` says whether some hunt version has the item an
    /// open interval names.
    pub fn resume(
        dir: &Path,
        outs: [Box<dyn Write + Send>; 2],
        resumed: Resumed,
        known: &dyn Fn(bool, &str) -> bool,
    ) -> std::io::Result<Self> {
        let bad = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        let mut open = HashMap::new();
        for o in resumed.open {
            let (reward, name) = match (&o.zone, &o.reward) {
                (Some(z), None) => (false, z),
                (None, Some(r)) => (true, r),
                _ => {
                    return Err(bad(format!(
                        "an open interval needs a zone or a reward: {o:?}"
                    )))
                }
            };
            if !known(reward, name) {
                return Err(bad(format!(
                    "an open interval of {name:?}, which the hunt does not have"
                )));
            }
            open.insert(
                (Id::from(o.player.as_str()), reward, Id::from(name.as_str())),
                o.from,
            );
        }
        let [p, e] = outs;
        let [hp, he] = resumed.held;
        let [mp, me] = resumed.marks;
        let file = |name: &str, out, held: Vec<Vec<u8>>, position| IntervalFile {
            path: dir.join(name),
            out,
            held: held.into(),
            position,
        };
        Ok(Derived {
            files: [file(FILES[0], p, hp, mp), file(FILES[1], e, he, me)],
            open,
        })
    }

    fn write(
        &mut self,
        player: &str,
        reward: bool,
        item: &str,
        from: u64,
        until: Option<u64>,
    ) -> Result<(), OutputError> {
        let field = if reward { "reward" } else { "zone" };
        let mut line = Vec::with_capacity(96);
        line.extend_from_slice(b"{\"player\":");
        super::format::json_str(&mut line, player);
        let _ = write!(line, ",\"{field}\":");
        super::format::json_str(&mut line, item);
        let _ = match until {
            Some(u) => writeln!(line, ",\"from\":{from},\"until\":{u}}}"),
            None => writeln!(line, ",\"from\":{from},\"until\":null}}"),
        };
        self.files[reward as usize].emit(&line)
    }

    /// The notifications of one completed time.
    pub fn observe(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        for n in ns {
            let Notification::Player {
                player, kind, item, ..
            } = n
            else {
                continue;
            };
            let reward = !kind.is_zone();
            let key = (player.clone(), reward, item.clone());
            if matches!(kind, PlayerKind::Enter | PlayerKind::Eligible) {
                self.open.insert(key, time);
            } else if let Some(from) = self.open.remove(&key) {
                self.write(player, reward, item, from, Some(time))?;
            }
        }
        Ok(())
    }

    /// Where the files stand and the intervals open now.
    pub fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        for (f, name) in self.files.iter_mut().zip([PRESENCE, ELIGIBILITY]) {
            f.out
                .flush()
                .map_err(|e| OutputError::io(f.path.display(), e))?;
            let at = f.position.map(|p| p as i64);
            marks.outputs.insert(name.into(), at.into_iter().collect());
        }
        marks.open = Some(self.open_intervals());
        Ok(())
    }

    /// The intervals open now, sorted.
    pub fn open_intervals(&self) -> Vec<OpenInterval> {
        let mut open: Vec<OpenInterval> = self
            .open
            .iter()
            .map(|((player, reward, item), &from)| {
                let name = Some(item.to_string());
                OpenInterval {
                    player: player.to_string(),
                    zone: if *reward { None } else { name.clone() },
                    reward: if *reward { name } else { None },
                    from,
                }
            })
            .collect();
        open.sort_unstable();
        open
    }

    /// Every time is complete: writes the open intervals.
    pub fn finish(&mut self) -> Result<(), OutputError> {
        let mut open: Vec<((Id, bool, Id), u64)> = self.open.drain().collect();
        open.sort_unstable();
        for ((player, reward, item), from) in open {
            self.write(&player, reward, &item, from, None)?;
        }
        for f in &mut self.files {
            f.out
                .flush()
                .map_err(|e| OutputError::io(f.path.display(), e))?;
        }
        Ok(())
    }
}

/// The interval files, shared by the sink that writes them and the
/// snapshot that records where they stand.
pub type SharedDerived = Arc<Mutex<Derived>>;

/// The tap of the output chain that writes the interval files.
pub struct DerivedTap(pub SharedDerived);

impl DerivedTap {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Derived>, OutputError> {
        self.0.lock().map_err(|_| OutputError::Diverged {
            name: "derived files".into(),
            message: "lock poisoned".into(),
        })
    }
}

impl NotificationOutput for DerivedTap {
    fn write_time(&mut self, time: u64, ns: &[Notification]) -> Result<(), OutputError> {
        self.lock()?.observe(time, ns)
    }

    fn progress(&mut self, frontier: Option<u64>) -> Result<(), OutputError> {
        if frontier.is_none() {
            self.lock()?.finish()?;
        }
        Ok(())
    }

    fn mark(&mut self, marks: &mut Marks) -> Result<(), OutputError> {
        self.lock()?.mark(marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::hunt::Hunt;
    use crate::output::chain::Chain;

    use crate::output::chain::Elsewhere as Nowhere;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap();
            String::from_utf8(bytes.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn hunt() -> Hunt {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml");
        Hunt::load(&path).expect("demo hunt loads")
    }

    fn n(player: &str, kind: PlayerKind, item: &str) -> Notification {
        Notification::Player {
            rank_priority: std::cmp::Reverse(1),
            player: player.into(),
            kind,
            item: item.into(),
        }
    }

    /// Times and their notifications, over the zones fountain, bridge,
    /// tower and the reward golden-key.
    fn story(hunt: &Hunt) -> Vec<(u64, Vec<Notification>)> {
        use PlayerKind::*;
        let zone = |id: &'static str| {
            assert!(hunt.zone_number(id).is_some());
            id
        };
        let (f, b, t) = (zone("fountain"), zone("bridge"), zone("tower"));
        let key = "golden-key";
        assert!(hunt.reward_number(key).is_some());
        vec![
            (10, vec![n("p1", Enter, f), n("p2", Enter, b)]),
            (12, vec![n("p1", Eligible, key)]),
            (20, vec![n("p1", Exit, f)]),
            (25, vec![n("p2", Exit, b), n("p2", Enter, t)]),
            (30, vec![n("p1", Ineligible, key), n("p2", Exit, t)]),
        ]
    }

    fn open(hunt: &Hunt, resumed: Resumed) -> (Derived, [Captured; 2]) {
        let files = [Captured::default(), Captured::default()];
        let outs: [Box<dyn Write + Send>; 2] =
            [Box::new(files[0].clone()), Box::new(files[1].clone())];
        let known = |reward: bool, id: &str| {
            if reward {
                hunt.reward_number(id).is_some()
            } else {
                hunt.zone_number(id).is_some()
            }
        };
        let d = Derived::resume(Path::new("d"), outs, resumed, &known).unwrap();
        (d, files)
    }

    #[test]
    fn a_resumed_file_re_creates_what_it_held_and_writes_only_the_rest() {
        let hunt = hunt();
        // Straight through, with a snapshot at frontier 21.
        let (mut d, whole) = open(&hunt, Resumed::default());
        let mut snapshot = None;
        for (t, ns) in story(&hunt) {
            if t >= 21 && snapshot.is_none() {
                snapshot = Some((
                    d.open_intervals(),
                    [whole[0].lines().len(), whole[1].lines().len()],
                ));
            }
            d.observe(t, &ns).unwrap();
        }
        let (open_at_21, marks) = snapshot.unwrap();
        assert_eq!(
            open_at_21,
            vec![
                OpenInterval {
                    player: "p1".into(),
                    zone: None,
                    reward: Some("golden-key".into()),
                    from: 12
                },
                OpenInterval {
                    player: "p2".into(),
                    zone: Some("bridge".into()),
                    reward: None,
                    from: 10
                },
            ]
        );
        let presence = whole[0].lines();
        assert_eq!(
            presence,
            vec![
                r#"{"player":"p1","zone":"fountain","from":10,"until":20}"#,
                r#"{"player":"p2","zone":"bridge","from":10,"until":25}"#,
                r#"{"player":"p2","zone":"tower","from":25,"until":30}"#,
            ]
        );
        assert_eq!(marks, [1, 0]);

        // Restarted from that snapshot after the crash had left one more
        // presence line in the file: the state re-derived below 21 is
        // ignored, the held line re-created, and only the rest written.
        let held = [vec![presence[1].as_bytes().to_vec()], Vec::new()];
        let resumed = Resumed {
            marks: [None, None],
            held,
            open: open_at_21.clone(),
        };
        let (d, rest) = open(&hunt, resumed);
        let d = Arc::new(Mutex::new(d));
        let mut chain = Chain::new(Box::new(Nowhere), 21).tap(Box::new(DerivedTap(d.clone())));
        chain
            .write_time(20, &[n("p9", PlayerKind::Enter, "bridge")])
            .unwrap();
        for (t, ns) in story(&hunt).into_iter().filter(|(t, _)| *t >= 21) {
            chain.write_time(t, &ns).unwrap();
        }
        assert_eq!(rest[0].lines(), presence[2..].to_vec());
        assert_eq!(rest[1].lines(), whole[1].lines());
        assert!(d.lock().unwrap().open_intervals().is_empty());

        // A held line the job does not re-create is an error.
        let resumed = Resumed {
            marks: [None, None],
            held: [vec![b"{\"player\":\"zz\"}".to_vec()], Vec::new()],
            open: open_at_21,
        };
        let (mut d, _) = open(&hunt, resumed);
        let err = d.observe(25, &story(&hunt)[3].1).unwrap_err();
        assert!(err.to_string().contains("another job"), "{err}");
    }

    #[test]
    fn an_open_interval_of_an_unknown_item_is_refused() {
        let resumed = Resumed {
            open: vec![OpenInterval {
                player: "p1".into(),
                zone: Some("atlantis".into()),
                reward: None,
                from: 1,
            }],
            ..Resumed::default()
        };
        let outs: [Box<dyn Write + Send>; 2] =
            [Box::new(Captured::default()), Box::new(Captured::default())];
        let hunt = hunt();
        let known = |_: bool, id: &str| hunt.zone_number(id).is_some();
        let err = Derived::resume(Path::new("d"), outs, resumed, &known)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("atlantis"), "{err}");
    }
}
