//! The event simulation behind the generator: players walking the hunt's area, the per-partition
//! streams (local disorder, late events, redeliveries, bad lines) and their emission to sinks
//! in a bounded amount of memory.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::TAU;
use std::io::{self, Write};
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::bad::{render_bad, BadKind};
use super::content::Player;
use super::geom::sin_cos;
use super::hunt_text::max_accuracy;
use super::line::{render, Ev, Names};
use super::model::rate;
use super::world::World;
use super::{GenerateOptions, GenerateStats};
use crate::model::event::Reason;

/// Share of a player's events that go to a partition other than the player's own.
const STRAY_RATE: f64 = 0.005;
/// How many recent lines per partition a redelivery may copy.
const RECENT: usize = 32;

enum Item {
    /// A good event, rendered.
    Line {
        bytes: Rc<[u8]>,
        ts: u64,
    },
    /// A copy of an earlier line of the same partition.
    Dup {
        bytes: Rc<[u8]>,
        ts: u64,
    },
    /// An event whose `ts` is set below the partition's lateness bound when it is written.
    Late(Box<Ev>),
    Bad {
        bytes: Vec<u8>,
        kind: BadKind,
    },
}

/// A queued line: written in `(emit, seq)` order.
struct Queued {
    emit: u64,
    seq: u64,
    item: Item,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.emit, self.seq) == (other.emit, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    // Reversed: BinaryHeap is a max-heap and the smallest (emit, seq) goes first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.emit, other.seq).cmp(&(self.emit, self.seq))
    }
}

struct Part<W> {
    out: W,
    queue: BinaryHeap<Queued>,
    next_n: u64,
    /// Largest ts among the lines written so far that the engine accepts.
    max_ts: Option<u64>,
    /// Recently generated good lines: `(emit, ts, bytes)`.
    recent: VecDeque<(u64, u64, Rc<[u8]>)>,
}

#[derive(PartialEq, Eq)]
enum Cat {
    Normal,
    Late,
    Dup,
    Bad,
}

pub(super) struct Sim<'m, W> {
    pub(super) opts: GenerateOptions,
    pub(super) world: &'m World,
    pub(super) names: Names,
    pub(super) rng: ChaCha8Rng,
    pub(super) players: Vec<Player>,
    parts: Vec<Part<W>>,
    stats: GenerateStats,
    pub(super) max_acc: Option<f64>,
    mean_gap_ms: f64,
    clock_ms: f64,
    prev: Option<(usize, u64)>,
    seq: u64,
    scratch: Vec<u8>,
}

fn rate01(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// FNV-1a, so a player's partition depends on its id only (like a keyed Kafka producer).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl<'m, W: Write> Sim<'m, W> {
    pub fn new(opts: &GenerateOptions, world: &'m World, sinks: Vec<W>) -> Self {
        let mut opts = opts.clone();
        for r in [
            &mut opts.position_share,
            &mut opts.late_rate,
            &mut opts.duplicate_rate,
            &mut opts.malformed_rate,
            &mut opts.equal_ts_rate,
            &mut opts.short_ttl_rate,
        ] {
            *r = rate01(*r);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15);
        let names = Names::new(world, opts.players.max(1) as usize);
        let n_parts = sinks.len() as u64;
        let (half_x, half_y) = (world.frame.half_x, world.frame.half_y);
        let players = names
            .players
            .iter()
            .map(|name| {
                let (x, y) = match world.spots.len() {
                    n if n > 0 && rng.random_bool(0.5) => {
                        let z = &world.spots[rng.random_range(0..n)];
                        (z.x, z.y)
                    }
                    _ => (
                        rng.random_range(-half_x..=half_x),
                        rng.random_range(-half_y..=half_y),
                    ),
                };
                let (hy, hx) = sin_cos(rng.random_range(0.0..TAU));
                let speed = rng.random_range(0.8..12.0);
                Player {
                    x,
                    y,
                    hx,
                    hy,
                    speed,
                    last_move: None,
                    home: (fnv1a(name) % n_parts) as u32,
                }
            })
            .collect();
        let parts = sinks
            .into_iter()
            .map(|out| Part {
                out,
                queue: BinaryHeap::new(),
                next_n: 0,
                max_ts: None,
                recent: VecDeque::with_capacity(RECENT),
            })
            .collect();
        Sim {
            max_acc: max_accuracy(&opts),
            mean_gap_ms: 1000.0 / rate(&opts),
            opts,
            world,
            names,
            rng,
            players,
            parts,
            stats: GenerateStats::default(),
            clock_ms: 0.0,
            prev: None,
            seq: 0,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Generates `opts.events` lines, calling `progress` with the count done now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(u64)) -> io::Result<(Vec<W>, GenerateStats)> {
        for i in 0..self.opts.events {
            if i % 65_536 == 0 && i > 0 {
                progress(i);
            }
            self.step()?;
        }
        for p in 0..self.parts.len() {
            while let Some(q) = self.parts[p].queue.pop() {
                self.write(p, q.item)?;
            }
            self.parts[p].out.flush()?;
        }
        progress(self.opts.events);
        Ok((self.parts.into_iter().map(|p| p.out).collect(), self.stats))
    }

    /// The next event number of partition `p` (ids are `e{p}-{n}`).
    pub(super) fn next_n(&mut self, p: usize) -> u64 {
        let n = self.parts[p].next_n;
        self.parts[p].next_n += 1;
        n
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.rng.random::<f64>() < p
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(0..=self.opts.disorder_ms)
    }

    fn step(&mut self) -> io::Result<()> {
        let o = &self.opts;
        let (bad, late, dup) = (
            o.malformed_rate,
            o.malformed_rate + o.late_rate,
            o.malformed_rate + o.late_rate + o.duplicate_rate,
        );
        let r: f64 = self.rng.random();
        let mut cat = if r < bad {
            Cat::Bad
        } else if r < late {
            Cat::Late
        } else if r < dup {
            Cat::Dup
        } else {
            Cat::Normal
        };
        let equal = cat == Cat::Normal && self.chance(self.opts.equal_ts_rate);
        let (player, ts) = match (equal, self.prev) {
            (true, Some(prev)) => prev,
            _ => {
                self.clock_ms += self.rng.random::<f64>() * 2.0 * self.mean_gap_ms;
                let player = self.rng.random_range(0..self.players.len());
                (
                    player,
                    self.opts.start_ms.saturating_add(self.clock_ms as u64),
                )
            }
        };
        let part = if self.parts.len() > 1 && self.chance(STRAY_RATE) {
            self.rng.random_range(0..self.parts.len())
        } else {
            self.players[player].home as usize
        };
        if cat == Cat::Dup && self.parts[part].recent.is_empty() {
            cat = Cat::Normal;
        }
        if cat != Cat::Normal {
            // Equal timestamps only follow a good event directly, so every queued line keeps
            // emit >= its ts >= the ts of the lines already written.
            self.prev = None;
        }
        let (emit, item) = match cat {
            Cat::Normal => {
                self.prev = Some((player, ts));
                let ev = self.event(part, player, ts, false);
                self.scratch.clear();
                render(&ev, &self.names, None, &mut self.scratch);
                let bytes: Rc<[u8]> = Rc::from(&self.scratch[..]);
                let emit = ts.saturating_add(self.delay());
                let recent = &mut self.parts[part].recent;
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back((emit, ts, bytes.clone()));
                (emit, Item::Line { bytes, ts })
            }
            Cat::Late => (
                ts,
                Item::Late(Box::new(self.event(part, player, ts, false))),
            ),
            Cat::Dup => {
                let recent = &self.parts[part].recent;
                let i = if self.rng.random_bool(0.5) {
                    recent.len() - 1
                } else {
                    self.rng.random_range(0..recent.len())
                };
                let (orig_emit, orig_ts, bytes) = self.parts[part].recent[i].clone();
                (
                    ts.max(orig_emit).saturating_add(self.delay()),
                    Item::Dup { bytes, ts: orig_ts },
                )
            }
            Cat::Bad => {
                let kind = BadKind::pick(&mut self.rng, self.max_acc.is_some());
                let mut ev = self.event(part, player, ts, kind.needs_position());
                let mut bytes = Vec::with_capacity(256);
                render_bad(
                    kind,
                    &mut ev,
                    &self.names,
                    &mut self.rng,
                    self.max_acc,
                    &mut bytes,
                );
                (ts.saturating_add(self.delay()), Item::Bad { bytes, kind })
            }
        };
        self.seq += 1;
        self.parts[part].queue.push(Queued {
            emit,
            seq: self.seq,
            item,
        });
        // Everything queued later has emit >= ts, so lines up to ts can be written now.
        while self.parts[part].queue.peek().is_some_and(|q| q.emit <= ts) {
            if let Some(q) = self.parts[part].queue.pop() {
                self.write(part, q.item)?;
            }
        }
        Ok(())
    }

    /// Whether the engine finds `ts` late in partition `p` now (docs/spec.md §2).
    fn is_late(&self, p: usize, ts: u64) -> bool {
        self.parts[p]
            .max_ts
            .is_some_and(|m| ts.saturating_add(self.opts.max_lateness_ms) < m)
    }

    fn count(&mut self, reason: Reason) {
        *self.stats.rejected.entry(reason.as_str()).or_insert(0) += 1;
    }

    fn settle(&mut self, p: usize, ts: u64) {
        if self.is_late(p, ts) {
            self.count(Reason::Late);
        } else {
            self.stats.accepted += 1;
            let m = &mut self.parts[p].max_ts;
            *m = Some(m.map_or(ts, |m| m.max(ts)));
        }
    }

    fn write(&mut self, p: usize, item: Item) -> io::Result<()> {
        self.stats.lines += 1;
        match item {
            Item::Line { bytes, ts } => {
                self.put(p, &bytes)?;
                self.settle(p, ts);
            }
            Item::Dup { bytes, ts } => {
                self.put(p, &bytes)?;
                let reason = if self.is_late(p, ts) {
                    Reason::Late
                } else {
                    Reason::Duplicate
                };
                self.count(reason);
            }
            Item::Late(mut ev) => {
                let l = self.opts.max_lateness_ms;
                let fallback = match self.parts[p].max_ts {
                    Some(m) if m > l => {
                        let room = m - l - 1;
                        ev.ts = room - self.rng.random_range(0..=room.min(l.saturating_mul(3)));
                        false
                    }
                    // Nothing can be late yet: the event goes out on time.
                    _ => true,
                };
                let mut line = std::mem::take(&mut self.scratch);
                line.clear();
                render(&ev, &self.names, None, &mut line);
                self.put(p, &line)?;
                self.scratch = line;
                if fallback {
                    self.settle(p, ev.ts);
                } else {
                    self.count(Reason::Late);
                }
            }
            Item::Bad { bytes, kind } => {
                self.put(p, &bytes)?;
                self.count(kind.reason());
                *self.stats.bad_kinds.entry(kind.name()).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn put(&mut self, p: usize, bytes: &[u8]) -> io::Result<()> {
        let out = &mut self.parts[p].out;
        out.write_all(bytes)?;
        out.write_all(b"\n")
    }
}
