//! The rounds of the query bench: every load once per round, each in a
//! backfill of its own, and what they gave, printed and appended to the
//! results file.

use std::io::Write;

use super::common::{results_file, Quantiles};
use super::{backfill, workers, Load};

/// Every load once per round, in separate backfills of the 1M dataset.
pub fn rounds(bin: &str, hunt: &std::path::Path, parts: &[std::path::PathBuf], loads: &[Load]) {
    let mut walls = vec![Vec::new(); loads.len()];
    let mut latencies = vec![Vec::new(); loads.len()];
    let mut server = vec![None::<f64>; loads.len()];
    let mut cpus = vec![Vec::new(); loads.len()];
    let mut pages = vec![[0u64; 2]; loads.len()];
    let rounds: usize = std::env::var("HUNTFLOW_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for round in 0..rounds {
        for k in 0..loads.len() {
            let i = (round + k) % loads.len();
            let run = backfill(bin, hunt, parts, loads[i]);
            walls[i].push(run.wall);
            cpus[i].push((run.cpu, run.latencies.len()));
            pages[i][0] += run.page[0];
            pages[i][1] += run.page[1];
            latencies[i].extend(run.latencies);
            server[i] = match (server[i], run.server_p99) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let median = |mut w: Vec<f64>| {
        w.sort_by(f64::total_cmp);
        w[w.len() / 2]
    };
    let (path, mut results) = results_file();
    println!(
        "backfill 1M -w{}, {rounds} rounds: median wall (min-max), median slowdown against \
         plain in the same round; query latency in ms",
        workers()
    );
    for (i, &load) in loads.iter().enumerate() {
        let wall = median(walls[i].clone());
        let (lo, hi) = walls[i]
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
        let ratios = walls[i].iter().zip(&walls[0]).map(|(w, p)| w / p - 1.0);
        let slowdown = median(ratios.collect());
        let mut line = format!(
            "{:>23}: {wall:.2} s ({lo:.2}-{hi:.2}) {:+.1}%",
            load.name(),
            slowdown * 100.0
        );
        let mut json = format!(
            "{{\"bench\":\"query\",\"workers\":{},\"load\":\"{}\",\"wall_s\":{wall:.3},\"walls_s\":{:?},\"slowdown\":{slowdown:.4}",
            workers(),
            load.name(),
            walls[i]
        );
        let l = std::mem::take(&mut latencies[i]);
        if matches!(load, Load::Page) && !l.is_empty() {
            let q = Quantiles::of(l, "positions rounds");
            let [events, positions] = pages[i].map(|n| n / rounds as u64);
            line += &format!(
                "; per backfill {events} subscription events, {positions} positions; \
                 {} positions rounds: p50 {:.3} p99 {:.3} max {:.3}",
                q.count, q.p50, q.p99, q.max
            );
            json += &format!(
                ",\"events_per_run\":{events},\"positions_per_run\":{positions},\"rounds\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4}",
                q.count, q.p50, q.p99, q.max
            );
        } else if !l.is_empty() {
            let q = Quantiles::of(l, "queries answered");
            line += &format!(
                "; {} queries: p50 {:.3} p99 {:.3} max {:.3}",
                q.count, q.p50, q.p99, q.max
            );
            json += &format!(
                ",\"queries\":{},\"p50_ms\":{:.4},\"p99_ms\":{:.4},\"max_ms\":{:.4}",
                q.count, q.p50, q.p99, q.max
            );
        }
        if let Some(s) = server[i] {
            line += &format!("; server p99 <= {s} ms");
            json += &format!(",\"server_p99_ms_at_most\":{s}");
        }
        // CPU: the job's median, and the HTTP and client threads' per query.
        let job = median(cpus[i].iter().map(|(c, _)| c[0]).collect());
        line += &format!("\n{:>23}  CPU: job {job:.2} s", "");
        json += &format!(",\"job_cpu_s\":{job:.3}");
        let queries: usize = cpus[i].iter().map(|(_, n)| n).sum();
        if queries > 0 {
            let per =
                |k: usize| cpus[i].iter().map(|(c, _)| c[k]).sum::<f64>() / queries as f64 * 1e6;
            let (http, client) = (per(1), per(2));
            let per = if matches!(load, Load::Page) {
                "round"
            } else {
                "query"
            };
            line += &format!(", per {per}: HTTP thread {http:.0} µs, client {client:.0} µs");
            json += &format!(
                ",\"http_cpu_us_per_query\":{http:.1},\"client_cpu_us_per_query\":{client:.1}"
            );
        }
        println!("{line}");
        writeln!(results, "{json}}}").expect("write result");
    }
    eprintln!("results appended to {}", path.display());
}
