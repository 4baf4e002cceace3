//! The axum router: point queries, the subscription stream, metrics and
//! health (the map's endpoints are in [`super::map`], the token in
//! [`super::auth`]). Every answer says the logical time it describes
//! (`as_of`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::Token;
use super::feed::{format_id, parse_id, EventId, FeedEvent, Read};
use super::metrics::KINDS;
use super::state::LiveState;
use super::{Live, Timer};
use crate::dataflow::facts::FactKind;
use crate::dataflow::player_state::PlayerView;

type Shared = State<Arc<Live>>;

/// The API's routes; with a `token`, all but `/healthz` want it.
pub fn router(live: Arc<Live>, token: Option<Arc<Token>>) -> Router {
    let router = Router::new()
        .route("/", get(super::map::index))
        .route("/healthz", get(healthz))
        .route("/v1/positions", get(super::map::positions))
        .route("/v1/hunt", get(super::map::hunt))
        .route("/metrics", get(metrics))
        .route("/v1/players/{id}", get(player))
        .route("/v1/players/{id}/why/{reward}", get(why))
        .route("/v1/zones", get(zones))
        .route("/v1/zones/{id}", get(zone))
        .route("/v1/rewards/{id}", get(reward))
        .route("/v1/subscribe", get(subscribe))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(live);
    match token {
        None => router,
        Some(token) => router.layer(axum::middleware::from_fn_with_state(
            token,
            super::auth::require,
        )),
    }
}

pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn as_of(s: &LiveState) -> Value {
    json!(s.as_of)
}

/// `GET /healthz`: the latest complete time, whether every time is, the
/// records read so far and how far the answers trail the latest event time
/// read (ms).
async fn healthz(State(live): Shared) -> Response {
    let t = Timer::start();
    let latest = live
        .stats
        .partitions
        .lock()
        .ok()
        .and_then(|parts| parts.values().filter_map(|p| p.latest).max());
    let read = live.stats.read.load(std::sync::atomic::Ordering::Relaxed);
    let s = live.state.read().expect("state lock");
    let lag = latest.map(|l| l.saturating_sub(s.as_of.unwrap_or(0)));
    let r = Json(
        json!({"status": "ok", "as_of": as_of(&s), "complete": s.complete,
        "event_time_lag_ms": lag, "records_read": read}),
    )
    .into_response();
    drop(s);
    t.done(&live, "healthz");
    r
}

/// A player's position as answers show it (keys in the order of the other
/// answers' objects: sorted).
#[derive(Serialize)]
struct PositionBody<'a> {
    expires: u64,
    id: &'a str,
    lat: f64,
    lon: f64,
    ts: u64,
}

fn position_body(view: Option<&PlayerView>) -> Option<PositionBody<'_>> {
    let p = view?.position.as_ref()?;
    Some(PositionBody {
        expires: p.expires,
        id: p.id.as_str(),
        lat: p.lat,
        lon: p.lon,
        ts: p.ts,
    })
}

/// The answer of `GET /v1/players/{id}`, serialised straight from borrowed
/// state (the most frequent query: no intermediate JSON tree).
#[derive(Serialize)]
struct PlayerBody<'a> {
    as_of: u64,
    claimed: Vec<&'a str>,
    eligible: Vec<&'a str>,
    player: &'a str,
    position: Option<PositionBody<'a>>,
    readings: Vec<ReadingBody<'a>>,
    solved: Vec<SolvedBody<'a>>,
    zones: Vec<&'a str>,
}

#[derive(Serialize)]
struct ReadingBody<'a> {
    expires: u64,
    id: &'a str,
    sensor: &'a str,
    ts: u64,
    value: f64,
}

#[derive(Serialize)]
struct SolvedBody<'a> {
    clue: &'a str,
    expires: Option<u64>,
}

async fn player(State(live): Shared, Path(id): Path<String>) -> Response {
    let t = Timer::start();
    let r = match live.find_player(&id).await {
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown player {id:?}")),
        Ok(Some(a)) => {
            let v = live.version_at(Some(a.as_of));
            let versions = live.versions.read().expect("versions lock");
            let dict = versions.dictionary();
            let view = a.view.as_ref();
            let mut zones: Vec<&str> = a.zones().map(|z| dict.zones.id(z).as_str()).collect();
            zones.sort_unstable();
            let mut claimed: Vec<&str> = view
                .into_iter()
                .flat_map(|v| &v.claims)
                .map(|&r| dict.rewards.id(r).as_str())
                .collect();
            claimed.sort_unstable();
            let mut readings: Vec<ReadingBody<'_>> = view
                .into_iter()
                .flat_map(|v| &v.readings)
                .map(|r| ReadingBody {
                    expires: r.expires,
                    id: r.id.as_str(),
                    sensor: dict.sensors.id(r.sensor),
                    ts: r.ts,
                    value: r.value,
                })
                .collect();
            readings.sort_unstable_by(|a, b| a.sensor.cmp(b.sensor));
            let mut solved: Vec<SolvedBody<'_>> = view
                .into_iter()
                .flat_map(|v| &v.solves)
                .map(|&(c, expires)| SolvedBody {
                    clue: dict.clues.id(c),
                    expires,
                })
                .collect();
            solved.sort_unstable_by(|a, b| a.clue.cmp(b.clue));
            let body = PlayerBody {
                as_of: a.as_of,
                claimed,
                eligible: v
                    .rules
                    .iter()
                    .filter(|rule| a.eligible(&v, rule.reward))
                    .map(|rule| dict.rewards.id(rule.reward).as_str())
                    .collect(),
                player: &id,
                position: position_body(view),
                readings,
                solved,
                zones,
            };
            Json(body).into_response()
        }
    };
    t.done(&live, "player");
    r
}

async fn why(State(live): Shared, Path((id, reward)): Path<(String, String)>) -> Response {
    let t = Timer::start();
    let a = match live.find_player(&id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            t.done(&live, "why");
            return error(StatusCode::NOT_FOUND, format!("unknown player {id:?}"));
        }
        Err(e) => {
            t.done(&live, "why");
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let v = live.version_at(Some(a.as_of));
    let r = match v.reward(&reward).and_then(|rn| v.rule(rn)) {
        None => error(StatusCode::NOT_FOUND, format!("unknown reward {reward:?}")),
        Some(rule) => {
            let versions = live.versions.read().expect("versions lock");
            let dict = versions.dictionary();
            let view = a.view.as_ref();
            let mut conditions = Vec::new();
            if let Some(z) = rule.zone {
                conditions.push(
                    json!({"condition": "zone", "zone": dict.zones.id(z).as_str(),
                    "holds": a.has(FactKind::Presence, z), "position": position_body(view)}),
                );
            }
            for &c in &rule.clues {
                let solve = view.and_then(|v| v.solves.iter().find(|(sc, _)| *sc == c));
                conditions.push(
                    json!({"condition": "clue", "clue": dict.clues.id(c).as_str(),
                    "holds": solve.is_some(), "solve": solve.map(|(_, e)| json!({"expires": e}))}),
                );
            }
            if let Some((s, cond)) = &rule.sensor {
                let reading = view.and_then(|v| v.readings.iter().find(|r| r.sensor == *s));
                conditions.push(json!({"condition": "sensor",
                    "sensor": dict.sensors.id(*s).as_str(), "min": cond.min, "max": cond.max,
                    "holds": reading.is_some_and(|r| cond.holds(r.value)),
                    "reading": reading.map(|r| json!({"value": r.value, "id": r.id.as_str(), "ts": r.ts, "expires": r.expires}))}));
            }
            if let Some(w) = &rule.window {
                conditions.push(
                    json!({"condition": "window", "from": w.from, "until": w.until,
                    "holds": w.contains(a.as_of)}),
                );
            }
            let claimed = view.is_some_and(|v| v.claims.contains(&rule.reward));
            conditions.push(json!({"condition": "not_claimed", "holds": !claimed}));
            Json(json!({"as_of": a.as_of, "player": id, "reward": reward,
                "eligible": a.eligible(&v, rule.reward), "conditions": conditions}))
            .into_response()
        }
    };
    t.done(&live, "why");
    r
}

async fn zones(State(live): Shared) -> Response {
    let t = Timer::start();
    let s = live.state.read().expect("state lock");
    let v = live.version_at(s.as_of);
    let zones: Vec<Value> = v
        .hunt
        .zones
        .iter()
        .map(|z| json!({"zone": z.id, "occupancy": s.occupancy(&z.id)}))
        .collect();
    let r = Json(json!({"as_of": as_of(&s), "zones": zones})).into_response();
    drop(s);
    t.done(&live, "zones");
    r
}

/// The answer of `GET /v1/zones/{id}` (keys sorted, as in every answer).
#[derive(Serialize)]
struct ZoneBody<'a> {
    as_of: Option<u64>,
    occupancy: i64,
    players: Vec<&'a str>,
    zone: &'a str,
}

async fn zone(State(live): Shared, Path(id): Path<String>) -> Response {
    let t = Timer::start();
    let s = live.state.read().expect("state lock");
    let v = live.version_at(s.as_of);
    let r = match v.hunt.zone_number(&id) {
        None => error(StatusCode::NOT_FOUND, format!("unknown zone {id:?}")),
        Some(_) => Json(ZoneBody {
            as_of: s.as_of,
            occupancy: s.occupancy(&id),
            players: s.players_in(&id),
            zone: &id,
        })
        .into_response(),
    };
    drop(s);
    t.done(&live, "zone");
    r
}

async fn reward(State(live): Shared, Path(id): Path<String>) -> Response {
    let t = Timer::start();
    let s = live.state.read().expect("state lock");
    let v = live.version_at(s.as_of);
    let r = match v.hunt.reward_number(&id) {
        None => error(StatusCode::NOT_FOUND, format!("unknown reward {id:?}")),
        Some(_) => {
            let players = s.players_eligible(&id);
            Json(json!({"as_of": as_of(&s), "reward": id, "eligible": players})).into_response()
        }
    };
    drop(s);
    t.done(&live, "reward");
    r
}

/// Subscription filters.
struct Filter {
    kinds: Option<Vec<String>>,
    player: Option<String>,
    zone: Option<String>,
    reward: Option<String>,
}

impl Filter {
    fn matches(&self, e: &FeedEvent) -> bool {
        if e.note.is_none() {
            return true;
        }
        self.kinds
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == e.kind()))
            && self
                .player
                .as_ref()
                .is_none_or(|p| e.player() == Some(p.as_str()))
            && self.zone.as_deref().is_none_or(|z| e.zone() == Some(z))
            && self.reward.as_deref().is_none_or(|r| e.reward() == Some(r))
    }
}

fn parse_filter(live: &Live, q: &HashMap<String, String>) -> Result<Filter, String> {
    for key in q.keys() {
        if !matches!(
            key.as_str(),
            "kind" | "player" | "zone" | "reward" | "last_event_id" | "access_token"
        ) {
            return Err(format!("unknown parameter {key:?}"));
        }
    }
    let kinds = match q.get("kind") {
        None => None,
        Some(k) => {
            let kinds: Vec<String> = k.split(',').map(str::to_string).collect();
            if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(format!(
                    "unknown kind {bad:?} (one of {})",
                    KINDS.join(", ")
                ));
            }
            Some(kinds)
        }
    };
    // An item of any version of the hunt, past or present.
    let versions = live.versions.read().expect("versions lock");
    let dict = versions.dictionary();
    let zone = match q.get("zone") {
        Some(z) if dict.zones.number(z).is_none() => return Err(format!("unknown zone {z:?}")),
        z => z.cloned(),
    };
    let reward = match q.get("reward") {
        Some(r) if dict.rewards.number(r).is_none() => return Err(format!("unknown reward {r:?}")),
        r => r.cloned(),
    };
    Ok(Filter {
        kinds,
        player: q.get("player").cloned(),
        zone,
        reward,
    })
}

fn sse_event(e: &FeedEvent) -> Event {
    Event::default()
        .id(format_id(e.id))
        .event(e.event())
        .data(e.data())
}

async fn subscribe(
    State(live): Shared,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let filter = match parse_filter(&live, &q) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // The header, or (for a client that cannot set it) the parameter.
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or(""))
        .or(q.get("last_event_id").map(String::as_str));
    let cursor: Option<EventId> = match last {
        None => None,
        Some(v) => match parse_id(v) {
            Some(id) => Some(id),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID must look like TIME-INDEX".into(),
                )
            }
        },
    };
    live.metrics.http("subscribe", Duration::ZERO);
    let stream = futures_util::stream::unfold(
        (live, filter, cursor, false),
        |(live, filter, cursor, done)| async move {
            if done {
                return None;
            }
            loop {
                let outcome = {
                    let notified = live.feed.notify.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    match live.feed.read(cursor, 1024) {
                        Read::Events(events) if events.is_empty() => {
                            notified.await;
                            None
                        }
                        read => Some(read),
                    }
                };
                match outcome {
                    None => continue,
                    Some(Read::Gone { oldest }) => {
                        let data = json!({"error": "the events after Last-Event-ID are no longer retained",
                            "oldest": oldest.map(format_id)});
                        let ev = Event::default().event("error").data(data.to_string());
                        return Some((vec![Ok::<_, Infallible>(ev)], (live, filter, cursor, true)));
                    }
                    Some(Read::Events(events)) => {
                        let next = events.last().map(|e| e.id);
                        let out: Vec<Result<Event, Infallible>> = events
                            .iter()
                            .filter(|e| filter.matches(e))
                            .map(|e| Ok(sse_event(e)))
                            .collect();
                        return Some((out, (live, filter, next, false)));
                    }
                }
            }
        },
    );
    let stream = futures_util::StreamExt::flat_map(stream, futures_util::stream::iter);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

async fn metrics(State(live): Shared) -> Response {
    let t = Timer::start();
    let out = super::metrics::exposition(&live);
    t.done(&live, "metrics");
    (
        [(
            "content-type",
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        out,
    )
        .into_response()
}
