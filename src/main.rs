//! The `huntflow` command line: the continuous job on Kafka, backfills over
//! dataset files, the seeded dataset generator, and the Kafka tools
//! (produce, dump).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use huntflow::generate::{self, GenerateOptions};
use huntflow::job::backfill::{self, BackfillOptions};
use huntflow::job::cluster::ClusterFlags;
use huntflow::job::continuous::{RunOptions, Target};
use huntflow::kafka::{tools, KafkaConfig};

#[derive(Parser)]
#[command(
    name = "huntflow",
    version,
    about = "Event processing for location-based games on timely and differential dataflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The continuous job: read a Kafka topic, write notifications, survive restarts
    /// (state in --state-dir).
    Run(RunArgs),
    /// Publish dataset files into a topic, keyed by player.
    Produce(ProduceArgs),
    /// Write a topic's partitions, up to their current end, into one file each.
    Dump(DumpArgs),
    /// Run the dataflow over dataset files to completion (one partition per INPUT).
    Backfill(BackfillArgs),
    /// Write seeded synthetic event files, for a generated hunt or an existing one (--for-hunt).
    Generate(GenerateArgs),
    /// Validate a new version of the hunt and write its change record (taking effect at
    /// --effective): to standard output, a file (--to) or a hunt topic (--topic).
    HuntChange(HuntChangeArgs),
}

#[derive(Args)]
struct HuntChangeArgs {
    /// The new version of the hunt (TOML, with the GeoJSON file it names).
    #[arg(long)]
    hunt: PathBuf,
    /// The event time (ms) from which the new version is in effect.
    #[arg(long, value_name = "T")]
    effective: u64,
    /// The hunt the job was started with: the new version must keep its
    /// max_lateness_ms and max_accuracy_m.
    #[arg(long, value_name = "HUNT.toml")]
    base: Option<PathBuf>,
    /// Append the record to this file (a backfill's --hunt-changes).
    #[arg(long, value_name = "FILE", conflicts_with = "topic")]
    to: Option<PathBuf>,
    /// Produce the record to this topic (a continuous job's --hunt-topic).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

/// Timely's cluster flags (`-h` is the hostfile, as in timely: help is `--help`).
#[derive(Args)]
struct ClusterArgs {
    /// Processes in the cluster; each is started with the same arguments but -p.
    #[arg(short = 'n', long = "processes", value_name = "N", default_value_t = 1)]
    processes: usize,
    /// This process's index, 0 to N-1; process 0 writes the outputs.
    #[arg(
        short = 'p',
        long = "process",
        value_name = "INDEX",
        default_value_t = 0
    )]
    process: usize,
    /// The cluster's hostfile: one host:port a line, process 0's first (blank lines and
    /// # comments allowed).
    #[arg(short = 'h', long = "hostfile", value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// How long to wait for the other processes to start (s).
    #[arg(long, value_name = "S", default_value_t = 60)]
    connect_timeout: u64,
}

impl ClusterArgs {
    fn flags(&self) -> ClusterFlags {
        ClusterFlags {
            processes: self.processes,
            process: self.process,
            hostfile: self.hostfile.clone(),
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout.max(1)),
        }
    }
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct BackfillArgs {
    /// The hunt definition (TOML).
    #[arg(long)]
    hunt: PathBuf,
    /// Worker threads (per process).
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Sort and format every notification on one worker instead of each worker its share
    /// (the output is the same; for comparison).
    #[arg(long)]
    single_writer: bool,
    /// Where notifications go (`-` is standard output).
    #[arg(long, default_value = "-")]
    output: PathBuf,
    /// Where rejected records go (JSON Lines with reason, detail, source, line, raw).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Write the read/accepted/rejected summary here as JSON.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Interleave progress records `{"kind":"progress","time":T}` in the output.
    #[arg(long)]
    progress: bool,
    /// Write presence and eligibility intervals (presence.jsonl, eligibility.jsonl) here.
    #[arg(long, value_name = "DIR")]
    derived: Option<PathBuf>,
    /// Hunt change records (JSON Lines), read before any event: each a new version of the
    /// hunt taking effect at its time (see `huntflow hunt-change`).
    #[arg(long, value_name = "FILE")]
    hunt_changes: Option<PathBuf>,
    /// With --serve: after the backfill, keep serving its final state until stopped.
    #[command(flatten)]
    serve: ServeArgs,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Input partitions: JSON Lines files, or `-` for standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Serve the analysts' HTTP API (queries, subscriptions, metrics) on this address,
    /// e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// Notifications a subscriber can resume within (with Last-Event-ID), by count.
    #[arg(long, default_value_t = 100_000, requires = "serve")]
    retain: usize,
    /// ... and by age (ms); older ones are dropped too.
    #[arg(long, requires = "serve")]
    retain_ms: Option<u64>,
    /// Require this file's bearer token on every endpoint but /healthz
    /// (Authorization: Bearer TOKEN; the map page asks for it).
    #[arg(long, value_name = "FILE", requires = "serve")]
    serve_token_file: Option<PathBuf>,
}

impl ServeArgs {
    fn options(&self) -> Option<huntflow::serve::ServeOptions> {
        self.serve.map(|addr| {
            let mut o = huntflow::serve::ServeOptions::new(addr);
            o.retention.events = self.retain.max(1);
            o.retention.age = self.retain_ms.map(std::time::Duration::from_millis);
            o.token_file = self.serve_token_file.clone();
            o
        })
    }
}

#[derive(Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// A librdkafka setting (TLS, SASL, timeouts, ...), repeatable. Settings huntflow's
    /// guarantees rest on (idempotence, acks, isolation level, offsets) are refused.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    options: Vec<String>,
}

impl KafkaArgs {
    fn config(&self) -> anyhow::Result<KafkaConfig> {
        Ok(KafkaConfig::new(&self.brokers, &self.options)?)
    }
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct RunArgs {
    /// The hunt definition (TOML).
    #[arg(long)]
    hunt: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The input topic (one partition of the contract per Kafka partition).
    #[arg(long)]
    topic: String,
    /// Worker threads (per process); the topic's partitions are spread over them.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Where notifications go: kafka:TOPIC, a file, or `-` (standard output).
    #[arg(long)]
    output: Target,
    /// Where rejected records go: kafka:TOPIC, a file, or `-` [default: STATE_DIR/rejects.jsonl].
    #[arg(long)]
    rejects: Option<Target>,
    /// Snapshots and the advance log; a restarted job resumes from here.
    #[arg(long, default_value = "huntflow-state")]
    state_dir: PathBuf,
    /// Advance a partition that has been idle this long (ms) by wall clock, so expiries and
    /// window ends are announced without new events; 0 turns it off. The one
    /// non-deterministic setting.
    #[arg(long, default_value_t = 10_000)]
    idle_ms: u64,
    /// Time between snapshots (ms).
    #[arg(long, default_value_t = 5_000)]
    snapshot_ms: u64,
    /// Partitions of the output topics huntflow creates [default: as the input topic].
    #[arg(long)]
    output_partitions: Option<u32>,
    /// Write presence and eligibility intervals (presence.jsonl, eligibility.jsonl) here,
    /// each when it closes; resumed after a restart like the other outputs.
    #[arg(long, value_name = "DIR")]
    derived: Option<PathBuf>,
    /// Read hunt changes from this topic (one partition): each a new version of the hunt
    /// taking effect at its time (see `huntflow hunt-change`).
    #[arg(long, value_name = "TOPIC")]
    hunt_topic: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Args)]
struct ProduceArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    topic: String,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Records per second at most.
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate: Option<f64>,
    /// Dataset files (JSON Lines), merged by ts.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct DumpArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long)]
    topic: String,
    /// Directory for part-NNN.jsonl, one per partition.
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args)]
struct GenerateArgs {
    /// Generate events for this existing hunt (TOML) instead of inventing one; no hunt files
    /// are written and its zones, rewards, clues, sensors and settings are used.
    #[arg(long, value_name = "HUNT.toml", conflicts_with_all = ["hunt_dir", "zones", "rewards"])]
    for_hunt: Option<PathBuf>,
    /// Directory for hunt.toml and zones.geojson (not with --for-hunt).
    #[arg(long, required_unless_present = "for_hunt")]
    hunt_dir: Option<PathBuf>,
    /// Directory for the event files (part-000.jsonl, ...).
    #[arg(long)]
    events_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    #[arg(long, default_value_t = 100)]
    players: u32,
    #[arg(long, default_value_t = 20)]
    zones: u32,
    #[arg(long, default_value_t = 5)]
    rewards: u32,
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Event time of the first event, in ms.
    #[arg(long)]
    start_ms: Option<u64>,
    /// Events per second of event time.
    #[arg(long)]
    rate: Option<f64>,
    /// Fraction of events that are positions.
    #[arg(long)]
    position_share: Option<f64>,
    /// Out-of-order jitter within a partition, in ms.
    #[arg(long)]
    disorder_ms: Option<u64>,
    #[arg(long)]
    late_rate: Option<f64>,
    #[arg(long)]
    duplicate_rate: Option<f64>,
    #[arg(long)]
    malformed_rate: Option<f64>,
    /// Side of the square city the players walk and the zones lie in, metres.
    #[arg(long)]
    extent_m: Option<f64>,
    /// Generate clean data: no late, duplicate or malformed records (nor bad change records).
    #[arg(long)]
    clean: bool,
    /// Hunt change records to write to hunt-changes.jsonl in the events directory (not with
    /// --for-hunt), effective inside the events' time span.
    #[arg(long, default_value_t = 0, conflicts_with = "for_hunt")]
    changes: u32,
}

fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let mut opts = BackfillOptions::new(args.hunt, args.inputs);
    opts.workers = args.workers;
    opts.cluster = args.cluster.flags();
    opts.single_writer = args.single_writer;
    opts.output = Some(args.output);
    opts.rejects = args.rejects;
    opts.summary = args.summary;
    opts.progress_records = args.progress;
    opts.progress_bar = std::io::stderr().is_terminal();
    opts.serve = args.serve.options();
    opts.derived = args.derived;
    opts.hunt_changes = args.hunt_changes;
    let done = backfill::finish(&opts)?;
    if done.leader {
        eprintln!("{}", done.summary.to_json());
    }
    if done.serving {
        if done.leader {
            eprintln!("backfill complete; serving its final state until stopped");
        } else {
            eprintln!("backfill complete; answering process 0's queries until it stops");
        }
        huntflow::serve::park_forever();
    }
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let cluster = args.cluster.flags();
    let opts = RunOptions {
        cluster,
        hunt: args.hunt,
        brokers: args.kafka.brokers,
        topic: args.topic,
        workers: args.workers,
        output: args.output,
        rejects: args.rejects,
        state_dir: args.state_dir,
        kafka_options: args.kafka.options,
        idle: (args.idle_ms > 0).then(|| std::time::Duration::from_millis(args.idle_ms)),
        snapshot_every: std::time::Duration::from_millis(args.snapshot_ms.max(1)),
        output_partitions: args.output_partitions,
        slice: huntflow::dataflow::facts::DEFAULT_SLICE,
        serve: args.serve.options(),
        derived: args.derived,
        hunt_topic: args.hunt_topic,
    };
    huntflow::job::continuous::run(&opts)?;
    Ok(())
}

fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let cfg = args.kafka.config()?;
    let done = tools::produce(
        &cfg,
        &args.topic,
        args.partitions,
        &args.files,
        args.rate,
        true,
    )?;
    eprintln!(
        "produced {} records to {} ({} partitions)",
        done.records, args.topic, done.partitions
    );
    Ok(())
}

fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let cfg = args.kafka.config()?;
    for (path, records) in tools::dump(&cfg, &args.topic, &args.dir)? {
        eprintln!("{}: {records} records", path.display());
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let for_hunt = match &args.for_hunt {
        Some(path) => Some(std::sync::Arc::new(
            huntflow::model::hunt::Hunt::load(path)
                .with_context(|| format!("loading {}", path.display()))?,
        )),
        None => None,
    };
    let mut opts = GenerateOptions {
        for_hunt,
        seed: args.seed,
        events: args.events,
        players: args.players,
        zones: args.zones,
        rewards: args.rewards,
        partitions: args.partitions,
        changes: args.changes,
        ..GenerateOptions::default()
    };
    if let Some(v) = args.start_ms {
        opts.start_ms = v;
    }
    if let Some(v) = args.extent_m {
        opts.extent_m = v;
    }
    if let Some(v) = args.rate {
        opts.rate_per_s = v;
    }
    if let Some(v) = args.position_share {
        opts.position_share = v;
    }
    if let Some(v) = args.disorder_ms {
        opts.disorder_ms = v;
    }
    if let Some(v) = args.late_rate {
        opts.late_rate = v;
    }
    if let Some(v) = args.duplicate_rate {
        opts.duplicate_rate = v;
    }
    if let Some(v) = args.malformed_rate {
        opts.malformed_rate = v;
    }
    if args.clean {
        opts.late_rate = 0.0;
        opts.duplicate_rate = 0.0;
        opts.malformed_rate = 0.0;
    }
    let bar = indicatif::ProgressBar::new(opts.events);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // Unused with --for-hunt, required by clap otherwise.
    let hunt_dir = args.hunt_dir.unwrap_or_default();
    let files =
        generate::generate_to_files_with_progress(&opts, &hunt_dir, &args.events_dir, &mut |n| {
            bar.set_position(n)
        })
        .with_context(|| {
            if opts.for_hunt.is_some() {
                format!("writing {}", args.events_dir.display())
            } else {
                format!(
                    "writing {} and {}",
                    hunt_dir.display(),
                    args.events_dir.display()
                )
            }
        })?;
    bar.finish_and_clear();
    let written = if opts.for_hunt.is_some() {
        format!(
            "{} partition file(s) for {}",
            files.partitions.len(),
            files.hunt_toml.display()
        )
    } else {
        format!(
            "{} and {} partition file(s)",
            files.hunt_toml.display(),
            files.partitions.len()
        )
    };
    eprintln!(
        "wrote {written}: {} lines, {} expected accepted, expected rejects {:?}, bad lines by kind {:?}",
        files.stats.lines, files.stats.accepted, files.stats.rejected, files.stats.bad_kinds
    );
    if let Some(path) = &files.hunt_changes {
        eprintln!(
            "wrote {}: {} change records expected accepted, {} rejected",
            path.display(),
            files.stats.hunt_changes_accepted,
            files.stats.hunt_changes_rejected
        );
    }
    Ok(())
}

fn hunt_change(args: HuntChangeArgs) -> anyhow::Result<()> {
    use huntflow::input::changes;
    use huntflow::model::hunt::Hunt;
    if args.effective > huntflow::model::event::MAX_TS {
        anyhow::bail!("--effective {} is above 2^53", args.effective);
    }
    let hunt = Hunt::load(&args.hunt)?;
    if let Some(base) = &args.base {
        let start = Hunt::load(base)?;
        changes::admissible(&start, &hunt)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.hunt.display()))?;
    }
    let record = changes::change_record(args.effective, &hunt);
    match (&args.to, &args.topic) {
        (Some(path), _) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{record}").with_context(|| format!("writing {}", path.display()))?;
        }
        (None, Some(topic)) => tools::publish(&args.kafka.config()?, topic, record.as_bytes())?,
        (None, None) => println!("{record}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Produce(args) => produce(args),
        Command::Dump(args) => dump(args),
        Command::Backfill(args) => backfill(args),
        Command::Generate(args) => generate(args),
        Command::HuntChange(args) => hunt_change(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huntflow: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause left out when the message before
/// it ends with it already (most library errors name their cause).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
