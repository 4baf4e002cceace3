//! The `huntflow` command line: backfills over dataset files and the seeded
//! dataset generator.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use huntflow::backfill::{self, BackfillOptions};
use huntflow::generate::{self, GenerateOptions};

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
    /// Run the dataflow over dataset files to completion (one partition per INPUT).
    Backfill(BackfillArgs),
    /// Write seeded synthetic event files, for a generated hunt or an existing one (--for-hunt).
    Generate(GenerateArgs),
}

#[derive(Args)]
struct BackfillArgs {
    /// The hunt definition (TOML).
    #[arg(long)]
    hunt: PathBuf,
    /// Worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
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
    /// Input partitions: JSON Lines files, or `-` for standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
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
    /// Generate clean data: no late, duplicate or malformed records.
    #[arg(long)]
    clean: bool,
}

fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let mut opts = BackfillOptions::new(args.hunt, args.inputs);
    opts.workers = args.workers;
    opts.output = Some(args.output);
    opts.rejects = args.rejects;
    opts.summary = args.summary;
    opts.progress_records = args.progress;
    opts.progress_bar = std::io::stderr().is_terminal();
    let summary = backfill::run(&opts)?;
    eprintln!("{}", summary.to_json());
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let for_hunt = match &args.for_hunt {
        Some(path) => Some(std::sync::Arc::new(
            huntflow::hunt::Hunt::load(path)
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
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backfill(args) => backfill(args),
        Command::Generate(args) => generate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("huntflow: {e:#}");
            ExitCode::from(2)
        }
    }
}
