//! The API of a cluster: process 0 serves it for the whole job. Zones,
//! rewards, occupancy and the subscription feed come from the notification
//! sink, which is on process 0 already; a player's state lives with the
//! facts operator of the worker that owns the player, on any process. So
//! process 0 asks the other processes, through the cluster's own
//! connections, with a small dataflow of its own beside the job's:
//!
//! ```text
//!  HTTP handler (process 0) ─► Plane::ask ─► Queries source (worker 0) ─exchange(to the first
//!    ▲                                        worker of each process asked)─► Answer: reads
//!    └──────────── Plane::deliver ◄─ Replies (worker 0) ◄─exchange(worker 0)─ that process's stores
//! ```
//!
//! Consistency is the rule of one process: every answer describes one
//! complete time, its `as_of`.
//!
//! - A player: process 0 looks in its own workers' stores, then asks the
//!   others; the store that holds the player answers at
//!   `max(settled, through)`, a time that is complete everywhere.
//! - Positions (`/v1/positions`) are listed at one time for all players:
//!   process 0 first pins every process's stores (each keeps the changes
//!   from its least `through` on readable, and says its least and greatest
//!   `through`); the listing time is then the greatest least `through`
//!   less one (the greatest `through` once the input ended), which every
//!   process can list: a process whose slowest worker has not got there yet
//!   waits until it has (at most [`WAIT`]). Each process returns its first
//!   `limit` players after `after` and unpins; process 0 merges them.
//!
//! The other processes keep running after the backfill, answering, until
//! process 0 stops.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::scheduling::SyncActivator;
use timely::worker::Worker;

use super::map::{first, Found, Positions};
use super::Live;
use crate::dataflow::player_state::Spot;
use crate::dataflow::player_store::PlayerAnswer;
use crate::model::event::Id;

/// How long a process waits for its slowest worker to reach a listing's
/// time, and process 0 for an answer.
pub const WAIT: Duration = Duration::from_secs(20);

/// What process 0 asks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Query {
    /// A player's state.
    Player(String),
    /// Pin the stores for a listing.
    Pin,
    /// List positions at `at` (`None`: only unpin).
    Positions {
        at: Option<u64>,
        ended: bool,
        since: Option<u64>,
        after: Option<String>,
        limit: u64,
    },
}

/// What a process answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Answer {
    Player(Option<PlayerAnswer>),
    /// The least and greatest `through` of the process's stores.
    Pinned {
        least: u64,
        most: u64,
    },
    /// Its first players of the listing, and whether it has more.
    Positions {
        found: Vec<(Id, Option<Spot>)>,
        more: bool,
    },
    Failed(String),
}

/// A query on its way to process `to`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ask {
    id: u64,
    to: u32,
    query: Query,
}

/// An answer on its way back to process 0.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reply {
    id: u64,
    from: u32,
    answer: Answer,
}

/// A query waiting for its answers.
struct Waiting {
    need: usize,
    got: Vec<(u32, Answer)>,
    done: tokio::sync::oneshot::Sender<Vec<(u32, Answer)>>,
}

/// A process's end of the queries (see the module's header).
pub struct Plane {
    processes: usize,
    threads: usize,
    next: AtomicU64,
    /// Asks for the source on worker 0 to send.
    queue: Mutex<VecDeque<Ask>>,
    /// Wakes that source.
    activator: Mutex<Option<SyncActivator>>,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// One listing at a time.
    listing: tokio::sync::Mutex<()>,
    /// This process's input has ended: its stores are final.
    ended: AtomicBool,
}

impl Plane {
    pub fn new(processes: usize, threads: usize) -> Arc<Self> {
        Arc::new(Plane {
            processes,
            threads,
            next: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
            activator: Mutex::new(None),
            waiting: Mutex::new(HashMap::new()),
            listing: tokio::sync::Mutex::new(()),
            ended: AtomicBool::new(false),
        })
    }

    /// This process's part of the job is done: its stores are final.
    pub fn input_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }

    pub fn processes(&self) -> usize {
        self.processes
    }

    /// Asks processes `to` and waits for all their answers (at most
    /// [`WAIT`] and a little).
    pub async fn ask(&self, to: &[usize], query: Query) -> Result<Vec<(u32, Answer)>, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, answers) = tokio::sync::oneshot::channel();
        self.waiting.lock().expect("waiting lock").insert(
            id,
            Waiting {
                need: to.len(),
                got: Vec::with_capacity(to.len()),
                done,
            },
        );
        {
            let mut queue = self.queue.lock().expect("queue lock");
            for &p in to {
                queue.push_back(Ask {
                    id,
                    to: p as u32,
                    query: query.clone(),
                });
            }
        }
        let woken = self
            .activator
            .lock()
            .expect("activator lock")
            .as_ref()
            .is_some_and(|a| a.activate().is_ok());
        if !woken {
            self.waiting.lock().expect("waiting lock").remove(&id);
            return Err("the job's workers are not running".into());
        }
        match tokio::time::timeout(WAIT + Duration::from_secs(5), answers).await {
            Ok(Ok(got)) => Ok(got),
            _ => {
                self.waiting.lock().expect("waiting lock").remove(&id);
                Err(format!(
                    "the processes of the cluster did not answer within {} s",
                    WAIT.as_secs() + 5
                ))
            }
        }
    }

    /// Every process.
    fn everyone(&self) -> Vec<usize> {
        (0..self.processes).collect()
    }

    fn deliver(&self, reply: Reply) {
        let mut waiting = self.waiting.lock().expect("waiting lock");
        let complete = match waiting.get_mut(&reply.id) {
            Some(w) => {
                w.got.push((reply.from, reply.answer));
                w.got.len() >= w.need
            }
            None => false,
        };
        if complete {
            if let Some(w) = waiting.remove(&reply.id) {
                let _ = w.done.send(w.got);
            }
        }
    }

    fn take_asks(&self) -> Vec<Ask> {
        self.queue.lock().expect("queue lock").drain(..).collect()
    }
}

/// Builds the queries' dataflow on this worker (every worker of every
/// process builds it, after the job's).
pub fn build(worker: &mut Worker, plane: Arc<Plane>, live: Arc<Live>) {
    let threads = plane.threads as u64;
    worker.dataflow::<u64, _, _>(|scope| {
        let index = scope.index();
        let from = (index / plane.threads) as u32;
        let sender = plane.clone();
        let asks = source(scope, "Queries", move |cap, info| {
            // Held for as long as the process runs: the API serves until then.
            let cap = (index == 0).then(|| {
                let wake = scope.worker().sync_activator_for(info.address.to_vec());
                *sender.activator.lock().expect("activator lock") = Some(wake);
                cap
            });
            move |output| {
                if let Some(cap) = &cap {
                    let mut asks = sender.take_asks();
                    if !asks.is_empty() {
                        output.session(cap).give_container(&mut asks);
                    }
                }
            }
        });
        let replies = asks.unary(
            Exchange::new(move |a: &Ask| u64::from(a.to) * threads),
            "Answer",
            move |_initial, info| {
                let activator = scope.activator_for(info.address);
                let mut pending: Vec<(Capability<u64>, Ask, Instant)> = Vec::new();
                move |input, output| {
                    input.for_each(|cap, data| {
                        let Some(&t) = cap.least() else { return };
                        for ask in data.drain(..) {
                            pending.push((cap.delayed(&t, 0), ask, Instant::now()));
                        }
                    });
                    pending.retain(|(cap, ask, since)| match answer(&live, ask, *since) {
                        Some(answer) => {
                            output.session(cap).give(Reply {
                                id: ask.id,
                                from,
                                answer,
                            });
                            false
                        }
                        None => true,
                    });
                    if !pending.is_empty() {
                        activator.activate_after(Duration::from_millis(2));
                    }
                }
            },
        );
        replies.sink(
            Exchange::new(|_: &Reply| 0),
            "Replies",
            move |(input, _frontier)| {
                input.for_each(|_cap, data| {
                    for reply in data.drain(..) {
                        plane.deliver(reply);
                    }
                });
            },
        );
    });
}

/// This process's answer to `ask`, or `None` when it has to wait.
fn answer(live: &Live, ask: &Ask, since: Instant) -> Option<Answer> {
    match &ask.query {
        Query::Player(id) => Some(Answer::Player(live.player(id))),
        Query::Pin => {
            let (least, most) = live.peers.pin();
            Some(Answer::Pinned { least, most })
        }
        Query::Positions {
            at,
            ended,
            since: changed,
            after,
            limit,
        } => {
            let Some(at) = *at else {
                live.peers.unpin();
                return Some(Answer::Positions {
                    found: Vec::new(),
                    more: false,
                });
            };
            let plane_ended = live
                .cluster
                .get()
                .is_some_and(|p| p.ended.load(Ordering::Acquire));
            let ready = *ended || plane_ended || live.peers.least_through() > at;
            if !ready {
                if since.elapsed() < WAIT {
                    return None;
                }
                live.peers.unpin();
                return Some(Answer::Failed(format!(
                    "time {at} was not final on every worker within {} s",
                    WAIT.as_secs()
                )));
            }
            let (found, more) = live.positions_at(at, *changed, after.as_deref(), *limit as usize);
            live.peers.unpin();
            Some(Answer::Positions { found, more })
        }
    }
}

fn failed(answers: &[(u32, Answer)]) -> Option<String> {
    answers.iter().find_map(|(p, a)| match a {
        Answer::Failed(why) => Some(format!("process {p}: {why}")),
        _ => None,
    })
}

impl Live {
    /// Makes this API the cluster's (see the module's header).
    pub fn join_cluster(&self, plane: Arc<Plane>) {
        let _ = self.cluster.set(plane);
    }

    /// `player` as the worker that owns it knows it, on any process of a
    /// cluster (`None`: unknown).
    pub async fn find_player(&self, player: &str) -> Result<Option<PlayerAnswer>, String> {
        if let Some(a) = self.player(player) {
            return Ok(Some(a));
        }
        let Some(plane) = self.cluster.get() else {
            return Ok(None);
        };
        let others: Vec<usize> = (1..plane.processes()).collect();
        let answers = plane.ask(&others, Query::Player(player.into())).await?;
        if let Some(why) = failed(&answers) {
            return Err(why);
        }
        Ok(answers.into_iter().find_map(|(_, a)| match a {
            Answer::Player(found) => found,
            _ => None,
        }))
    }

    /// [`Live::positions`], over every process of a cluster.
    pub async fn find_positions(
        &self,
        since: Option<u64>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Positions, String> {
        let Some(plane) = self.cluster.get() else {
            return Ok(self.positions(since, after, limit));
        };
        let _one = plane.listing.lock().await;
        let ended = self.state.read().map(|s| s.complete).unwrap_or(false);
        let everyone = plane.everyone();
        let unpin = Query::Positions {
            at: None,
            ended,
            since,
            after: None,
            limit: 0,
        };
        let pins = match plane.ask(&everyone, Query::Pin).await {
            Ok(p) => p,
            Err(e) => {
                let _ = plane.ask(&everyone, unpin).await;
                return Err(e);
            }
        };
        let mut least = 0;
        let mut most = 0;
        for (_, a) in &pins {
            if let Answer::Pinned { least: l, most: m } = a {
                least = least.max(*l);
                most = most.max(*m);
            }
        }
        let at = if ended { most } else { least }.checked_sub(1);
        let query = Query::Positions {
            at,
            ended,
            since,
            after: after.map(str::to_owned),
            limit: limit as u64,
        };
        let answers = plane.ask(&everyone, query).await?;
        if let Some(why) = failed(&answers) {
            return Err(why);
        }
        let mut all = Vec::new();
        let mut more = false;
        for (_, a) in answers {
            if let Answer::Positions { found, more: m } = a {
                all.extend(found);
                more |= m;
            }
        }
        let found: Found = first(all, more, limit);
        Ok(Positions::page(at, found))
    }
}
