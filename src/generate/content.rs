//! The content of good events: players walking the hunt's area (random walk with jumps into
//! zones), their actions on known and unknown clues and rewards, sensor readings around the
//! hunt's condition bounds, and the optional fields events carry now and then.

use std::f64::consts::TAU;
use std::io::Write;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geom::{round_to, sin_cos};
use super::line::{Body, Ev, Opt, Target, EXTRAS};
use super::sim::Sim;

/// Verbs without an effect.
const OTHER_VERBS: [&str; 4] = ["wave", "photo", "hint", "trade"];

pub(super) struct Player {
    pub x: f64,
    pub y: f64,
    pub hx: f64,
    pub hy: f64,
    pub speed: f64,
    pub last_move: Option<u64>,
    pub home: u32,
}

impl<W: Write> Sim<'_, W> {
    /// A good event of `player` at `ts` for partition `part` (a position if `position`).
    pub(super) fn event(&mut self, part: usize, player: usize, ts: u64, position: bool) -> Ev {
        let n = self.next_n(part);
        let roll: f64 = self.rng.random();
        let body = if position || roll < self.opts.position_share {
            self.position(player, ts)
        } else if self.rng.random_bool(0.5) {
            self.action(player)
        } else {
            self.sensor()
        };
        let ttl = if self.chance(self.opts.short_ttl_rate) {
            Opt::Val(self.rng.random_range(1..=3_000))
        } else {
            match self.rng.random_range(0..100) {
                0..=2 => Opt::Val(self.rng.random_range(5_000..=120_000)),
                3..=4 => Opt::Null,
                _ => Opt::Absent,
            }
        };
        let priority = match self.rng.random_range(0..100) {
            0..=9 => Opt::Val(self.rng.random_range(0..=9)),
            10..=11 => Opt::Null,
            _ => Opt::Absent,
        };
        let extra = self
            .chance(0.03)
            .then(|| self.rng.random_range(0..EXTRAS.len()));
        let long_id = self.chance(0.001);
        Ev {
            part: part as u32,
            n,
            long_id,
            player,
            ts,
            ttl,
            priority,
            body,
            extra,
        }
    }

    fn position(&mut self, player: usize, ts: u64) -> Body {
        let Sim {
            rng,
            players,
            world,
            max_acc,
            ..
        } = self;
        let frame = &world.frame;
        let pl = &mut players[player];
        let dt = pl
            .last_move
            .map_or(0.0, |t| ts.saturating_sub(t) as f64 / 1000.0)
            .min(600.0);
        pl.last_move = Some(ts);
        let roll: f64 = rng.random();
        if roll < 0.02 && !world.spots.is_empty() {
            // Jump into (or near) a zone; landing at a centre may hit a polygon's hole.
            let z = &world.spots[rng.random_range(0..world.spots.len())];
            let (s, c) = sin_cos(rng.random_range(0.0..TAU));
            let r = z.radius_m * rng.random_range(0.0..1.3);
            (pl.x, pl.y) = (
                frame.reflect_x(z.x + r * c).0,
                frame.reflect_y(z.y + r * s).0,
            );
        } else if roll < 0.03 {
            pl.x = rng.random_range(-frame.half_x..=frame.half_x);
            pl.y = rng.random_range(-frame.half_y..=frame.half_y);
        } else {
            let (s, c) = sin_cos(rng.random_range(-0.7..0.7));
            let (hx, hy) = (pl.hx * c - pl.hy * s, pl.hx * s + pl.hy * c);
            let norm = (hx * hx + hy * hy).sqrt();
            (pl.hx, pl.hy) = (hx / norm, hy / norm);
            let dist = pl.speed * dt + rng.random_range(0.0..6.0);
            let (x, fx) = frame.reflect_x(pl.x + pl.hx * dist);
            let (y, fy) = frame.reflect_y(pl.y + pl.hy * dist);
            (pl.x, pl.y) = (x, y);
            if fx {
                pl.hx = -pl.hx;
            }
            if fy {
                pl.hy = -pl.hy;
            }
        }
        let (mut lat, mut lon) = frame.lat_lon(pl.x, pl.y);
        if !world.vertices.is_empty() && rng.random_bool(0.005) {
            // Exactly on a polygon vertex: on the boundary, which counts as inside.
            (lat, lon) = world.vertices[rng.random_range(0..world.vertices.len())];
        }
        let cap = max_acc.unwrap_or(100.0);
        let acc = match rng.random_range(0..100) {
            0..=54 => Opt::Val(round_to(rng.random_range(0.0..=cap), 0.1).min(cap)),
            55..=56 => Opt::Val(cap),
            57..=59 => Opt::Null,
            _ => Opt::Absent,
        };
        Body::Position { lat, lon, acc }
    }

    fn action(&mut self, player: usize) -> Body {
        let names = &self.names;
        let rng = &mut self.rng;
        let roll: f64 = rng.random();
        let pick = |rng: &mut ChaCha8Rng, known: usize, all: usize| {
            if known > 0 && rng.random_bool(0.85) {
                rng.random_range(0..known)
            } else {
                rng.random_range(known..all)
            }
        };
        if roll < 0.5 {
            let c = pick(rng, names.known_clues, names.clues.len());
            Body::Action {
                verb: "solve",
                target: Target::Clue(c),
            }
        } else if roll < 0.75 {
            let r = pick(rng, names.known_rewards, names.rewards.len());
            Body::Action {
                verb: "claim",
                target: Target::Reward(r),
            }
        } else {
            let verb = OTHER_VERBS[rng.random_range(0..OTHER_VERBS.len())];
            let target = if rng.random_bool(0.5) {
                Target::Player((player + 1) % names.players.len())
            } else {
                Target::Word("hello")
            };
            Body::Action { verb, target }
        }
    }

    fn sensor(&mut self) -> Body {
        let known = self.names.known_sensors;
        if known > 0 && self.rng.random_bool(0.9) {
            let s = self.rng.random_range(0..known);
            let (lo, hi) = self.world.sensor_ranges[s];
            let value = if self.rng.random_bool(0.05) {
                if self.rng.random_bool(0.5) {
                    lo
                } else {
                    hi
                }
            } else {
                round_to(self.rng.random_range(lo - 15.0..=hi + 15.0), 0.5)
            };
            Body::Sensor { sensor: s, value }
        } else {
            let s = self.rng.random_range(known..self.names.sensors.len());
            Body::Sensor {
                sensor: s,
                value: round_to(self.rng.random_range(-100.0..0.0), 0.5),
            }
        }
    }
}
