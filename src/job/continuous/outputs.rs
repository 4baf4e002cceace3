//! The continuous job's outputs, opened where its last snapshot left them:
//! notifications, rejects and (with `--derived`) the interval files, each
//! a topic, a file or standard output, each named in the snapshot's marks,
//! each with what its destination holds beyond them ([`Held`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use super::snapshot::Loaded;
use super::{RunError, RunOptions};
use crate::kafka::admin::Admin;
use crate::kafka::producer::Producer;
use crate::kafka::KafkaConfig;
use crate::model::versions::Versions;
use crate::output::chain::{Chain, Elsewhere};
use crate::output::derived::{self, Derived, Resumed, SharedDerived};
use crate::output::file::{Destination, FileNotifications, SharedFile};
use crate::output::kafka::{KafkaNotifications, KafkaRejects, NotificationsAt, NOT_OWNED};
use crate::output::rejects::{FileRejects, Origins, RejectSink, SharedRejects};
use crate::output::resume::Held;
use crate::output::sink::NotificationOutput;
use crate::output::OutputError;

/// Where an output goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Kafka(String),
    File(PathBuf),
    Stdout,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(topic) = s.strip_prefix("kafka:") {
            if topic.is_empty() {
                return Err("kafka: needs a topic name".into());
            }
            return Ok(Target::Kafka(topic.to_string()));
        }
        if s == "-" {
            return Ok(Target::Stdout);
        }
        if s.is_empty() {
            return Err("empty output".into());
        }
        Ok(Target::File(PathBuf::from(s)))
    }
}

pub use crate::output::{ELIGIBILITY, NOTIFICATIONS, PRESENCE, REJECTS};

/// How the snapshot protocol makes an output durable and finds its end.
pub enum Durable {
    Kafka {
        producer: Arc<Producer>,
        topic: String,
        /// Where each partition ended when opened: durable already.
        opened: Vec<i64>,
    },
    File(Arc<SharedFile>),
    Stdout,
}

impl Durable {
    /// Makes everything up to `marks` durable: a file synced, a topic's
    /// records delivered; waits for the broker, but not beyond `deadline`
    /// (false then: try again later).
    pub fn durable_to(
        &self,
        marks: &[i64],
        deadline: std::time::Instant,
    ) -> Result<bool, RunError> {
        match self {
            Durable::Kafka {
                producer,
                topic,
                opened,
            } => loop {
                if let Some(f) = producer.failure() {
                    return Err(OutputError::from(f).into());
                }
                let done = marks.iter().enumerate().all(|(p, &m)| {
                    opened.get(p).is_some_and(|&o| m <= o)
                        || producer.delivered(topic, p as u32) >= m
                });
                if done {
                    return Ok(true);
                }
                if std::time::Instant::now() > deadline {
                    return Ok(false);
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            },
            Durable::File(f) => f
                .sync()
                .map(|_| true)
                .map_err(|e| OutputError::io(f.path().display(), e).into()),
            Durable::Stdout => Ok(true),
        }
    }

    /// A failure the producer reported, if any.
    pub fn failure(&self) -> Option<OutputError> {
        match self {
            Durable::Kafka { producer, .. } => producer.failure().map(OutputError::from),
            _ => None,
        }
    }

    /// What a topic output waits for, in words.
    pub fn waiting(&self, marks: &[i64]) -> String {
        match self {
            Durable::Kafka {
                producer,
                topic,
                opened,
            } => marks
                .iter()
                .enumerate()
                .filter(|&(p, &m)| {
                    opened.get(p).is_none_or(|&o| m > o) && producer.delivered(topic, p as u32) < m
                })
                .map(|(p, m)| {
                    format!(
                        "partition {p} delivered up to offset {}, marked at {m}",
                        producer.delivered(topic, p as u32)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        }
    }
}

/// This process's producer, if any of its outputs is a topic (process 0
/// writes every output; the others a notifications topic's partitions).
pub fn producer(
    opts: &RunOptions,
    cfg: &KafkaConfig,
    leader: bool,
) -> Result<Option<Arc<Producer>>, RunError> {
    let rejects = opts.rejects.as_ref().filter(|_| leader);
    let kafka = [Some(&opts.output), rejects]
        .iter()
        .any(|t| matches!(t, Some(Target::Kafka(_))));
    Ok(match kafka {
        true => Some(Arc::new(Producer::new(cfg)?)),
        false => None,
    })
}

/// Everything the job writes, opened.
pub struct Opened {
    /// The notifications' destination (the head of the output chain).
    pub notifications: Box<dyn NotificationOutput + Send>,
    pub rejects: SharedRejects,
    /// With `--derived`: the interval files.
    pub derived: Option<SharedDerived>,
    /// Every output, by name, in the order their marks are taken.
    pub durable: Vec<(&'static str, Durable)>,
    /// What the outputs held beyond the snapshot: no snapshot until passed.
    pub held: Held,
}

/// Opens the outputs where `loaded` (the last snapshot, if any) left them
/// (process 0's: a notifications topic is written by its partitions'
/// owners instead, [`open_owned`]); `producer`: this process's, if it has
/// one already.
pub fn open(
    opts: &RunOptions,
    cfg: &KafkaConfig,
    versions: &Versions,
    loaded: Option<&Loaded>,
    (input_partitions, producer): (u32, Option<Arc<Producer>>),
) -> Result<Opened, RunError> {
    let mut opener = Opener {
        opts,
        cfg,
        loaded,
        producer,
        input_partitions,
    };
    // Both read back what their destinations hold, at once.
    let mut for_rejects = opener.clone();
    let (notifications, rejects) = std::thread::scope(|scope| {
        let rejects = scope.spawn(move || for_rejects.rejects());
        let notifications = opener.notifications();
        let rejects = rejects
            .join()
            .unwrap_or_else(|_| Err(RunError::Config("opening the rejects output failed".into())));
        (notifications, rejects)
    });
    let (notifications, durable, mut held) = notifications?;
    let mut all: Vec<(&'static str, Durable)> =
        durable.map(|d| (NOTIFICATIONS, d)).into_iter().collect();
    let (rejects, durable, rejects_held) = rejects?;
    held.merge(rejects_held);
    all.push((REJECTS, durable));
    let derived = match &opts.derived {
        None => None,
        Some(dir) => {
            let (derived, [presence, eligibility], derived_held) = opener.derived(dir, versions)?;
            held.merge(derived_held);
            all.push((PRESENCE, presence));
            all.push((ELIGIBILITY, eligibility));
            Some(derived)
        }
    };
    Ok(Opened {
        notifications,
        rejects,
        derived,
        durable: all,
        held,
    })
}

/// A notifications topic's writers on this process, one for each of its
/// workers (each writes the partitions its worker owns, see
/// [`crate::output::kafka::partition_owner`]), and how the snapshot
/// protocol makes them durable.
pub struct Owned {
    /// By this process's worker index.
    pub writers: Vec<Box<dyn NotificationOutput + Send>>,
    pub partitions: u32,
    pub durable: Durable,
}

/// Where this process's workers write a notifications topic (`--output
/// kafka:TOPIC` and this process's `producer`; `None` for another output):
/// the topic created if missing, each of this process's workers'
/// partitions read back from the marks of this process's last snapshot,
/// all at once. `workers`: this process's
/// global worker indexes; `peers`: the job's workers.
pub fn open_owned(
    opts: &RunOptions,
    cfg: &KafkaConfig,
    loaded: Option<&Loaded>,
    (input_partitions, producer): (u32, Option<Arc<Producer>>),
    (workers, peers): (std::ops::Range<usize>, usize),
) -> Result<Option<Owned>, RunError> {
    let (Target::Kafka(topic), Some(producer)) = (&opts.output, producer) else {
        return Ok(None);
    };
    let admin = Admin::new(cfg)?;
    let partitions =
        admin.ensure_topic(topic, opts.output_partitions.unwrap_or(input_partitions))?;
    let marks = loaded.and_then(|l| l.manifest.marks(NOTIFICATIONS));
    let below = loaded.map_or(0, |l| l.manifest.frontier);
    let opened: Vec<Result<KafkaNotifications, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .map(|worker| {
                let (admin, producer) = (&admin, producer.clone());
                scope.spawn(move || {
                    let at = NotificationsAt {
                        topic,
                        marks,
                        below,
                        worker,
                        peers,
                    };
                    Ok(KafkaNotifications::open(cfg, admin, producer, at)?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RunError::Config(
                        "opening the notifications topic failed".into(),
                    ))
                })
            })
            .collect()
    });
    let mut writers: Vec<Box<dyn NotificationOutput + Send>> = Vec::new();
    let mut ends = vec![NOT_OWNED; partitions as usize];
    for out in opened {
        let out = out?;
        for (end, o) in ends.iter_mut().zip(out.opened()) {
            *end = (*end).max(o);
        }
        writers.push(Box::new(Chain::new(Box::new(out), below)));
    }
    Ok(Some(Owned {
        writers,
        partitions,
        durable: Durable::Kafka {
            producer,
            topic: topic.clone(),
            opened: ends,
        },
    }))
}

/// An output opened: where it writes, how it is made durable (`None`: by
/// others), what it held beyond the snapshot.
type OpenedOutput = (Box<dyn NotificationOutput + Send>, Option<Durable>, Held);

#[derive(Clone)]
struct Opener<'a> {
    opts: &'a RunOptions,
    cfg: &'a KafkaConfig,
    loaded: Option<&'a Loaded>,
    producer: Option<Arc<Producer>>,
    input_partitions: u32,
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| OutputError::io(path.display(), e).into()
}

impl Opener<'_> {
    fn marks(&self, name: &str) -> Option<&[i64]> {
        self.loaded.and_then(|l| l.manifest.marks(name))
    }

    fn below(&self) -> u64 {
        self.loaded.map_or(0, |l| l.manifest.frontier)
    }

    fn producer(&mut self) -> Result<Arc<Producer>, RunError> {
        if self.producer.is_none() {
            self.producer = Some(Arc::new(Producer::new(self.cfg)?));
        }
        Ok(self.producer.clone().expect("set"))
    }

    /// A topic, created if missing with `partitions` partitions.
    fn topic(&mut self, topic: &str, partitions: u32) -> Result<(Admin, Arc<Producer>), RunError> {
        let admin = Admin::new(self.cfg)?;
        admin.ensure_topic(topic, partitions)?;
        Ok((admin, self.producer()?))
    }

    /// A file opened for appending, with its lines since output `name`'s mark.
    fn file(&self, path: &Path, name: &str) -> Result<(Arc<SharedFile>, Vec<Vec<u8>>), RunError> {
        let from = self.marks(name).and_then(|m| m.first()).copied();
        let (file, lines) =
            SharedFile::open(path, from.unwrap_or(0) as u64).map_err(file_err(path))?;
        Ok((Arc::new(file), lines))
    }

    fn notifications(&mut self) -> Result<OpenedOutput, RunError> {
        let below = self.below();
        match &self.opts.output {
            // Written by the owners of its partitions (see [`open_owned`]).
            Target::Kafka(_) => Ok((Box::new(Elsewhere), None, Held::default())),
            Target::File(path) => {
                let (file, lines) = self.file(path, NOTIFICATIONS)?;
                let dest = Destination::File(file.clone());
                let name = path.display().to_string();
                let out = FileNotifications::new(name, dest, &lines, below)?;
                let held = out.held();
                Ok((Box::new(out), Some(Durable::File(file)), held))
            }
            Target::Stdout => {
                let dest = Destination::Stdout(std::io::BufWriter::new(std::io::stdout()));
                let out = FileNotifications::new("-".into(), dest, &[], below)?;
                Ok((Box::new(out), Some(Durable::Stdout), Held::default()))
            }
        }
    }

    fn rejects(&mut self) -> Result<(SharedRejects, Durable, Held), RunError> {
        let target = self
            .opts
            .rejects
            .clone()
            .unwrap_or_else(|| Target::File(self.opts.state_dir.join("rejects.jsonl")));
        let origins = Origins::Topic {
            events: self.opts.topic.clone(),
            changes: self.opts.hunt_topic.clone(),
        };
        let (sink, durable, held): (Box<dyn RejectSink>, Durable, Held) = match &target {
            Target::Kafka(topic) => {
                let (admin, producer) = self.topic(topic, self.input_partitions)?;
                let marks = self.marks(REJECTS);
                let out =
                    KafkaRejects::open(self.cfg, &admin, producer.clone(), topic, origins, marks)?;
                let durable = Durable::Kafka {
                    producer,
                    topic: topic.clone(),
                    opened: out.opened(),
                };
                let held = out.held();
                (Box::new(out), durable, held)
            }
            Target::File(path) => {
                let (file, lines) = self.file(path, REJECTS)?;
                let dest = Box::new(Destination::File(file.clone()));
                let at = Some(file.position());
                let out = FileRejects::new(path.display().to_string(), dest, origins, &lines, at);
                let held = out.held();
                (Box::new(out), Durable::File(file), held)
            }
            Target::Stdout => {
                let dest = Box::new(Destination::Stdout(std::io::BufWriter::new(
                    std::io::stdout(),
                )));
                let out = FileRejects::new("-".into(), dest, origins, &[], None);
                (Box::new(out), Durable::Stdout, Held::default())
            }
        };
        Ok((Arc::new(Mutex::new(sink)), durable, held))
    }

    /// The derived interval files, where the snapshot left them.
    fn derived(
        &self,
        dir: &Path,
        versions: &Versions,
    ) -> Result<(SharedDerived, [Durable; 2], Held), RunError> {
        if self.loaded.is_some() && self.marks(PRESENCE).is_none() {
            return Err(RunError::Config(format!(
                "--derived {}: the last snapshot in {} was taken without --derived, so the intervals open then are unknown; write derived files from a new state directory",
                dir.display(),
                self.opts.state_dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(file_err(dir))?;
        let mut held = Held::default();
        let mut open_one = |name: &str,
                            file: &str|
         -> Result<(Arc<SharedFile>, Vec<Vec<u8>>), RunError> {
            let path = dir.join(file);
            let (shared, since) = self.file(&path, name)?;
            for (n, line) in since.iter().enumerate() {
                let until = derived::closed_until(line).ok_or_else(|| OutputError::Diverged {
                    name: path.display().to_string(),
                    message: format!(
                        "line {} after the snapshot mark is not a closed interval",
                        n + 1
                    ),
                })?;
                held.time(Some(until));
            }
            Ok((shared, since))
        };
        let (presence, presence_since) = open_one(PRESENCE, derived::FILES[0])?;
        let (eligibility, eligibility_since) = open_one(ELIGIBILITY, derived::FILES[1])?;
        let outs: [Box<dyn std::io::Write + Send>; 2] = [
            Box::new(Destination::File(presence.clone())),
            Box::new(Destination::File(eligibility.clone())),
        ];
        let mark = |name: &str| {
            Some(
                self.marks(name)
                    .and_then(|m| m.first())
                    .map_or(0, |&m| m as u64),
            )
        };
        let resumed = Resumed {
            marks: [mark(PRESENCE), mark(ELIGIBILITY)],
            held: [presence_since, eligibility_since],
            open: self
                .loaded
                .map(|l| l.derived_open.clone())
                .unwrap_or_default(),
        };
        let dict = versions.dictionary();
        let known = |reward: bool, id: &str| {
            let names = if reward { &dict.rewards } else { &dict.zones };
            names.number(id).is_some()
        };
        let d = Derived::resume(dir, outs, resumed, &known).map_err(file_err(dir))?;
        Ok((
            Arc::new(Mutex::new(d)),
            [Durable::File(presence), Durable::File(eligibility)],
            held,
        ))
    }
}
