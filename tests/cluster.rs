//! Timely's cluster mode (docs/cluster.md): backfills run as several
//! processes on 127.0.0.1 give the bytes of one process and of the reference
//! model; bad cluster flags fail with a clear message; a lost process stops
//! the others; process 0's API answers for players of every process.

mod common;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::http::json;
use common::reference::RefOutput;
use common::{
    assert_same_output, case_options, expected_rejects, reject_places, written_case, Scratch,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_huntflow");

/// `n` ports nothing listens on (all bound at once, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

/// A hostfile for `n` processes on free ports of 127.0.0.1, with a comment
/// and a blank line.
fn hostfile(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("hosts-{n}"));
    let mut text = String::from("# the test cluster\n\n");
    for port in free_ports(n) {
        text.push_str(&format!("127.0.0.1:{port}  # a process\n"));
    }
    std::fs::write(&path, text).expect("write hostfile");
    path
}

/// Waits for `child` at most `limit`; kills it and panics past that.
fn wait(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait for a process") {
            Some(_) => return child.wait_with_output().expect("collect output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{what}: still running after {limit:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Starts `huntflow backfill` as process `p` of `n` (`w` workers each), in
/// its own directory `dir/proc-p`: outputs named relatively land there.
fn start(dir: &Path, hosts: &Path, (n, w, p): (usize, usize, usize), args: &[OsString]) -> Child {
    let cwd = dir.join(format!("proc-{p}"));
    std::fs::create_dir_all(&cwd).expect("process directory");
    Command::new(BIN)
        .current_dir(&cwd)
        .arg("backfill")
        .args([
            "-n",
            &n.to_string(),
            "-p",
            &p.to_string(),
            "-w",
            &w.to_string(),
        ])
        .arg("-h")
        .arg(hosts)
        .args(["--connect-timeout", "30"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start huntflow")
}

/// What a backfill wrote: notifications, rejects, summary, derived files.
#[derive(Debug, PartialEq)]
struct Written {
    output: String,
    rejects: String,
    summary: String,
    presence: String,
    eligibility: String,
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn written(dir: &Path) -> Written {
    Written {
        output: read(&dir.join("out.jsonl")),
        rejects: read(&dir.join("rejects.jsonl")),
        summary: read(&dir.join("summary.json")),
        presence: read(&dir.join("derived/presence.jsonl")),
        eligibility: read(&dir.join("derived/eligibility.jsonl")),
    }
}

/// The arguments every process is given: absolute inputs, relative outputs.
fn job_args(hunt: &Path, changes: Option<&Path>, inputs: &[PathBuf]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--hunt".into(), hunt.into()];
    if let Some(c) = changes {
        args.push("--hunt-changes".into());
        args.push(c.into());
    }
    for a in [
        "--output",
        "out.jsonl",
        "--rejects",
        "rejects.jsonl",
        "--summary",
        "summary.json",
        "--derived",
        "derived",
    ] {
        args.push(a.into());
    }
    args.extend(inputs.iter().map(OsString::from));
    args
}

/// Runs a backfill as `n` processes of `w` workers; checks that every
/// process succeeded and that only process 0 wrote anything; returns what
/// process 0 wrote.
fn run_cluster(dir: &Path, (n, w): (usize, usize), args: &[OsString]) -> Written {
    let dir = dir.join(format!("cluster-{n}x{w}"));
    std::fs::create_dir_all(&dir).expect("cluster directory");
    let hosts = hostfile(&dir, n);
    let children: Vec<Child> = (0..n)
        .map(|p| start(&dir, &hosts, (n, w, p), args))
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let out = wait(
            child,
            Duration::from_secs(120),
            &format!("{n}x{w} process {p}"),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{n}x{w} process {p} failed ({}): {stderr}",
            out.status
        );
        if p > 0 {
            assert!(
                out.stdout.is_empty(),
                "{n}x{w} process {p} printed on stdout"
            );
            assert!(stderr.is_empty(), "{n}x{w} process {p} printed: {stderr}");
            let files: Vec<_> = std::fs::read_dir(dir.join(format!("proc-{p}")))
                .expect("process directory")
                .collect();
            assert!(files.is_empty(), "{n}x{w} process {p} wrote {files:?}");
        }
    }
    written(&dir.join("proc-0"))
}

/// The same backfill as one process of one worker.
fn run_single(dir: &Path, args: &[OsString]) -> Written {
    let cwd = dir.join("single");
    std::fs::create_dir_all(&cwd).expect("directory");
    let out = Command::new(BIN)
        .current_dir(&cwd)
        .arg("backfill")
        .args(args)
        .output()
        .expect("run huntflow");
    assert!(
        out.status.success(),
        "one process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    written(&cwd)
}

/// Checks one backfill's output against the reference model.
fn check_reference(
    what: &str,
    model: &RefOutput,
    got: &Written,
    changes: Option<&Path>,
    inputs: &[PathBuf],
) {
    assert_same_output(what, &model.notifications, &got.output);
    assert_eq!(
        got.summary.trim_end(),
        model.summary_json(),
        "{what}: summary"
    );
    let want = expected_rejects(&model.rejects, changes, inputs);
    assert_eq!(reject_places(&got.rejects), want, "{what}: rejects file");
}

/// A generated case with several partitions (and `changes` change records):
/// its directory, hunt, change log and partitions, and the reference model's
/// output.
struct Generated {
    dir: Scratch,
    hunt: PathBuf,
    changes: Option<PathBuf>,
    inputs: Vec<PathBuf>,
    model: RefOutput,
}

fn generated(seed: u64, changes: u32, partitions: u32) -> Generated {
    let mut opts = case_options(seed, changes);
    opts.partitions = partitions;
    let c = written_case(&opts, &format!("cluster-seed{seed}"));
    Generated {
        hunt: c.files.hunt_toml,
        changes: c.files.hunt_changes,
        inputs: c.files.partitions,
        model: c.model,
        dir: c.dir,
    }
}

#[test]
fn cluster_backfills_give_the_bytes_of_one_process() {
    // (seed, change records, partitions): with and without a change log.
    for (seed, changes, partitions) in [(11, 0, 5), (12, 2, 4), (13, 3, 7)] {
        let g = generated(seed, changes, partitions);
        let args = job_args(&g.hunt, g.changes.as_deref(), &g.inputs);
        let one = run_single(&g.dir.path, &args);
        check_reference(
            &format!("seed {seed}, one process"),
            &g.model,
            &one,
            g.changes.as_deref(),
            &g.inputs,
        );
        assert!(!one.output.is_empty() && !one.rejects.is_empty() && !one.presence.is_empty());
        for layout in [(2, 1), (2, 2), (3, 1), (3, 2)] {
            let what = format!(
                "seed {seed}, {}x{} (processes x workers)",
                layout.0, layout.1
            );
            let got = run_cluster(&g.dir.path, layout, &args);
            assert_same_output(&what, &one.output, &got.output);
            assert_eq!(got.rejects, one.rejects, "{what}: rejects");
            assert_eq!(got.summary, one.summary, "{what}: summary");
            assert_eq!(got.presence, one.presence, "{what}: presence.jsonl");
            assert_eq!(
                got.eligibility, one.eligibility,
                "{what}: eligibility.jsonl"
            );
        }
    }
}

/// Runs `huntflow ARGS` expecting a failure; returns its standard error.
fn fails(args: &[&str], dir: &Path) -> String {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run huntflow");
    assert_eq!(out.status.code(), Some(2), "huntflow {args:?} should fail");
    assert!(out.stdout.is_empty(), "huntflow {args:?} printed on stdout");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_cluster_flags_fail_with_a_clear_message() {
    let g = generated(21, 0, 2);
    let dir = &g.dir.path;
    let hunt = g.hunt.display().to_string();
    let input = g.inputs[0].display().to_string();
    let backfill = |extra: &[&str]| {
        let mut args = vec!["backfill", "--hunt", hunt.as_str()];
        args.extend_from_slice(extra);
        args.push(input.as_str());
        fails(&args, dir)
    };
    let hosts = dir.join("hosts");
    let hosts_arg = hosts.display().to_string();
    std::fs::write(&hosts, "127.0.0.1:1\n# only one\n").unwrap();

    let e = backfill(&["-n", "2"]);
    assert!(e.contains("-n 2 needs a hostfile (-h FILE)"), "{e}");
    let e = backfill(&["-n", "2", "-p", "2", "-h", &hosts_arg]);
    assert!(e.contains("-p 2 is not below -n 2"), "{e}");
    let e = backfill(&["-n", "2", "-p", "1", "-h", &hosts_arg]);
    assert!(
        e.contains(&format!("{hosts_arg}: 1 address(es) for -n 2")),
        "{e}"
    );
    std::fs::write(&hosts, "127.0.0.1:1\n\n127.0.0.1 2\n").unwrap();
    let e = backfill(&["-n", "2", "-h", &hosts_arg]);
    assert!(
        e.contains(&format!(
            "{hosts_arg}, line 3: \"127.0.0.1 2\" is not host:port"
        )),
        "{e}"
    );
    std::fs::write(&hosts, "127.0.0.1:1\n127.0.0.1:2\n127.0.0.1:3\n").unwrap();
    let e = backfill(&["-n", "2", "-h", &hosts_arg]);
    assert!(
        e.contains(&format!("{hosts_arg}, line 3: more addresses than -n 2")),
        "{e}"
    );
    std::fs::write(&hosts, "127.0.0.1:1\n127.0.0.1:1\n").unwrap();
    let e = backfill(&["-n", "2", "-h", &hosts_arg]);
    assert!(
        e.contains("line 2: 127.0.0.1:1 is process 0's address already (line 1)"),
        "{e}"
    );
    let missing = dir.join("no-such-hostfile").display().to_string();
    let e = backfill(&["-n", "2", "-h", &missing]);
    assert!(
        e.contains(&format!("{missing}: cannot read the hostfile")),
        "{e}"
    );
    let e = backfill(&["-w", "0"]);
    assert!(e.contains("workers must be at least 1"), "{e}");
    // Standard input cannot be shared out.
    std::fs::write(&hosts, "127.0.0.1:1\n127.0.0.1:2\n").unwrap();
    let e = fails(
        &[
            "backfill", "--hunt", &hunt, "-n", "2", "-h", &hosts_arg, "-",
        ],
        dir,
    );
    assert!(
        e.contains("standard input (-) cannot be read in a cluster"),
        "{e}"
    );
    // The continuous job checks the same flags.
    let e = fails(
        &[
            "run", "--hunt", &hunt, "--topic", "t", "--output", "-", "-n", "3", "-p", "3",
        ],
        dir,
    );
    assert!(e.contains("-p 3 is not below -n 3"), "{e}");
    // -h is the hostfile; --help is help.
    let out = Command::new(BIN)
        .args(["backfill", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-h, --hostfile <FILE>"));
}

#[test]
fn a_process_started_with_other_arguments_is_refused() {
    let g = generated(22, 0, 2);
    let args = job_args(&g.hunt, None, &g.inputs);
    let dir = g.dir.path.join("mismatch");
    let hosts = hostfile(&g.dir.path, 2);
    let first = start(&dir, &hosts, (2, 1, 0), &args);
    let second = start(&dir, &hosts, (2, 2, 1), &args);
    for (p, child) in [first, second].into_iter().enumerate() {
        let out = wait(child, Duration::from_secs(60), &format!("process {p}"));
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "process {p}: {e}");
        assert!(e.contains("was started with -w"), "process {p}: {e}");
    }
    // Fewer inputs on one process: other arguments.
    let other = job_args(&g.hunt, None, &g.inputs[..1]);
    let first = start(&dir, &hosts, (2, 1, 0), &args);
    let second = start(&dir, &hosts, (2, 1, 1), &other);
    for (p, child) in [first, second].into_iter().enumerate() {
        let out = wait(child, Duration::from_secs(60), &format!("process {p}"));
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "process {p}: {e}");
        assert!(
            e.contains("was started with other arguments"),
            "process {p}: {e}"
        );
    }
}

/// Two processes reading a named pipe each, kept open, so that the
/// backfill runs until stopped.
struct Endless {
    _dir: Scratch,
    hosts: PathBuf,
    children: Vec<Option<Child>>,
    _writers: Vec<std::fs::File>,
}

fn endless(label: &str) -> Endless {
    let dir = Scratch::new(label);
    let hunt = dir.join("hunt.toml");
    std::fs::write(
        &hunt,
        "[[zones]]\nid = \"z\"\ncircle = { lat = 0.0, lon = 0.0, radius_m = 10.0 }\n",
    )
    .unwrap();
    let pipes: Vec<PathBuf> = (0..2).map(|i| dir.path.join(format!("pipe-{i}"))).collect();
    for p in &pipes {
        let status = Command::new("mkfifo").arg(p).status().expect("mkfifo");
        assert!(status.success());
    }
    let hosts = hostfile(&dir.path, 2);
    let mut args: Vec<OsString> = vec![
        "--hunt".into(),
        hunt.into(),
        "--output".into(),
        "out.jsonl".into(),
    ];
    args.extend(pipes.iter().map(OsString::from));
    let children = (0..2)
        .map(|p| Some(start(&dir.path, &hosts, (2, 1, p), &args)))
        .collect();
    // Open each pipe for writing (this waits for its reader) and keep it open.
    let writers = pipes
        .iter()
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .expect("open pipe")
        })
        .collect();
    Endless {
        _dir: dir,
        hosts,
        children,
        _writers: writers,
    }
}

impl Endless {
    fn address(&self, p: usize) -> String {
        read(&self.hosts)
            .lines()
            .filter(|l| l.starts_with("127."))
            .nth(p)
            .and_then(|l| l.split_whitespace().next())
            .expect("address")
            .to_string()
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on a child we started and have not reaped.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(r, 0, "kill");
}

#[test]
fn a_lost_process_stops_the_others_with_a_message() {
    // Either process killed: the other stops at once and names it.
    for (killed, survivor) in [(1, 0), (0, 1)] {
        let mut e = endless(&format!("lost-{killed}"));
        std::thread::sleep(Duration::from_millis(500));
        let victim = e.children[killed].take().unwrap();
        signal(&victim, libc::SIGKILL);
        let _ = wait(victim, Duration::from_secs(10), "the killed process");
        let other = e.children[survivor].take().unwrap();
        let what = format!("process {survivor} after losing process {killed}");
        let out = wait(other, Duration::from_secs(10), &what);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        let named = format!("lost process {killed} ({})", e.address(killed));
        assert!(err.contains(&named), "{what}: {err}");
    }
}

#[test]
fn a_frozen_process_is_noticed_by_the_heartbeat() {
    let mut e = endless("frozen");
    std::thread::sleep(Duration::from_millis(500));
    let one = e.children[1].take().unwrap();
    signal(&one, libc::SIGSTOP);
    let started = Instant::now();
    let zero = e.children[0].take().unwrap();
    let out = wait(
        zero,
        Duration::from_secs(30),
        "process 0 beside a frozen process 1",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "lost process 1 ({}): no sign of life for 10 s",
            e.address(1)
        )),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    signal(&one, libc::SIGKILL);
    let _ = wait(one, Duration::from_secs(10), "frozen process 1");
}

/// Starts a backfill serving its API on process 0; waits until its
/// backfill is complete; returns the processes and the API's address.
fn serve(dir: &Path, (n, w): (usize, usize), args: &[OsString]) -> (Vec<Child>, String) {
    let dir = dir.join(format!("served-{n}x{w}"));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = format!("127.0.0.1:{}", free_ports(1)[0]);
    let mut args = args.to_vec();
    args.push("--serve".into());
    args.push(addr.clone().into());
    let children: Vec<Child> = if n == 1 {
        let cwd = dir.join("proc-0");
        std::fs::create_dir_all(&cwd).unwrap();
        vec![Command::new(BIN)
            .current_dir(&cwd)
            .arg("backfill")
            .args(["-w", &w.to_string()])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start huntflow")]
    } else {
        let hosts = hostfile(&dir, n);
        (0..n)
            .map(|p| start(&dir, &hosts, (n, w, p), &args))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = std::net::TcpStream::connect(&addr).is_ok() && {
            let (s, v) = json(&addr, "/healthz");
            s == 200 && v["complete"] == Value::Bool(true)
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the served backfill did not complete"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (children, addr)
}

fn stop(children: Vec<Child>) {
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn process_0_answers_for_players_of_every_process() {
    let g = generated(31, 1, 2);
    let args: Vec<OsString> = {
        let mut a: Vec<OsString> = vec![
            "--hunt".into(),
            g.hunt.clone().into(),
            "--output".into(),
            "out.jsonl".into(),
        ];
        a.extend(g.inputs.iter().map(OsString::from));
        a
    };
    // Players by the worker that owns them (global worker = hash % 2).
    let players: Vec<String> = {
        let mut set = std::collections::BTreeSet::new();
        for line in g.model.notifications.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(p) = v["player"].as_str() {
                set.insert(p.to_string());
            }
        }
        set.into_iter().collect()
    };
    let owner = |p: &str| huntflow::dataflow::facts::player_hash(p) % 2;
    let remote: Vec<&String> = players.iter().filter(|p| owner(p) == 1).collect();
    let local: Vec<&String> = players.iter().filter(|p| owner(p) == 0).collect();
    assert!(
        !remote.is_empty() && !local.is_empty(),
        "players on both processes"
    );

    let (one, one_addr) = serve(&g.dir.path, (1, 2), &args);
    let (cluster, addr) = serve(&g.dir.path, (2, 1), &args);
    let without_as_of = |mut v: Value| {
        let as_of = v.as_object_mut().and_then(|o| o.remove("as_of"));
        (as_of, v)
    };
    let last_time = g
        .model
        .notifications
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["time"].as_u64())
        .max()
        .unwrap();
    for p in remote.iter().chain(local.iter()).take(12) {
        let (status, got) = json(&addr, &format!("/v1/players/{p}"));
        assert_eq!(status, 200, "player {p}: {got}");
        let (want_status, want) = json(&one_addr, &format!("/v1/players/{p}"));
        assert_eq!(want_status, 200);
        let (as_of, got) = without_as_of(got);
        let (_, want) = without_as_of(want);
        assert_eq!(got, want, "player {p} (worker {})", owner(p));
        let as_of = as_of.and_then(|a| a.as_u64()).expect("an as_of");
        assert!(as_of <= last_time + 1_000_000, "player {p}: as_of {as_of}");
        // Why-explanations come from the same state.
        let hunt = huntflow::model::hunt::Hunt::load(&g.hunt).unwrap();
        if let Some(r) = hunt.rewards.first() {
            let path = format!("/v1/players/{p}/why/{}", r.id);
            let (status, got) = json(&addr, &path);
            assert_eq!(status, 200, "{path}: {got}");
            assert!(got["as_of"].is_u64(), "{path}: {got}");
            let (_, want) = json(&one_addr, &path);
            assert_eq!(got["conditions"], want["conditions"], "{path}");
        }
    }
    let (status, _) = json(&addr, "/v1/players/nobody-at-all");
    assert_eq!(status, 404);
    // Positions: every player that ever had one, listed from both processes.
    let path = "/v1/positions?since=0&limit=100000";
    let (status, got) = json(&addr, path);
    assert_eq!(status, 200, "{got}");
    let (_, want) = json(&one_addr, path);
    assert_eq!(got, want, "{path}");
    let listed =
        got["removed"].as_array().unwrap().len() + got["positions"].as_array().unwrap().len();
    assert!(listed > remote.len() / 2, "{listed} players listed");
    // Paged: the pages together are the whole list.
    let names = |page: &Value| -> Vec<String> {
        let mut n: Vec<String> = page["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .chain(
                page["positions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[0].as_str().unwrap().to_string()),
            )
            .collect();
        n.sort();
        n
    };
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/v1/positions?since=0&limit=7".to_string(),
            Some(a) => format!("/v1/positions?since=0&limit=7&after={a}"),
        };
        let (status, page) = json(&addr, &path);
        assert_eq!(status, 200, "{path}: {page}");
        assert!(names(&page).len() <= 7);
        paged.extend(names(&page));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, names(&got));
    stop(one);
    // Process 1 stops when process 0 does, with status 0: its work was done.
    let mut cluster = cluster;
    let one_proc = cluster.pop().unwrap();
    stop(cluster);
    let out = wait(
        one_proc,
        Duration::from_secs(15),
        "process 1 after process 0 stopped",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
