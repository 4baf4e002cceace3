//! The live map page in a real browser: Debian's `chromium`, headless,
//! driven over the Chrome DevTools protocol (a websocket, `tungstenite`).
//! The browser must be installed (`scripts/browser.sh install`); without
//! it these tests fail.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use common::http::{json as get_json, json_with, serve_with};

/// A headless chromium and a DevTools session on its one page.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Every URL the page asked for (`Network.requestWillBeSent`).
    requests: Vec<String>,
    _profile: common::Scratch,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch() -> Browser {
        let profile = common::Scratch::new("chromium-profile");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-sync",
                "--disable-component-update",
                "--remote-debugging-port=0",
                "--window-size=1400,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromium ({e}): the map page is tested in a real browser; \
                     install it with `scripts/browser.sh install`"
                )
            });
        // Chromium says where its DevTools endpoint is on standard error.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium did not open its DevTools endpoint within 60 s");
        let port = browser_url
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .unwrap()
            .to_string();
        let (_, body) = common::http::get(&format!("127.0.0.1:{port}"), "/json/list", &[]);
        let targets: Value = serde_json::from_slice(&body).unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tungstenite::connect(url).expect("DevTools websocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        }
        let mut b = Browser {
            child,
            ws,
            next: 0,
            requests: Vec::new(),
            _profile: profile,
        };
        b.call("Network.enable", json!({}));
        b.call("Page.enable", json!({}));
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    /// Sends one command and waits for its result, noting events meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send to chromium");
        loop {
            let msg = self.ws.read().expect("read from chromium");
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["method"] == "Network.requestWillBeSent" {
                let url = v["params"]["request"]["url"].as_str().unwrap_or("");
                self.requests.push(url.to_string());
            }
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression (promises awaited), or the
    /// exception it threw.
    fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        match &r["exceptionDetails"] {
            Value::Null => Ok(r["result"]["value"].clone()),
            e => Err(e.clone()),
        }
    }

    /// The value of a JavaScript expression (promises awaited).
    fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Evaluates `expression` until it is truthy (then its value), for at
    /// most `secs` seconds; an exception (say, while the page loads) counts
    /// as not yet.
    fn wait_for(&mut self, expression: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.try_eval(expression);
            match &v {
                Ok(v) if !(v.is_null() || *v == false || *v == 0 || *v == "") => return v.clone(),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "waited {secs} s for {expression}: {v:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    /// A real click at `(x, y)` of the viewport.
    fn click(&mut self, x: f64, y: f64) {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Lines `from..to` of the demo's first partition.
fn demo_lines(from: usize, to: usize) -> Vec<u8> {
    let demo = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/demo/part-000.jsonl"),
    )
    .unwrap();
    demo.split_inclusive(|&b| b == b'\n')
        .skip(from)
        .take(to - from)
        .flatten()
        .copied()
        .collect()
}

/// Waits until `/healthz` says the same `as_of` twice, half a second
/// apart: what was fed is processed.
fn settled(addr: &str) -> u64 {
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = get_json(addr, "/healthz").1["as_of"].as_u64();
        if let Some(t) = now.filter(|_| now == last) {
            return t;
        }
        last = now;
        assert!(Instant::now() < deadline, "as_of does not settle");
    }
}

/// Every player with a position, from the API (all pages).
fn api_positions(addr: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/v1/positions?limit=50".to_string(),
            Some(a) => format!("/v1/positions?limit=50&after={a}"),
        };
        let (status, page) = json_with(addr, &path, headers);
        assert_eq!(status, 200);
        for p in page["positions"].as_array().unwrap() {
            out.push(p[0].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

/// The page's texts and counts once it has drawn what the API lists.
fn check_page(
    b: &mut Browser,
    addr: &str,
    hunt: &huntflow::model::hunt::Hunt,
    headers: &[(&str, &str)],
) {
    b.wait_for("document.body.dataset.ready === '1'", 60);
    let text = b
        .eval("document.body.innerText")
        .as_str()
        .unwrap()
        .to_string();
    for z in &hunt.zones {
        assert!(text.contains(&z.id), "zone {} is not on the page", z.id);
    }
    let listed = b.eval("document.querySelectorAll('#zones li').length");
    assert_eq!(listed, hunt.zones.len());
    let players = api_positions(addr, headers);
    assert!(players.len() > 20, "{} players", players.len());
    let want = players.len();
    let drawn = b.wait_for(
        &format!(
            "(() => {{ const c = document.getElementById('player-count').dataset; \
             return +c.count === {want} && +c.drawn >= {want} && +c.drawn; }})()"
        ),
        20,
    );
    assert!(drawn.as_u64().unwrap() >= want as u64);
}

#[test]
fn the_map_page_draws_the_demo_and_follows_it_live() {
    let started = Instant::now();
    let work = common::Scratch::new("browser-map");
    let mut served = serve_with(&work.path, &[], Some(demo_lines(0, 8000)));
    let addr = served.addr.clone();
    let base = format!("http://{addr}/");
    let hunt = huntflow::model::hunt::Hunt::load(&served.hunt).unwrap();
    let before = settled(&addr);

    let mut b = Browser::launch();
    let launched = started.elapsed();
    b.open(&base);
    check_page(&mut b, &addr, &hunt, &[]);
    let loaded = started.elapsed();

    // Clicking a dot shows that player's answer and why, reward by reward.
    let player = api_positions(&addr, &[])[0].clone();
    let at = b.eval(&format!("window.huntflowMap.dot({player:?})"));
    b.click(at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    let panel = b.wait_for(
        "(() => { const p = document.getElementById('player-panel'); \
         return !p.hidden && p.innerText.includes('Why') && p.innerText; })()",
        20,
    );
    let panel = panel.as_str().unwrap();
    assert!(panel.contains("Zones") && panel.contains("Eligible for"));
    for r in &hunt.rewards {
        assert!(
            panel.contains(&r.id),
            "reward {} missing from the panel",
            r.id
        );
    }
    b.call(
        "Runtime.evaluate",
        json!({"expression": "document.getElementById('player-close').click()"}),
    );

    // The connection drops (the browser goes offline) while new input
    // arrives on the open partition; back online, the stream resumes where
    // it stopped: as_of advances, and the page has every notification
    // after its starting point, none twice.
    let offline = |b: &mut Browser, offline: bool| {
        b.call(
            "Network.emulateNetworkConditions",
            json!({"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}),
        );
    };
    offline(&mut b, true);
    b.wait_for("document.getElementById('conn').textContent !== 'live'", 30);
    served.feed(&demo_lines(8000, 10_000));
    settled(&addr);
    offline(&mut b, false);
    let after = settled(&addr);
    assert!(after > before);
    b.wait_for(
        &format!("+document.getElementById('as-of').dataset.asOf >= {after}"),
        30,
    );
    b.wait_for(
        &format!("+document.getElementById('feed').dataset.latest > {before}"),
        30,
    );
    let feed = b.eval("document.querySelectorAll('#feed li').length");
    assert!(feed.as_u64().unwrap() > 0);
    b.wait_for("document.getElementById('conn').textContent === 'live'", 30);
    let from = b.eval("document.getElementById('feed').dataset.from");
    let (t0, i0) = from.as_str().unwrap().split_once('-').unwrap();
    let start: (u64, u64) = (t0.parse().unwrap(), i0.parse().unwrap());
    // The output file, with each notification's id `T-I`.
    let mut want = 0;
    let mut last = (0, 0);
    for line in std::fs::read_to_string(&served.output).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(t) = v["time"].as_u64().filter(|_| v["kind"] != "progress") else {
            continue;
        };
        last = if last.0 == t { (t, last.1 + 1) } else { (t, 1) };
        want += u64::from(last > start);
    }
    assert!(want > 100, "{want} notifications after {start:?}");
    b.wait_for(
        &format!("+document.getElementById('feed').dataset.received === {want}"),
        30,
    );
    check_page(&mut b, &addr, &hunt, &[]);
    let stats = b.eval("document.querySelector('header').innerText");
    assert!(
        stats.as_str().unwrap().contains("records/s"),
        "no ingest rate: {stats}"
    );

    // Nothing but the server was asked for anything.
    let resources = b.eval("performance.getEntriesByType('resource').map(e => e.name)");
    let mut urls = b.requests.clone();
    urls.extend(
        resources
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string()),
    );
    assert!(urls.iter().any(|u| u.contains("/v1/positions")));
    for u in &urls {
        assert!(u.starts_with(&base), "the page asked another host: {u}");
    }
    // The README's picture is renewed on request only, so that a test run
    // leaves the tree as it was.
    let shot = match std::env::var_os("HUNTFLOW_UPDATE_SCREENSHOT") {
        Some(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/map.png"),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("map.png"),
    };
    b.screenshot(&shot);
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "a screenshot"
    );
    eprintln!(
        "browser test: chromium up after {:.1?}, page drawn after {:.1?}, done after {:.1?}",
        launched,
        loaded,
        started.elapsed()
    );
}

/// The `ts` of line `n` of the demo's first partition.
fn demo_ts(n: usize) -> u64 {
    let line = demo_lines(n, n + 1);
    let v: Value = serde_json::from_slice(&line).unwrap();
    v["ts"].as_u64().unwrap()
}

#[test]
fn the_page_draws_a_hunt_change_once_it_is_in_effect() {
    let work = common::Scratch::new("browser-change");
    // The demo hunt with a square zone added and the tower gone, in effect
    // from a time inside the input.
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dataflows/demo");
    let new = work.join("new");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::copy(demo.join("zones.geojson"), new.join("zones.geojson")).unwrap();
    let toml = std::fs::read_to_string(demo.join("hunt.toml"))
        .unwrap()
        .replace(
            "[[zones]]\nid = \"tower\"\npriority = 1\ncircle = { lat = 48.8665, lon = 2.3620, radius_m = 400.0 }\n",
            "",
        )
        + "\n[[zones]]\nid = \"square\"\npriority = 8\ncircle = { lat = 48.8560, lon = 2.3550, radius_m = 500.0 }\n";
    assert!(!toml.contains("\"tower\""), "the tower is in the demo hunt");
    std::fs::write(new.join("hunt.toml"), toml).unwrap();
    let effective = demo_ts(9000);
    let changes = work.join("changes.jsonl");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_huntflow"))
        .args(["hunt-change", "--hunt"])
        .arg(new.join("hunt.toml"))
        .args(["--effective", &effective.to_string(), "--to"])
        .arg(&changes)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");

    let changes_arg = changes.to_str().unwrap();
    let mut served = serve_with(
        &work.path,
        &["--hunt-changes", changes_arg],
        Some(demo_lines(0, 8000)),
    );
    let addr = served.addr.clone();
    assert!(settled(&addr) < effective);
    let mut b = Browser::launch();
    b.open(&format!("http://{addr}/"));
    b.wait_for("document.body.dataset.ready === '1'", 60);
    let zones = "[...document.querySelectorAll('#zones li')].map(l => l.innerText).join(' ')";
    let before = b.eval(zones);
    assert!(before.as_str().unwrap().contains("tower"), "{before}");
    assert!(!before.as_str().unwrap().contains("square"), "{before}");

    served.feed(&demo_lines(8000, 12_000));
    assert!(settled(&addr) >= effective);
    let after = b.wait_for(
        &format!(
            "(() => {{ const z = {zones}; return z.includes('square') && !z.includes('tower') && z; }})()"
        ),
        30,
    );
    let effective_shown = b.eval("+document.getElementById('hunt-name').dataset.effective");
    assert_eq!(effective_shown, effective, "{after}");
}

#[test]
fn with_a_token_the_page_asks_for_it_and_then_works() {
    let work = common::Scratch::new("browser-token");
    let token = "s3cret-token-for-the-map";
    let file = work.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let served = serve_with(
        &work.path,
        &["--serve-token-file", file.to_str().unwrap()],
        Some(demo_lines(0, 6000)),
    );
    let addr = served.addr.clone();
    let hunt = huntflow::model::hunt::Hunt::load(&served.hunt).unwrap();
    settled(&addr);
    let mut b = Browser::launch();
    b.open(&format!("http://{addr}/"));
    let ask = "!document.getElementById('login-wrap').hidden";
    b.wait_for(ask, 30);
    let fill = |t: &str| {
        format!(
            "document.getElementById('token').value = {t:?}; \
             document.getElementById('login').requestSubmit(); true"
        )
    };
    b.eval(&fill("not-the-token"));
    b.wait_for(
        "!document.getElementById('login-wrap').hidden && \
         document.getElementById('login-error').textContent.includes('not accepted')",
        30,
    );
    b.eval(&fill(token));
    let bearer = format!("Bearer {token}");
    check_page(&mut b, &addr, &hunt, &[("Authorization", &bearer)]);
    // The subscription is open with the token: occupancy reached the list.
    b.wait_for("document.getElementById('conn').textContent === 'live'", 30);
}
