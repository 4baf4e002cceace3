//! What the live map needs: `GET /` (the page, with its style and script
//! embedded), `GET /v1/positions` (current positions, changed since a
//! time, paged) and `GET /v1/hunt` (the hunt in effect, zones as GeoJSON).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::http::error;
use super::{Live, Timer};
use crate::dataflow::player_state::Spot;
use crate::model::event::Id;
use crate::model::hunt::{Hunt, Reward};
use crate::model::zones::Shape;

/// Positions per answer unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 10_000;
pub const MAX_LIMIT: usize = 100_000;

static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("map/index.html")
        .replace("/*STYLE*/", include_str!("map/map.css"))
        .replace(
            "/*SCRIPT*/",
            &[include_str!("map/draw.js"), include_str!("map/live.js")].join("\n"),
        )
});

/// The map page: one HTML document with its style and script inside.
pub fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

pub async fn index(State(live): State<Arc<Live>>) -> Response {
    let t = Timer::start();
    let r = page();
    t.done(&live, "page");
    r
}

/// One page of positions at `as_of`.
pub struct Positions {
    pub as_of: Option<u64>,
    /// Sorted by player.
    pub positions: Vec<(Id, Spot)>,
    /// Sorted by player.
    pub removed: Vec<Id>,
    /// The last player listed, when more follow.
    pub next: Option<Id>,
}

/// Players found in a listing, sorted: the first `limit` after `after`,
/// and whether more follow.
pub type Found = (Vec<(Id, Option<Spot>)>, bool);

impl Positions {
    /// The page of `found` (sorted) at `at`.
    pub fn page(at: Option<u64>, found: Found) -> Positions {
        let (found, more) = found;
        let next = more.then(|| found.last().map(|f| f.0.clone())).flatten();
        let (mut positions, mut removed) = (Vec::new(), Vec::new());
        for (player, spot) in found {
            match spot {
                Some(s) => positions.push((player, s)),
                None => removed.push(player),
            }
        }
        Positions {
            as_of: at,
            positions,
            removed,
            next,
        }
    }
}

/// Keeps the `limit` first of `found` by player, sorted; says whether
/// there were more.
pub fn first(mut found: Vec<(Id, Option<Spot>)>, more: bool, limit: usize) -> Found {
    let over = found.len() > limit;
    if over {
        found.select_nth_unstable_by(limit, |a, b| a.0.cmp(&b.0));
        found.truncate(limit);
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    (found, more || over)
}

impl Live {
    /// The players whose position at one complete time changed after
    /// `since` (all with a position when `None`), from the first after
    /// `after`, at most `limit`.
    pub fn positions(&self, since: Option<u64>, after: Option<&str>, limit: usize) -> Positions {
        let ended = self.state.read().map(|s| s.complete).unwrap_or(false);
        let _reading = self.reading.lock().expect("positions lock");
        self.peers.pinned(ended, |at| {
            let found = match at {
                Some(at) => self.positions_at(at, since, after, limit),
                None => (Vec::new(), false),
            };
            Positions::page(at, found)
        })
    }

    /// This process's part of a listing at `at`, which must be final in
    /// every store and pinned ([`Peers::pinned`](crate::dataflow::player_store::Peers::pinned)).
    pub fn positions_at(
        &self,
        at: u64,
        since: Option<u64>,
        after: Option<&str>,
        limit: usize,
    ) -> Found {
        let stores = self.players_read();
        let mut found: Vec<(Id, Option<Spot>)> = Vec::new();
        for store in stores.iter() {
            store.positions_at(at, since, |player, spot, _| {
                if after.is_none_or(|a| player.as_str() > a) {
                    found.push((player.clone(), spot));
                }
            });
        }
        first(found, false, limit)
    }
}

/// The answer of `GET /v1/positions` (keys sorted, as in every answer).
#[derive(Serialize)]
struct PositionsBody<'a> {
    as_of: Option<u64>,
    next: Option<&'a str>,
    positions: Vec<(&'a str, f64, f64, u64)>,
    removed: Vec<&'a str>,
}

fn number<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, String> {
    q.get(key)
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{key} must be a non-negative integer"))
        })
        .transpose()
}

pub async fn positions(
    State(live): State<Arc<Live>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = Timer::start();
    if let Some(bad) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "since" | "after" | "limit"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter {bad:?}"),
        );
    }
    let (since, limit) = match (number::<u64>(&q, "since"), number::<usize>(&q, "limit")) {
        (Ok(s), Ok(l)) => (s, l.unwrap_or(DEFAULT_LIMIT)),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be in 1..={MAX_LIMIT}"),
        );
    }
    let after = q.get("after").map(String::as_str);
    let page = match live.find_positions(since, after, limit).await {
        Ok(page) => page,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let body = PositionsBody {
        as_of: page.as_of,
        next: page.next.as_deref(),
        positions: page
            .positions
            .iter()
            .map(|(p, (lat, lon, ts))| (p.as_str(), *lat, *lon, *ts))
            .collect(),
        removed: page.removed.iter().map(Id::as_str).collect(),
    };
    let r = Json(body).into_response();
    t.done(&live, "positions");
    r
}

/// `[lon, lat]` pairs of a ring.
fn ring(r: &geo::LineString<f64>) -> Value {
    Value::Array(r.0.iter().map(|c| json!([c.x, c.y])).collect())
}

fn polygon(p: &geo::Polygon<f64>) -> Value {
    let mut rings = vec![ring(p.exterior())];
    rings.extend(p.interiors().iter().map(ring));
    Value::Array(rings)
}

/// A zone as GeoJSON geometry: a circle is a Point with `radius_m`
/// beside it.
fn zone_json(id: &str, priority: u8, shape: &Shape) -> Value {
    match shape {
        Shape::Circle { lat, lon, radius_m } => json!({"id": id, "priority": priority,
            "geometry": {"type": "Point", "coordinates": [lon, lat]}, "radius_m": radius_m}),
        Shape::Polygons(mp) => {
            let geometry = match &mp.0[..] {
                [one] => json!({"type": "Polygon", "coordinates": polygon(one)}),
                many => json!({"type": "MultiPolygon",
                    "coordinates": many.iter().map(polygon).collect::<Vec<_>>()}),
            };
            json!({"id": id, "priority": priority, "geometry": geometry})
        }
    }
}

fn reward_json(hunt: &Hunt, r: &Reward) -> Value {
    json!({
        "id": r.id,
        "priority": r.priority,
        "zone": r.zone.map(|z| &hunt.zones[z as usize].id),
        "requires": r.requires.iter().map(|&c| &hunt.clues[c as usize]).collect::<Vec<_>>(),
        "sensor": r.sensor.map(|s| json!({"id": hunt.sensors[s.sensor as usize], "min": s.min, "max": s.max})),
        "active": r.active.map(|w| json!({"from": w.from, "until": w.until})),
    })
}

/// The hunt as `GET /v1/hunt` shows it.
pub fn hunt_json(hunt: &Hunt) -> Value {
    json!({
        "name": hunt.name,
        "max_lateness_ms": hunt.max_lateness_ms,
        "position_ttl_ms": hunt.position_ttl_ms,
        "sensor_ttl_ms": hunt.sensor_ttl_ms,
        "max_accuracy_m": hunt.max_accuracy_m,
        "zones": hunt.zones.iter().map(|z| zone_json(&z.id, z.priority, &z.shape)).collect::<Vec<_>>(),
        "rewards": hunt.rewards.iter().map(|r| reward_json(hunt, r)).collect::<Vec<_>>(),
    })
}

/// `GET /v1/hunt`: the hunt version in effect at `as_of`, with its
/// effective time, and the accepted versions not yet in effect.
pub async fn hunt(State(live): State<Arc<Live>>) -> Response {
    let t = Timer::start();
    let as_of = live.state.read().expect("state lock").as_of;
    let v = live.version_at(as_of);
    let pending: Vec<Value> = {
        let versions = live.versions.read().expect("versions lock");
        versions
            .after(as_of.unwrap_or(0))
            .map(|p| json!({"effective": p.effective, "name": p.hunt.name}))
            .collect()
    };
    let body = json!({"as_of": as_of, "effective": v.effective, "hunt": hunt_json(&v.hunt),
        "pending": pending});
    let r = Json(body).into_response();
    t.done(&live, "hunt");
    r
}

#[cfg(test)]
mod tests {
    use crate::dataflow::player_state::Interpreted;
    use crate::dataflow::player_store::{Peers, PlayerStore};
    use crate::model::event::{Event, Fact};
    use crate::model::versions::Versions;
    use std::sync::Arc;

    /// `player` reports `lat` at `t` (expiring at `expires`) to `store`,
    /// which then has got through `t`.
    fn at(store: &PlayerStore, player: &str, t: u64, lat: f64, expires: u64) {
        let id: crate::model::event::Id = player.into();
        let mut shard = store.lock(player);
        let state = shard.entry(&id, true);
        state.expire(t);
        let text = crate::model::hunt::HuntText {
            toml: String::new(),
            geojson: None,
        };
        let hunt = crate::model::hunt::Hunt::parse(std::path::Path::new("t.toml"), text)
            .expect("an empty hunt");
        let v = Versions::new(hunt).at(0).clone();
        let event = Event {
            ts: t,
            player: id.clone(),
            fact: Fact::Position {
                id: format!("{player}-{t}").into(),
                lat,
                lon: 2.0,
                ttl: Some(expires - t),
            },
        };
        state.apply(Interpreted::of(event, &v).expect("a position"));
        drop(shard);
        store.through(t);
    }

    fn list(
        peers: &Peers,
        stores: &[&PlayerStore],
        since: Option<u64>,
    ) -> (Option<u64>, Vec<String>) {
        peers.pinned(false, |t| {
            let mut out = Vec::new();
            if let Some(t) = t {
                for s in stores {
                    s.positions_at(t, since, |p, spot, _| {
                        out.push(format!(
                            "{p}:{}",
                            spot.map_or("-".into(), |s| s.0.to_string())
                        ));
                    });
                }
            }
            out.sort();
            (t, out)
        })
    }

    /// A worker ahead of another lists its players as they were at the
    /// time both have got through, whatever it did since.
    #[test]
    fn positions_are_read_back_at_the_time_every_worker_has_reached() {
        let peers = Arc::new(Peers::new());
        let (a, b) = (PlayerStore::serving(&peers), PlayerStore::serving(&peers));
        assert_eq!(list(&peers, &[&a, &b], None), (None, vec![]));
        at(&a, "x", 10, 1.0, 1000);
        at(&b, "y", 10, 5.0, 15);
        // `a` runs ahead: x moves twice, z appears; `b` stays at 10.
        at(&a, "x", 20, 2.0, 1000);
        at(&a, "z", 25, 9.0, 1000);
        at(&a, "x", 30, 3.0, 1000);
        let both = [&a, &b];
        assert_eq!(
            list(&peers, &both, None),
            (Some(10), vec!["x:1".into(), "y:5".into()])
        );
        assert_eq!(list(&peers, &both, Some(9)).1, ["x:1", "y:5"]);
        assert_eq!(list(&peers, &both, Some(10)).1, Vec::<String>::new());
        // `b` reaches 22: y expired at 15, x had moved once, z not yet.
        {
            let id: crate::model::event::Id = "y".into();
            let mut shard = b.lock("y");
            shard.get_mut(&id).unwrap().expire(15);
        }
        b.through(22);
        assert_eq!(list(&peers, &both, None), (Some(22), vec!["x:2".into()]));
        assert_eq!(list(&peers, &both, Some(10)).1, ["x:2", "y:-"]);
        b.through(40);
        assert_eq!(list(&peers, &both, Some(20)).1, ["x:3", "z:9"]);
        assert_eq!(list(&peers, &both, Some(14)).1, ["x:3", "y:-", "z:9"]);
        assert_eq!(list(&peers, &both, Some(25)).1, ["x:3"]);
    }
}
