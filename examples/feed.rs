//! Drives the dataflow by hand: a few events of two players on the demo
//! hunt go in, and the notifications of each completed time come out in
//! the contract's order, formatted as the sinks write them.
//!
//! ```sh
//! cargo run --release --example feed
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use huntflow::dataflow::{self, Change, Config};
use huntflow::model::event::{Event, Fact};
use huntflow::model::hunt::Hunt;
use huntflow::model::versions::Versions;
use huntflow::output::format::format_notification;
use huntflow::output::order::notifications;
use timely::dataflow::operators::{Input, Inspect, Probe};

/// Changes by time, as the dataflow emits them.
type ByTime = BTreeMap<u64, Vec<(Change, isize)>>;

fn position(ts: u64, player: &str, lat: f64, lon: f64) -> Event {
    Event {
        ts,
        player: player.into(),
        fact: Fact::Position {
            id: format!("{player}-{ts}").into(),
            lat,
            lon,
            ttl: None,
        },
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo/hunt.toml");
    let versions = Versions::new(Hunt::load(&path)?).shared();

    let changes: Arc<Mutex<ByTime>> = Arc::default();
    let seen = changes.clone();
    let worker_versions = versions.clone();
    timely::execute_directly(move |worker| {
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, events) = scope.new_input();
            let config = Config::versions(worker_versions.clone());
            let built = dataflow::build(events, None, config);
            let probe = built
                .changes
                .inner
                .inspect(move |(c, t, d)| {
                    seen.lock()
                        .expect("lock")
                        .entry(*t)
                        .or_default()
                        .push((c.clone(), *d))
                })
                .probe()
                .0;
            (input, probe)
        });
        // Two players walk into the fountain and one walks out again; when
        // the input closes, every position expires.
        let (lat, lon) = (48.8530, 2.3499);
        for event in [
            position(1_000, "ana", lat, lon),
            position(1_000, "bo", lat + 0.0001, lon),
            position(5_000, "ana", lat + 0.01, lon),
        ] {
            input.send(event);
        }
        input.advance_to(10_000);
        while probe.less_than(&10_000) {
            worker.step();
        }
    });

    let mut out = Vec::new();
    let versions = versions.read().expect("versions");
    for (time, mut changes) in std::mem::take(&mut *changes.lock().expect("lock")) {
        for n in notifications(&versions, time, &mut changes) {
            format_notification(&mut out, time, &n);
        }
    }
    print!("{}", String::from_utf8(out)?);
    Ok(())
}
