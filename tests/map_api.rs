//! What the live map reads, over real HTTP: `/v1/positions` (changed since
//! a time, paged, removals), `/v1/hunt`, and the bearer token on every
//! endpoint.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::http::{json, json_with, request, serve_demo, serve_with, subscribe};

/// A position event; `ttl_ms` when given.
fn position(id: &str, player: &str, ts: u64, lat: f64, ttl: Option<u64>) -> String {
    let ttl = ttl.map(|t| format!(",\"ttl_ms\":{t}")).unwrap_or_default();
    format!(
        "{{\"id\":\"{id}\",\"type\":\"position\",\"player\":\"{player}\",\"ts\":{ts},\
         \"lat\":{lat},\"lon\":2.35{ttl}}}\n"
    )
}

/// Polls `/healthz` until `as_of` is `want`.
fn wait_as_of(addr: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(addr, "/healthz").1["as_of"] != want {
        assert!(Instant::now() < deadline, "as_of never reached {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every page of `/v1/positions?QUERY`, `limit` at a time: positions by
/// player, removals, and each page's `as_of`.
fn all_pages(
    addr: &str,
    query: &str,
    limit: usize,
) -> (BTreeMap<String, Value>, Vec<String>, Vec<Option<u64>>) {
    let (mut positions, mut removed, mut times) = (BTreeMap::new(), Vec::new(), Vec::new());
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/positions?limit={limit}{query}");
        if let Some(a) = &after {
            path += &format!("&after={a}");
        }
        let (status, page) = json(addr, &path);
        assert_eq!(status, 200, "{path}: {page}");
        times.push(page["as_of"].as_u64());
        let listed = page["positions"].as_array().unwrap();
        assert!(listed.len() <= limit);
        for p in listed {
            let id = p[0].as_str().unwrap().to_string();
            assert!(
                after.as_ref().is_none_or(|a| &id > a),
                "pages overlap at {id}"
            );
            positions.insert(id, p.clone());
        }
        removed.extend(
            page["removed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return (positions, removed, times),
        }
    }
}

fn ids(m: &BTreeMap<String, Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn positions_changed_since_a_time_with_removals_and_pages() {
    let work = common::Scratch::new("positions");
    // p3's position expires at 4000; p1 moves at 5000; p4 appears at 6000;
    // p9 at 20000 pushes the frontier to 15000 (L = 5000).
    let mut fed = String::new();
    fed += &position("a1", "p1", 1000, 48.851, None);
    fed += &position("a2", "p2", 1000, 48.852, None);
    fed += &position("a3", "p3", 1000, 48.853, Some(3000));
    fed += &position("b1", "p1", 5000, 48.8515, None);
    fed += &position("c4", "p4", 6000, 48.854, None);
    fed += &position("z9", "p9", 20_000, 48.859, None);
    let mut served = serve_with(&work.path, &[], Some(fed.into_bytes()));
    let addr = served.addr.clone();
    wait_as_of(&addr, 14_999);

    let (status, all) = json(&addr, "/v1/positions");
    assert_eq!(status, 200);
    assert_eq!(all["as_of"], 14_999);
    assert_eq!(all["next"], Value::Null);
    assert_eq!(all["removed"], serde_json::json!([]));
    assert_eq!(
        all["positions"],
        serde_json::json!([
            ["p1", 48.8515, 2.35, 5000],
            ["p2", 48.852, 2.35, 1000],
            ["p4", 48.854, 2.35, 6000]
        ])
    );
    let since = |t: u64| {
        let (_, v) = json(&addr, &format!("/v1/positions?since={t}"));
        let names = |k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    p.as_array()
                        .map_or(p, |a| &a[0])
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        (names("positions"), names("removed"))
    };
    assert_eq!(since(4500), (vec!["p1".into(), "p4".into()], vec![]));
    assert_eq!(
        since(3000),
        (vec!["p1".into(), "p4".into()], vec!["p3".to_string()])
    );
    assert_eq!(
        since(0),
        (
            vec!["p1".into(), "p2".into(), "p4".into()],
            vec!["p3".to_string()]
        )
    );
    assert_eq!(since(14_999), (vec![], vec![]));

    // Pages of one: each player once, in order, and together the whole.
    let (paged, removed, _) = all_pages(&addr, "", 1);
    assert_eq!(ids(&paged), ["p1", "p2", "p4"]);
    assert!(removed.is_empty());
    let (paged, removed, _) = all_pages(&addr, "&since=2000", 1);
    assert_eq!(ids(&paged), ["p1", "p4"]);
    assert_eq!(removed, ["p3"]);

    // More input: p2 moves and p9's time completes; p3 comes back.
    let mut more = String::new();
    more += &position("d2", "p2", 21_000, 48.8525, None);
    more += &position("d3", "p3", 22_000, 48.853, None);
    more += &position("z8", "p8", 40_000, 48.858, None);
    served.feed(more.as_bytes());
    wait_as_of(&addr, 34_999);
    assert_eq!(
        since(14_999),
        (vec!["p2".into(), "p3".into(), "p9".into()], vec![])
    );

    // A client that cannot send Last-Event-ID names it as a parameter;
    // the header wins over it.
    let all = subscribe(&addr, "/v1/subscribe", &[], 6);
    let notes: Vec<&(String, String, String)> =
        all.iter().filter(|e| e.1 == "notification").collect();
    assert!(notes.len() >= 6, "{all:?}");
    let after = |path: &str, headers: &[(&str, &str)]| {
        let got = subscribe(&addr, path, headers, 1);
        got.into_iter().find(|e| e.1 == "notification").unwrap().0
    };
    let resume = format!("/v1/subscribe?last_event_id={}", notes[2].0);
    assert_eq!(after(&resume, &[]), notes[3].0);
    assert_eq!(
        after(&resume, &[("Last-Event-ID", &notes[4].0)]),
        notes[5].0
    );

    for bad in [
        "/v1/positions?since=soon",
        "/v1/positions?limit=0",
        "/v1/positions?colour=red",
    ] {
        let (status, body) = json(&addr, bad);
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string());
    }
}

/// While two workers ingest, a client that keeps asking for what changed
/// since its last answer's time ends with exactly the full listing, and
/// every answer agrees with each player's own answer at the end.
#[test]
fn changes_since_add_up_to_the_full_listing_while_ingesting() {
    let work = common::Scratch::new("positions-live");
    let demo = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/demo/part-000.jsonl"),
    )
    .unwrap();
    let fed: Vec<u8> = demo
        .split_inclusive(|&b| b == b'\n')
        .take(12_000)
        .flatten()
        .copied()
        .collect();
    // TTLs of the demo itself: positions expire, players leave.
    let served = serve_demo(&work.path, &[], Some(fed), Duration::from_millis(40), false);
    let addr = served.addr.clone();
    let mut known: BTreeMap<String, Value> = BTreeMap::new();
    let (mut since, mut rounds, mut removals, mut last) = (None::<u64>, 0, 0, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let query = since.map(|s| format!("&since={s}")).unwrap_or_default();
        let (changed, removed, times) = all_pages(&addr, &query, 25);
        for r in &removed {
            known.remove(r);
        }
        removals += removed.len();
        known.extend(changed);
        since = times.first().copied().flatten().or(since);
        rounds += 1;
        // Done when every record is read, every time below the final
        // frontier (the latest time read less the lateness) is complete,
        // and one more round changed nothing: a pause of the machine
        // alone does not look like the end.
        let health = json(&addr, "/healthz").1;
        let settled = health["records_read"] == 12_000 && health["event_time_lag_ms"] == 5_001;
        if settled && last == health["as_of"].as_u64() && since == last {
            break;
        }
        last = health["as_of"].as_u64();
        assert!(Instant::now() < deadline, "the input never went idle");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(rounds > 20, "{rounds} rounds");
    assert!(removals > 0, "no position disappeared");
    let (full, _, _) = all_pages(&addr, "", 1000);
    assert_eq!(ids(&known), ids(&full));
    assert_eq!(known, full);
    for (player, p) in &full {
        let (_, a) = json(&addr, &format!("/v1/players/{player}"));
        let pos = &a["position"];
        assert_eq!(
            (&pos["lat"], &pos["lon"], &pos["ts"]),
            (&p[1], &p[2], &p[3]),
            "{player}"
        );
    }
}

#[test]
fn the_hunt_in_effect_with_zones_as_geojson() {
    let work = common::Scratch::new("hunt");
    let served = serve_with(&work.path, &[], Some(Vec::new()));
    let (status, h) = json(&served.addr, "/v1/hunt");
    assert_eq!(status, 200);
    assert_eq!(h["effective"], 0);
    assert_eq!(h["pending"], serde_json::json!([]));
    let hunt = &h["hunt"];
    assert_eq!(hunt["name"], "demo");
    assert_eq!(hunt["max_lateness_ms"], 5000);
    assert_eq!(hunt["max_accuracy_m"], 50.0);
    let zones: BTreeMap<&str, &Value> = hunt["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| (z["id"].as_str().unwrap(), z))
        .collect();
    let loaded = huntflow::model::hunt::Hunt::load(&served.hunt).unwrap();
    assert_eq!(zones.len(), loaded.zones.len());
    let fountain = zones["fountain"];
    assert_eq!(fountain["geometry"]["type"], "Point");
    assert_eq!(
        fountain["geometry"]["coordinates"],
        serde_json::json!([2.3499, 48.853])
    );
    assert_eq!(fountain["radius_m"], 300.0);
    assert_eq!(fountain["priority"], 3);
    let market = &zones["market"]["geometry"];
    assert_eq!(market["type"], "Polygon");
    assert_eq!(
        market["coordinates"].as_array().unwrap().len(),
        2,
        "outer ring and hole"
    );
    assert_eq!(zones["islands"]["geometry"]["type"], "MultiPolygon");
    let key = hunt["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "golden-key")
        .unwrap();
    assert_eq!(key["zone"], "fountain");
    assert_eq!(key["requires"], serde_json::json!(["clue-1", "clue-2"]));
    assert_eq!(
        key["active"],
        serde_json::json!({"from": 600000, "until": 3000000})
    );
}

#[test]
fn a_token_guards_every_endpoint_but_healthz() {
    let work = common::Scratch::new("token");
    let file = work.join("token");
    std::fs::write(&file, "  let-me-in \n").unwrap();
    let mut fed: String = (0..50)
        .map(|i| {
            position(
                &format!("e{i}"),
                &format!("p{i}"),
                1000 + i * 100,
                48.853,
                None,
            )
        })
        .collect();
    fed += &position("z", "p99", 20_000, 48.853, None);
    let served = serve_with(
        &work.path,
        &["--serve-token-file", file.to_str().unwrap()],
        Some(fed.into_bytes()),
    );
    let addr = &served.addr;
    wait_as_of(addr, 14_999);
    let good = [("Authorization", "Bearer let-me-in")];
    let paths = [
        "/",
        "/metrics",
        "/v1/zones",
        "/v1/zones/fountain",
        "/v1/rewards/golden-key",
        "/v1/players/p1",
        "/v1/players/p1/why/golden-key",
        "/v1/positions",
        "/v1/hunt",
        "/v1/nope",
    ];
    for path in paths {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer let-me-out")],
            vec![("Authorization", "let-me-in")],
        ] {
            let a = request(addr, path, &headers);
            assert_eq!(a.status, 401, "{path} {headers:?}");
            assert_eq!(
                a.www_authenticate
                    .as_deref()
                    .map(|w| w.starts_with("Bearer")),
                Some(true),
                "{path}"
            );
            let v: Value = serde_json::from_slice(&a.body).unwrap();
            assert!(v["error"].is_string(), "{path}");
        }
        let a = request(addr, path, &good);
        let want = if path == "/v1/nope" { 404 } else { 200 };
        assert_eq!(a.status, want, "{path} with the token");
    }
    // The page to a browser without the token: 401, and the page, which
    // asks for it.
    let a = request(addr, "/", &[("Accept", "text/html,*/*")]);
    assert_eq!(a.status, 401);
    assert!(a.content_type.starts_with("text/html"));
    assert!(String::from_utf8_lossy(&a.body).contains("id=\"login\""));
    let a = request(addr, "/", &good);
    assert!(a.content_type.starts_with("text/html"));
    // Health needs nothing.
    assert_eq!(json(addr, "/healthz").0, 200);
    assert_eq!(json_with(addr, "/v1/zones", &good).0, 200);

    // Subscriptions: the header, or the query parameter browsers can send.
    for (path, headers) in [
        ("/v1/subscribe", good.to_vec()),
        ("/v1/subscribe?access_token=let-me-in", vec![]),
    ] {
        let events = subscribe(addr, path, &headers, 5);
        assert!(
            events.iter().filter(|e| e.1 == "notification").count() >= 5,
            "{path}"
        );
    }
    for path in [
        "/v1/subscribe",
        "/v1/subscribe?access_token=nope",
        "/v1/positions?access_token=let-me-in",
    ] {
        assert_eq!(request(addr, path, &[]).status, 401, "{path}");
    }
}

#[test]
fn an_empty_or_unreadable_token_file_fails_naming_it() {
    let work = common::Scratch::new("token-bad");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let empty = work.join("empty-token");
    std::fs::write(&empty, "\n  \n").unwrap();
    let missing = work.join("no-such-token");
    for file in [&empty, &missing] {
        let out = Command::new(env!("CARGO_BIN_EXE_huntflow"))
            .arg("backfill")
            .arg("--hunt")
            .arg(root.join("dataflows/demo/hunt.toml"))
            .args([
                "--output",
                "/dev/null",
                "--serve",
                "127.0.0.1:0",
                "--serve-token-file",
            ])
            .arg(file)
            .arg(root.join("datasets/demo/part-000.jsonl"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
}
