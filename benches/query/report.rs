//! What the windows runs print and append to the results: one run's or
//! pooled windows, and the difference between two loads that took turns.

use std::io::Write;

use rand::{Rng, SeedableRng};

use super::common::{quantile, results_file, Quantiles};
use super::windows::{Beside, Windows, RATE};

/// The median of `v` (unsorted), if it has any.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (!s.is_empty()).then(|| quantile(&s, 0.5))
}

/// The median slowdown of two loads' windows pooled over the runs `pick`ed,
/// the first's less the second's.
fn pooled_difference(runs: [&[Vec<f64>]; 2], pick: &[usize]) -> Option<f64> {
    let pool = |r: &[Vec<f64>]| -> Vec<f64> { pick.iter().flat_map(|&i| r[i].clone()).collect() };
    Some(median(&pool(runs[0]))? - median(&pool(runs[1]))?)
}

/// Prints (and appends to the results) how much more the first of two
/// loads that took turns slowed ingestion than the second: the difference
/// of their medians over the pooled windows, with a 90% bootstrap interval
/// (the runs resampled, seeded), and the difference of each run's medians.
pub fn difference(workers: usize, pair: &[Beside], runs: [&Vec<Vec<f64>>; 2]) {
    const RESAMPLES: usize = 2000;
    let n = runs[0].len().min(runs[1].len());
    let all: Vec<usize> = (0..n).collect();
    let runs = [&runs[0][..n], &runs[1][..n]];
    let Some(d) = pooled_difference(runs, &all) else {
        return;
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut resampled: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            pooled_difference(runs, &pick)
        })
        .collect();
    resampled.sort_by(f64::total_cmp);
    let (lo, hi) = (quantile(&resampled, 0.05), quantile(&resampled, 0.95));
    let per_run: Vec<f64> = runs[0]
        .iter()
        .zip(runs[1])
        .filter_map(|(a, b)| Some(median(a)? - median(b)?))
        .collect();
    let pct = |x: f64| format!("{:+.1}", x * 100.0);
    let each: Vec<String> = per_run.iter().map(|&x| pct(x)).collect();
    println!(
        "-w{workers}, {} against {}, taking turns in {n} runs: difference of the pooled \
         medians {} points (90% bootstrap interval over the runs {}..{}); median of the \
         runs' differences {}; per run {}",
        pair[0].name(RATE),
        pair[1].name(RATE),
        pct(d),
        pct(lo),
        pct(hi),
        median(&per_run).map_or("-".into(), pct),
        each.join(" ")
    );
    let (_, mut results) = results_file();
    writeln!(
        results,
        "{{\"bench\":\"query-windows-difference\",\"workers\":{workers},\"first\":\"{}\",\
         \"second\":\"{}\",\"runs\":{n},\"difference\":{d:.4},\"interval_90\":[{lo:.4},{hi:.4}],\
         \"run_differences\":{per_run:?}}}",
        pair[0].name(RATE),
        pair[1].name(RATE),
    )
    .expect("write result");
}

/// Prints one run's windows (or, given its runs' medians, the windows
/// pooled over runs) and appends them to the results.
pub fn report(workers: usize, load: &str, w: &Windows, run_medians: Option<&[f64]>) {
    let n = w.slowdowns.len();
    if n == 0 {
        eprintln!("alternating windows ({load}): the backfill was too short to compare windows");
        return;
    }
    let mut sorted = w.slowdowns.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| quantile(&sorted, f);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (off, on) = (mean(&w.rates[0]), mean(&w.rates[1]));
    let pct = |x: f64| format!("{:+.1}%", x * 100.0);
    let (head, bench) = match run_medians {
        None => ("backfill 10M".to_string(), "query-windows"),
        Some(m) => (
            format!("pooled over {} runs", m.len()),
            "query-windows-pooled",
        ),
    };
    let mut line = format!(
        "{head} -w{workers}, {load} in every other 1 s window: {n} windows with it, \
         slowdown against the windows around them: median {} (quartiles {}..{}); \
         mean ingestion {off:.0} event-ms/s without, {on:.0} with",
        pct(q(0.5)),
        pct(q(0.25)),
        pct(q(0.75)),
    );
    let mut json = format!(
        "{{\"bench\":\"{bench}\",\"workers\":{workers},\"beside\":\"{load}\",\"windows\":{n},\
         \"slowdown_median\":{:.4},\"slowdown_q1\":{:.4},\"slowdown_q3\":{:.4},\"slowdowns\":{:?}",
        q(0.5),
        q(0.25),
        q(0.75),
        w.slowdowns
    );
    if let Some(m) = run_medians {
        let each: Vec<String> = m.iter().map(|&x| pct(x)).collect();
        line += &format!("; run medians {}", each.join(" "));
        json += &format!(",\"run_medians\":{m:?}");
    }
    if !w.latencies.is_empty() {
        let l = Quantiles::of(w.latencies.clone(), "queries answered");
        line += &format!(
            "; {} queries: p50 {:.3} p99 {:.3} max {:.3}",
            l.count, l.p50, l.p99, l.max
        );
        json += &format!(",\"queries\":{},{}", l.count, l.json());
        let [answering, client] = w.cpu.map(|s| s * 1e6 / l.count as f64);
        line +=
            &format!("; CPU per query: answering thread {answering:.0} us, client {client:.0} us");
        json += &format!(
            ",\"answering_cpu_us_per_query\":{answering:.1},\"client_cpu_us_per_query\":{client:.1}"
        );
    }
    println!("{line}");
    let (path, mut results) = results_file();
    writeln!(results, "{json}}}").expect("write result");
    eprintln!("results appended to {}", path.display());
}
