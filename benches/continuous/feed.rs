//! The latency phase's input: a lateness-0 hunt and a paced feed of
//! position events in which every event moves its player into or out of a
//! zone, so that each event causes exactly one `enter` or `exit`
//! notification, identified by `(player, time)`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use huntflow::kafka::producer::Producer;

/// Zone centres 500 m apart on a grid of 10 columns, each zone a 50 m
/// circle; a player's "outside" point lies 250 m north of its zone's
/// centre, between the rows, in no zone.
const LAT0: f64 = 48.80;
const LON0: f64 = 2.30;
const DLAT: f64 = 0.0045;
const DLON: f64 = 0.0068;

fn centre(zone: u32) -> (f64, f64) {
    (
        LAT0 + f64::from(zone / 10) * DLAT,
        LON0 + f64::from(zone % 10) * DLON,
    )
}

/// Writes `dir/hunt.toml`: `zones` circle zones, `max_lateness_ms = 0`, no
/// rewards.
pub fn write_hunt(dir: &Path, zones: u32) -> PathBuf {
    std::fs::create_dir_all(dir).expect("hunt dir");
    let mut toml = String::from("name = \"latency\"\nmax_lateness_ms = 0\n");
    for z in 0..zones {
        let (lat, lon) = centre(z);
        write!(
            toml,
            "\n[[zones]]\nid = \"z{z:03}\"\ncircle = {{ lat = {lat:.6}, lon = {lon:.6}, radius_m = 50.0 }}\n"
        )
        .expect("format");
    }
    let path = dir.join("hunt.toml");
    std::fs::write(&path, toml).expect("write hunt");
    path
}

/// The players and where they stand.
pub struct Players {
    count: u32,
    /// Per player: its `"lat":…,"lon":…` inside its zone, then outside.
    spots: Vec<[String; 2]>,
}

impl Players {
    pub fn new(count: u32, zones: u32) -> Players {
        let spots = (0..count)
            .map(|p| {
                let (lat, lon) = centre(p % zones);
                [
                    format!("\"lat\":{lat:.6},\"lon\":{lon:.6}"),
                    format!("\"lat\":{:.6},\"lon\":{lon:.6}", lat + DLAT / 2.0),
                ]
            })
            .collect();
        Players { count, spots }
    }

    /// The player of event `n`: players take turns.
    pub fn of(&self, n: u64) -> u32 {
        (n % u64::from(self.count)) as u32
    }
}

/// What was sent: event `n` had `ts[n]` and was handed to the producer at
/// `at[n]`.
pub struct Sent {
    pub ts: Vec<u64>,
    pub at: Vec<Instant>,
    /// When the first and the last event were sent.
    pub began: Instant,
    pub ended: Instant,
}

impl Sent {
    /// The largest ts sent at or before `when` (None before the first).
    pub fn ts_sent_by(&self, when: Instant) -> Option<u64> {
        let i = self.at.partition_point(|&a| a <= when);
        i.checked_sub(1).map(|i| self.ts[i])
    }
}

/// Sends `rate` events/s for `duration` into `topic` (`partitions`
/// partitions, player `p` into partition `p mod partitions`, keyed by the
/// player). Event time is wall time: `ts` = `base_ts` + ms since the start,
/// never the same ts twice for a player. Each player's events alternate
/// inside its zone (an `enter`) and outside (an `exit`). Ends with one
/// event per partition one ms after the last, outside every zone, so that
/// every time sent completes; then flushes.
pub fn send(
    producer: &Producer,
    topic: &str,
    partitions: u32,
    players: &Players,
    rate: u64,
    duration: Duration,
    base_ts: u64,
) -> Sent {
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let mut sent = Sent {
        ts: Vec::with_capacity(total as usize),
        at: Vec::with_capacity(total as usize),
        began: Instant::now(),
        ended: Instant::now(),
    };
    let mut line = String::with_capacity(160);
    let start = Instant::now();
    let mut ts = base_ts;
    // Events sent at `ts` so far: a player's next turn must not share it.
    let mut at_ts = 0u64;
    let mut n = 0u64;
    while n < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        if n >= due {
            let next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            continue;
        }
        while n < due {
            let wall = base_ts + start.elapsed().as_millis() as u64;
            if wall > ts {
                ts = wall;
                at_ts = 0;
            } else if at_ts >= u64::from(players.count) {
                ts += 1;
                at_ts = 0;
            }
            let p = players.of(n);
            let turn = (n / u64::from(players.count)) % 2;
            line.clear();
            write!(
                line,
                "{{\"id\":\"e{n}\",\"type\":\"position\",\"player\":\"p{p}\",\"ts\":{ts},{}}}",
                players.spots[p as usize][turn as usize]
            )
            .expect("format");
            let key = format!("p{p}");
            let at = Instant::now();
            producer
                .send(topic, p % partitions, Some(key.as_bytes()), line.as_bytes())
                .expect("send an event");
            if n == 0 {
                sent.began = at;
            }
            sent.ts.push(ts);
            sent.at.push(at);
            at_ts += 1;
            n += 1;
        }
    }
    sent.ended = Instant::now();
    for p in 0..partitions {
        let last = format!(
            "{{\"id\":\"last-{p}\",\"type\":\"position\",\"player\":\"last-{p}\",\"ts\":{},\"lat\":{:.6},\"lon\":{LON0:.6}}}",
            ts + 1,
            LAT0 - DLAT / 2.0
        );
        producer
            .send(topic, p, None, last.as_bytes())
            .expect("send the last event");
    }
    producer.flush().expect("flush the producer");
    sent
}

/// Parses a notification's `(kind, player, time)`.
#[derive(serde::Deserialize)]
pub struct Note<'a> {
    pub time: u64,
    #[serde(borrow)]
    pub kind: &'a str,
    #[serde(borrow, default)]
    pub player: Option<&'a str>,
}

/// A player notification read by the outside consumer.
pub struct Arrival {
    pub player: u32,
    pub time: u64,
    pub at: Instant,
}

/// What the outside consumer of the job's output saw.
#[derive(Default)]
pub struct Seen {
    pub players: Vec<Arrival>,
    /// `(T, arrival)` of each progress record, all output partitions.
    pub progress: Vec<(u64, Instant)>,
    pub occupancy: u64,
    /// Player notifications that are not `p<n>`, and records that are not
    /// notifications.
    pub strange: u64,
}

impl Seen {
    pub fn record(&mut self, payload: &[u8], at: Instant) {
        let Ok(note) = serde_json::from_slice::<Note>(payload) else {
            self.strange += 1;
            return;
        };
        match (note.kind, note.player) {
            ("progress", _) => self.progress.push((note.time, at)),
            ("occupancy", _) => self.occupancy += 1,
            (_, Some(p)) => match p.strip_prefix('p').and_then(|n| n.parse().ok()) {
                Some(player) => self.players.push(Arrival {
                    player,
                    time: note.time,
                    at,
                }),
                None => self.strange += 1,
            },
            _ => self.strange += 1,
        }
    }
}

/// Per event, the latency of its notification (None: none arrived), and
/// the number of player notifications that match no event.
pub fn match_job(sent: &Sent, players: &Players, seen: &Seen) -> (Vec<Option<Duration>>, u64) {
    let mut by_key: rustc_hash::FxHashMap<(u32, u64), usize> = Default::default();
    by_key.reserve(sent.ts.len());
    for (n, &ts) in sent.ts.iter().enumerate() {
        by_key.insert((players.of(n as u64), ts), n);
    }
    let mut latency = vec![None; sent.ts.len()];
    let mut unmatched = 0;
    for a in &seen.players {
        match by_key.get(&(a.player, a.time)) {
            Some(&n) if latency[n].is_none() => {
                latency[n] = Some(a.at.saturating_duration_since(sent.at[n]));
            }
            _ => unmatched += 1,
        }
    }
    (latency, unmatched)
}

/// The event number of a record the bench sent (`"id":"e<n>"`).
pub fn event_number(payload: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: &'a str,
    }
    serde_json::from_slice::<Id>(payload)
        .ok()?
        .id
        .strip_prefix('e')?
        .parse()
        .ok()
}
