//! The control operator of the continuous job, on worker 0: it holds a
//! capability that follows the input frontier (the sources wake it as
//! their frontiers move), and sends the [`Control`] records every worker
//! receives at their time:
//!
//! - a snapshot marker: when the job asks for a snapshot, its frontier `F`
//!   is this capability's time — at or below every partition's frontier, so
//!   the sources capture their partitions at once, and above every time any
//!   operator has processed, so each operator captures its state once every
//!   time below `F` is processed and before any later one (the input is
//!   never stopped);
//! - the hunt versions read from the hunt topic (decided against the same
//!   frontier), and the rejects of bad change records.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use crate::dataflow::Control;
use crate::input::hunt_topic::{Decision, Reader};
use crate::input::kafka::Shared;
use crate::input::reject::Reject;

/// What the control operator is asked to do.
#[derive(Default)]
pub struct Requests {
    /// The snapshot epoch the job asks for (0: none yet).
    pub snapshot: AtomicU64,
}

/// What the control operator runs with.
pub struct ControlConfig {
    pub shared: Arc<Shared>,
    pub requests: Arc<Requests>,
    /// The hunt topic's reader and the decisions logged by an earlier run.
    pub hunt: Option<(Reader, Vec<Decision>)>,
    /// The frontier the job restarts from.
    pub floor: u64,
    /// Called as a snapshot's marker goes out (the rejects' marks are
    /// taken then).
    pub on_snapshot: Box<dyn Fn(u64, u64)>,
}

/// The control records and the rejects of the hunt topic, and how many of
/// those this worker emitted (a snapshot waits until they are written).
pub struct Controls<'scope> {
    pub control: Stream<'scope, u64, Vec<Control>>,
    pub rejects: Stream<'scope, u64, Vec<Reject>>,
    pub rejected: Rc<Cell<u64>>,
}

struct Operator {
    config: ControlConfig,
    /// The last snapshot epoch sent.
    sent: u64,
}

impl Operator {
    /// The records of this activation, each with its time.
    fn records(&mut self, at: u64, replay: Vec<Decision>) -> Vec<(u64, Result<Control, Reject>)> {
        let mut out = Vec::new();
        let mut decisions = replay;
        if let Some((reader, _)) = self.config.hunt.as_mut() {
            decisions.extend(reader.poll(at));
        }
        for d in decisions {
            if let Some(n) = d.notice() {
                out.push((n.effective, Ok(Control::Version(n))));
            } else if let Some(r) = d.reject() {
                out.push((at, Err(r)));
            }
        }
        let asked = self.config.requests.snapshot.load(Ordering::Acquire);
        if asked > self.sent {
            self.sent = asked;
            self.config.shared.request_capture(asked, at);
            (self.config.on_snapshot)(asked, at);
            out.push((at, Ok(Control::Snapshot { epoch: asked, at })));
        }
        out
    }
}

/// Builds the control operator (it holds capabilities on worker 0 only).
pub fn build<'scope>(scope: Scope<'scope, u64>, config: ControlConfig) -> Controls<'scope> {
    let rejected = Rc::new(Cell::new(0));
    let counted = rejected.clone();
    let mine = scope.index() == 0;
    let floor = config.floor;
    // Versions that took effect below the floor are in the restored state.
    let replay: Vec<Decision> = config
        .hunt
        .as_ref()
        .map(|(_, logged)| logged.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.notice().is_none_or(|n| n.effective >= floor))
        .collect();
    let shared = config.shared.clone();
    let polls = config.hunt.is_some();
    let mut operator = mine.then_some(Operator { config, sent: 0 });
    let records: Stream<'scope, u64, Vec<Result<Control, Reject>>> =
        source(scope, "Control", move |cap, info| {
            let activator = scope.activator_for(info.address.clone());
            let mut cap: Option<Capability<u64>> = operator.as_ref().map(|_| cap.delayed(&floor));
            if operator.is_some() {
                let wake = scope.worker().sync_activator_for(info.address.to_vec());
                if let Ok(mut c) = shared.control.lock() {
                    *c = Some(wake);
                }
            }
            let mut replay = Some(replay);
            move |output| {
                let (Some(c), Some(op)) = (cap.as_mut(), operator.as_mut()) else {
                    cap = None;
                    return;
                };
                // At the input frontier as the sources last published it,
                // so that a snapshot asked for now is taken there (a stopped
                // job's last snapshot then covers everything it wrote).
                if let Some(f) = op.config.shared.input_frontier() {
                    if f > *c.time() {
                        c.downgrade(&f);
                    }
                }
                let at = *c.time();
                for (time, record) in op.records(at, replay.take().unwrap_or_default()) {
                    if record.is_err() {
                        counted.set(counted.get() + 1);
                    }
                    output.session(&c.delayed(&time)).give(record);
                }
                // The sources wake it as their frontiers move; besides, it
                // looks for requests and hunt changes now and then.
                let every = if polls { 5 } else { 20 };
                activator.activate_after(Duration::from_millis(every));
            }
        });
    let (control, rejects) = records.ok_err(|x| x);
    Controls {
        control,
        rejects,
        rejected,
    }
}
