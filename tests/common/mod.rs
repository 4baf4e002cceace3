//! Shared test helpers: scratch directories, hunt files and output comparison.
#![allow(dead_code)]

pub mod reference;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use huntflow::hunt::Hunt;

/// A scratch directory removed when dropped (kept when `HUNTFLOW_KEEP_SCRATCH` is set).
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    /// A fresh, empty directory under the system temporary directory.
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("huntflow-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch directory");
        Scratch { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("HUNTFLOW_KEEP_SCRATCH").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes `toml` as `hunt.toml` in `dir` and loads it.
pub fn load_hunt(dir: &Path, toml: &str) -> Hunt {
    let path = dir.join("hunt.toml");
    std::fs::write(&path, toml).expect("write hunt");
    Hunt::load(&path).unwrap_or_else(|e| panic!("hunt does not load: {e}\n{toml}"))
}

/// Panics with the first differing line (and some context) when the two
/// outputs are not byte-identical.
pub fn assert_same_output(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let exp: Vec<&str> = expected.split_inclusive('\n').collect();
    let act: Vec<&str> = actual.split_inclusive('\n').collect();
    let first = exp
        .iter()
        .zip(&act)
        .position(|(a, b)| a != b)
        .unwrap_or(exp.len().min(act.len()));
    let from = first.saturating_sub(5);
    let show = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take(first - from + 6)
            .map(|(i, l)| {
                format!(
                    "{}{:>6}: {}",
                    if i == first { ">" } else { " " },
                    i + 1,
                    l.trim_end()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{what}: outputs differ at line {} (expected {} lines, got {})\n--- expected\n{}\n--- actual\n{}",
        first + 1,
        exp.len(),
        act.len(),
        show(&exp),
        show(&act)
    );
}
