//! The hunt a state directory was built with (docs/spec.md §9). Its full
//! text is recorded at the job's first start, in `STATE_DIR/hunt/`
//! (`hunt.toml`, and `zones.geojson` when the hunt names one); a job started
//! again with a `--hunt` whose text differs refuses to start, naming the
//! first difference: the saved state refers to the items of the recorded
//! hunt and is never reinterpreted under another. Changes to a running hunt
//! are versions applied at an event time (`huntflow hunt-change`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::RunError;
use crate::model::hunt::{Hunt, HuntText};
use crate::output::OutputError;

const DIR: &str = "hunt";
const TOML: &str = "hunt.toml";
const GEOJSON: &str = "zones.geojson";

/// Records `hunt` in the state directory `root` if it has none; otherwise
/// checks that it is the recorded one.
pub fn check_or_record(root: &Path, hunt: &Hunt) -> Result<(), RunError> {
    match recorded(root)? {
        None => record(root, &hunt.text),
        Some(text) => match first_difference(&text, &hunt.text) {
            None => Ok(()),
            Some(difference) => Err(RunError::HuntChanged {
                state: root.to_owned(),
                given: hunt.path.clone(),
                difference,
            }),
        },
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| OutputError::io(path.display(), e).into()
}

/// The recorded hunt, if any.
fn recorded(root: &Path) -> Result<Option<HuntText>, RunError> {
    let dir = root.join(DIR);
    let toml_path = dir.join(TOML);
    let toml = match fs::read_to_string(&toml_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&toml_path)(e)),
    };
    let geojson_path = dir.join(GEOJSON);
    let geojson = match fs::read_to_string(&geojson_path) {
        Ok(g) => Some(g),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&geojson_path)(e)),
    };
    Ok(Some(HuntText { toml, geojson }))
}

/// Writes `text` into `root/hunt/` at once (a directory renamed into place).
fn record(root: &Path, text: &HuntText) -> Result<(), RunError> {
    fs::create_dir_all(root).map_err(io(root))?;
    let tmp = root.join("hunt.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    write_synced(&tmp.join(TOML), &text.toml)?;
    if let Some(g) = &text.geojson {
        write_synced(&tmp.join(GEOJSON), g)?;
    }
    let dir = root.join(DIR);
    fs::rename(&tmp, &dir).map_err(io(&dir))?;
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io(root))
}

fn write_synced(path: &PathBuf, text: &str) -> Result<(), RunError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(path))
}

/// The first difference between the recorded hunt and the given one, in
/// words; `None` when they are the same.
pub fn first_difference(recorded: &HuntText, given: &HuntText) -> Option<String> {
    if let Some(d) = text_difference(TOML, &recorded.toml, &given.toml) {
        return Some(d);
    }
    match (&recorded.geojson, &given.geojson) {
        (Some(a), Some(b)) => text_difference(GEOJSON, a, b),
        (None, None) => None,
        (Some(_), None) => {
            Some("the recorded hunt has zones in GeoJSON, the given one none".into())
        }
        (None, Some(_)) => {
            Some("the given hunt has zones in GeoJSON, the recorded one none".into())
        }
    }
}

/// The first line where `a` (recorded) and `b` (given) differ.
fn text_difference(name: &str, a: &str, b: &str) -> Option<String> {
    if a == b {
        return None;
    }
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut n = 0;
    loop {
        n += 1;
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(x), Some(y)) => {
                let at = x
                    .char_indices()
                    .zip(y.chars())
                    .find(|((_, cx), cy)| cx != cy)
                    .map_or(x.len().min(y.len()), |((i, _), _)| i);
                return Some(format!(
                    "{name} line {n}: {} recorded, {} given",
                    excerpt(x, at),
                    excerpt(y, at)
                ));
            }
            (Some(x), None) => {
                return Some(format!(
                    "{name} line {n}: {} recorded, nothing given",
                    excerpt(x, 0)
                ))
            }
            (None, Some(y)) => {
                return Some(format!(
                    "{name} line {n}: nothing recorded, {} given",
                    excerpt(y, 0)
                ))
            }
            // Same lines, different line ends.
            (None, None) => return Some(format!("{name}: the line ends differ")),
        }
    }
}

/// Up to 60 characters of `line` around byte `at`, quoted.
fn excerpt(line: &str, at: usize) -> String {
    let mut start = at.saturating_sub(20);
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let shown: String = line[start..].chars().take(60).collect();
    let more = line.len() > start + shown.len();
    format!(
        "{:?}{}{}",
        shown,
        if start > 0 { " (from column " } else { "" },
        if start > 0 {
            format!("{})", line[..start].chars().count() + 1)
        } else if more {
            " …".to_string()
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(toml: &str, geojson: Option<&str>) -> HuntText {
        HuntText {
            toml: toml.into(),
            geojson: geojson.map(str::to_string),
        }
    }

    #[test]
    fn the_first_difference_is_named_by_file_and_line() {
        let a = text("name = \"x\"\n[[zones]]\nid = \"fountain\"\n", None);
        assert_eq!(first_difference(&a, &a.clone()), None);
        let b = text("name = \"x\"\n[[zones]]\nid = \"market\"\n", None);
        assert_eq!(
            first_difference(&a, &b).unwrap(),
            "hunt.toml line 3: \"id = \\\"fountain\\\"\" recorded, \"id = \\\"market\\\"\" given"
        );
        let c = text("name = \"x\"\n", None);
        assert!(first_difference(&a, &c)
            .unwrap()
            .starts_with("hunt.toml line 2: \"[[zones]]\" recorded, nothing given"));
        let g1 = text("name = \"x\"\n", Some("{\"features\":[1]}"));
        let g2 = text("name = \"x\"\n", Some("{\"features\":[2]}"));
        assert!(first_difference(&g1, &g2)
            .unwrap()
            .starts_with("zones.geojson line 1:"));
        assert!(first_difference(&c, &g1).unwrap().contains("GeoJSON"));
    }
}
