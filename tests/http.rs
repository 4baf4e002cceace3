//! The analysts' API over real HTTP: a `huntflow backfill --serve` process
//! and an HTTP client. Answers are checked against the reference
//! model's state, subscriptions against the notification file, metrics
//! against the summary.

mod common;

use common::http::{get, json, serve, serve_paced, serve_with, Served, SseEvent};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A subscription read until `want` notifications came, resuming after
/// `last_id`.
fn subscribe(addr: &str, path: &str, last_id: Option<&str>, want: usize) -> Vec<SseEvent> {
    let headers: Vec<(&str, &str)> = last_id
        .map(|id| ("Last-Event-ID", id))
        .into_iter()
        .collect();
    common::http::subscribe(addr, path, &headers, want)
}

/// The reference model's final state, from its notifications.
struct Expected {
    presence: BTreeMap<String, BTreeSet<String>>,
    eligible: BTreeMap<String, BTreeSet<String>>,
    occupancy: BTreeMap<String, i64>,
    last_time: u64,
}

/// The reference model's output for what the server was given.
fn reference_output(served: &Served) -> common::reference::RefOutput {
    let hunt = huntflow::model::hunt::Hunt::load(&served.hunt).unwrap();
    let parts: Vec<Vec<u8>> = served
        .inputs
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    common::reference::reference(&hunt, &parts)
}

fn expected(served: &Served, as_of: u64) -> Expected {
    let r = reference_output(served);
    let mut e = Expected {
        presence: BTreeMap::new(),
        eligible: BTreeMap::new(),
        occupancy: BTreeMap::new(),
        last_time: 0,
    };
    for line in r.notifications.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["time"].as_u64().unwrap() > as_of {
            break;
        }
        e.last_time = v["time"].as_u64().unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        match v["kind"].as_str().unwrap() {
            "enter" => drop(e.presence.entry(s("player")).or_default().insert(s("zone"))),
            "exit" => drop(
                e.presence
                    .entry(s("player"))
                    .or_default()
                    .remove(&s("zone")),
            ),
            "eligible" => drop(
                e.eligible
                    .entry(s("player"))
                    .or_default()
                    .insert(s("reward")),
            ),
            "ineligible" => drop(
                e.eligible
                    .entry(s("player"))
                    .or_default()
                    .remove(&s("reward")),
            ),
            "occupancy" => drop(e.occupancy.insert(s("zone"), v["count"].as_i64().unwrap())),
            _ => {}
        }
    }
    e
}

/// Per player, its notifications in the reference model's output:
/// `(time, kind, zone or reward)`.
type PlayerNotes = BTreeMap<String, Vec<(u64, String, String)>>;

fn player_notes(served: &Served) -> PlayerNotes {
    let mut out = PlayerNotes::new();
    for line in reference_output(served).notifications.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(player) = v["player"].as_str() else {
            continue;
        };
        let item = v["zone"].as_str().or(v["reward"].as_str()).unwrap();
        out.entry(player.to_string()).or_default().push((
            v["time"].as_u64().unwrap(),
            v["kind"].as_str().unwrap().to_string(),
            item.to_string(),
        ));
    }
    out
}

/// The zones `player` is in and the rewards it is eligible for at `as_of`.
fn player_at(
    notes: &PlayerNotes,
    player: &str,
    as_of: u64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut zones, mut eligible) = (BTreeSet::new(), BTreeSet::new());
    for (_, kind, item) in notes
        .get(player)
        .into_iter()
        .flatten()
        .take_while(|(t, _, _)| *t <= as_of)
    {
        let item = item.clone();
        match kind.as_str() {
            "enter" => drop(zones.insert(item)),
            "exit" => drop(zones.remove(&item)),
            "eligible" => drop(eligible.insert(item)),
            "ineligible" => drop(eligible.remove(&item)),
            _ => {}
        }
    }
    (zones, eligible)
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The first `lines` records of the demo's first partition.
fn demo_head(lines: usize) -> Vec<u8> {
    let demo = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/demo/part-000.jsonl"),
    )
    .unwrap();
    demo.split_inclusive(|&b| b == b'\n')
        .take(lines)
        .flatten()
        .copied()
        .collect()
}

#[test]
fn point_queries_equal_the_reference_state_at_as_of() {
    let work = common::Scratch::new("http-queries");
    // A live partition: the first 6000 records of the demo, the input left
    // open, so the latest times stay incomplete and state remains.
    let fed = demo_head(6000);
    let served = serve_with(&work.path, &[], Some(fed));
    let addr = &served.addr;
    // Wait until the answers stop moving: everything fed is processed.
    let mut as_of = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let (status, health) = json(addr, "/healthz");
        assert_eq!(status, 200);
        assert_eq!(health["complete"], false);
        let now = health["as_of"].as_u64();
        if now.is_some() && now == as_of {
            break;
        }
        as_of = now;
        assert!(Instant::now() < deadline, "as_of does not settle");
    }
    let as_of = as_of.unwrap();
    // The input is idle but open: every time below the partition frontier
    // is complete, and the answers have got there.
    let (_, metrics) = common::http::get(addr, "/metrics", &[]);
    let metrics = String::from_utf8(metrics).unwrap();
    let frontier: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("huntflow_partition_frontier{partition=\"0\"} "))
        .expect("partition frontier metric")
        .parse()
        .unwrap();
    assert_eq!(as_of + 1, frontier, "the answers lag the idle input");
    let want = expected(&served, as_of);

    let (_, zones) = json(addr, "/v1/zones");
    assert_eq!(zones["as_of"], as_of);
    let mut busy = 0;
    for z in zones["zones"].as_array().unwrap() {
        let id = z["zone"].as_str().unwrap();
        let count = want.occupancy.get(id).copied().unwrap_or(0);
        assert_eq!(z["occupancy"], count, "occupancy of {id}");
        let (status, zone) = json(addr, &format!("/v1/zones/{id}"));
        assert_eq!(status, 200);
        let players = strings(&zone["players"]);
        let inside: BTreeSet<String> = want
            .presence
            .iter()
            .filter(|(_, zs)| zs.contains(id))
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(players, inside, "players in {id}");
        assert_eq!(players.len() as i64, count);
        busy += count;
    }
    assert!(busy > 10, "state at the end is too thin to test: {busy}");

    let hunt = huntflow::model::hunt::Hunt::load(&served.hunt).unwrap();
    for r in &hunt.rewards {
        let (_, reward) = json(addr, &format!("/v1/rewards/{}", r.id));
        let got = strings(&reward["eligible"]);
        let expect: BTreeSet<String> = want
            .eligible
            .iter()
            .filter(|(_, rs)| rs.contains(&r.id))
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(got, expect, "eligible for {}", r.id);
    }

    // A player's answer is at its own complete time, which its worker may
    // have reached before the notification sink (never before `as_of`).
    let notes = player_notes(&served);
    for player in want.presence.keys().take(40) {
        let (status, p) = json(addr, &format!("/v1/players/{player}"));
        assert_eq!(status, 200);
        let at = p["as_of"].as_u64().unwrap();
        assert!(at >= as_of, "{player} answered at {at}, before {as_of}");
        let (zones_in, elig) = player_at(&notes, player, at);
        assert_eq!(strings(&p["zones"]), zones_in, "zones of {player} at {at}");
        assert_eq!(
            strings(&p["eligible"]),
            elig,
            "eligible of {player} at {at}"
        );
        assert!(zones_in.is_empty() || p["position"].is_object());
        // The explanation agrees with the answer.
        for r in &hunt.rewards {
            let (_, why) = json(addr, &format!("/v1/players/{player}/why/{}", r.id));
            let all = why["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["holds"] == true);
            assert_eq!(why["eligible"], elig.contains(&r.id));
            assert_eq!(all, elig.contains(&r.id), "why {player} {}: {why}", r.id);
        }
    }

    for path in [
        "/v1/players/nobody",
        "/v1/zones/nowhere",
        "/v1/rewards/nothing",
        "/v1/players/nobody/why/golden-key",
        "/v1/nope",
    ] {
        let (status, body) = json(addr, path);
        assert_eq!(status, 404, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    for (path, headers) in [
        ("/v1/subscribe?kind=bogus", vec![]),
        ("/v1/subscribe?zone=nowhere", vec![]),
        ("/v1/subscribe?colour=red", vec![]),
        ("/v1/subscribe", vec![("Last-Event-ID", "yesterday")]),
    ] {
        let (status, body) = get(addr, path, &headers);
        assert_eq!(status, 400, "{path}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].is_string());
    }
}

#[test]
fn player_answers_while_ingesting_are_exact_at_their_own_as_of() {
    let work = common::Scratch::new("http-live-players");
    let fed = demo_head(12_000);
    let served = serve_paced(&work.path, &[], Some(fed), Duration::from_millis(40));
    let players: Vec<String> = (0..40).map(|i| format!("p{}", i * 3)).collect();
    // Ask while the input arrives (60 chunks, 40 ms apart).
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < deadline {
        let player = &players[i % players.len()];
        i += 1;
        let (status, a) = json(&served.addr, &format!("/v1/players/{player}"));
        if status == 200 {
            answers.push((player.clone(), a));
        }
    }
    let times: BTreeSet<u64> = answers
        .iter()
        .map(|(_, a)| a["as_of"].as_u64().unwrap())
        .collect();
    assert!(answers.len() > 100, "{} answers", answers.len());
    assert!(
        times.len() > 10,
        "as_of moved through {} times",
        times.len()
    );

    let notes = player_notes(&served);
    for (player, a) in &answers {
        let as_of = a["as_of"].as_u64().unwrap();
        let (zones, eligible) = player_at(&notes, player, as_of);
        assert_eq!(strings(&a["zones"]), zones, "zones of {player} at {as_of}");
        assert_eq!(
            strings(&a["eligible"]),
            eligible,
            "eligible of {player} at {as_of}"
        );
    }
}

#[test]
fn a_subscriber_resumes_with_last_event_id_and_misses_nothing() {
    let work = common::Scratch::new("http-sse");
    let served = serve(&work.path, &[]);
    let all: Vec<String> = std::fs::read_to_string(&served.output)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(all.len() > 5000);

    let first = subscribe(&served.addr, "/v1/subscribe", None, 3000);
    let first: Vec<_> = first
        .into_iter()
        .filter(|e| e.1 == "notification")
        .take(3000)
        .collect();
    let last_id = first.last().unwrap().0.clone();
    let rest = subscribe(
        &served.addr,
        "/v1/subscribe",
        Some(&last_id),
        all.len() - first.len(),
    );
    let mut got: Vec<String> = first.iter().map(|e| e.2.clone()).collect();
    got.extend(
        rest.iter()
            .filter(|e| e.1 == "notification")
            .map(|e| e.2.clone()),
    );
    assert_eq!(got.len(), all.len(), "resumed stream length");
    assert!(
        got == all,
        "the resumed stream differs from the output file"
    );
    // Ids order the stream.
    let ids: Vec<(u64, u64)> = rest
        .iter()
        .map(|e| {
            let (t, i) = e.0.split_once('-').unwrap();
            (t.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Filters.
    let enters = subscribe(
        &served.addr,
        "/v1/subscribe?kind=enter&zone=fountain",
        None,
        5,
    );
    assert!(enters
        .iter()
        .filter(|e| e.1 == "notification")
        .all(|e| e.2.contains("\"kind\":\"enter\"") && e.2.contains("\"zone\":\"fountain\"")));
}

#[test]
fn beyond_the_retention_window_the_server_says_so() {
    let work = common::Scratch::new("http-retain");
    let served = serve(&work.path, &["--retain", "100"]);
    let events = subscribe(&served.addr, "/v1/subscribe", Some("0-1"), 1);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, "error");
    assert!(events[0].2.contains("no longer retained"));
}

#[test]
fn metrics_parse_and_match_the_summary() {
    let work = common::Scratch::new("http-metrics");
    let served = serve(&work.path, &[]);
    json(&served.addr, "/v1/zones");
    let (status, body) = get(&served.addr, "/metrics", &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let mut samples: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"))
        };
        if let Some((metric, labels)) = name.split_once('{') {
            assert!(labels.ends_with('}'), "{line:?}");
            assert!(metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
        samples.insert(name.to_string(), value);
    }
    let s = &served.summary;
    assert_eq!(
        samples["huntflow_records_read_total"],
        s["read"].as_f64().unwrap()
    );
    assert_eq!(
        samples["huntflow_records_accepted_total"],
        s["accepted"].as_f64().unwrap()
    );
    for (reason, n) in s["rejected"].as_object().unwrap() {
        let key = format!("huntflow_records_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(samples[&key], n.as_f64().unwrap(), "{reason}");
    }
    let output = std::fs::read_to_string(&served.output).unwrap();
    for kind in ["enter", "exit", "eligible", "ineligible", "occupancy"] {
        let n = output
            .lines()
            .filter(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
            .count();
        let key = format!("huntflow_notifications_total{{kind=\"{kind}\"}}");
        assert_eq!(samples[&key], n as f64, "{kind}");
    }
    assert!(samples["huntflow_completion_latency_seconds_count"] > 0.0);
    assert!(samples["huntflow_state_players"] > 0.0);
    assert!(samples["huntflow_arrangement_records"] >= 0.0);
    assert!(samples
        .keys()
        .any(|k| k.starts_with("huntflow_http_request_duration_seconds_bucket")));
}

#[test]
fn derived_intervals_pair_every_enter_with_its_exit() {
    let work = common::Scratch::new("derived");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = work.join("out.jsonl");
    let dir = work.join("derived");
    let status = Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .arg("backfill")
        .arg("--hunt")
        .arg(root.join("dataflows/demo/hunt.toml"))
        .arg("--output")
        .arg(&out)
        .arg("--derived")
        .arg(&dir)
        .arg(root.join("datasets/demo/part-000.jsonl"))
        .arg(root.join("datasets/demo/part-001.jsonl"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let notes: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (file, field, open_kind, close_kind) in [
        ("presence.jsonl", "zone", "enter", "exit"),
        ("eligibility.jsonl", "reward", "eligible", "ineligible"),
    ] {
        // Expected intervals, from the notifications.
        let mut open: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut want: Vec<(String, String, u64, Option<u64>)> = Vec::new();
        for n in &notes {
            let key = || {
                (
                    n["player"].as_str().unwrap().to_string(),
                    n[field].as_str().unwrap().to_string(),
                )
            };
            let t = n["time"].as_u64().unwrap();
            if n["kind"] == open_kind {
                open.insert(key(), t);
            } else if n["kind"] == close_kind {
                let (p, i) = key();
                let from = open.remove(&(p.clone(), i.clone())).unwrap();
                want.push((p, i, from, Some(t)));
            }
        }
        want.extend(open.into_iter().map(|((p, i), from)| (p, i, from, None)));
        let got: Vec<(String, String, u64, Option<u64>)> = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["player"].as_str().unwrap().to_string(),
                    v[field].as_str().unwrap().to_string(),
                    v["from"].as_u64().unwrap(),
                    v["until"].as_u64(),
                )
            })
            .collect();
        assert!(got.len() > 500, "{file}: {}", got.len());
        assert_eq!(got, want, "{file}");
    }
}
