//! `llm-usage`: reports from the LLM usage logs that tracing-llm-usage writes.
//!
//! ```text
//! llm-usage stats [PATHS]...          calls, runs, tokens, cost, time span
//! llm-usage report                    by step, prompt components, efficiency
//! llm-usage by step|model|provider|task|agent|run|day|ATTRIBUTE
//! llm-usage compare ATTRIBUTE [VALUES]   calls, tokens, cost, latency per value, vs the first
//! llm-usage run list | run show ID
//! llm-usage export [--output FILE]    one CSV row per call (stdout by default)
//! llm-usage reprice --prices FILE     the same calls under another price table
//! llm-usage budget --per-day 10       the days and runs that would have crossed a limit
//! llm-usage import PATHS --db usage.sqlite   load the logs into SQLite (or --db postgres://…)
//! llm-usage rollup --db usage.sqlite  sum the stored calls per day again
//! llm-usage collect                   receive OTLP traces and write the same logs
//! ```
//!
//! Every report reads a database instead of files when given `--db` (features `sqlite`,
//! `postgres`): the same numbers, from the lines `import` or the layer stored.
//!
//! PATHS are files (plain or `.gz`), directories (their `*.jsonl` and `*.jsonl.gz`) or `-` for
//! stdin; default `./llm_usage_logs`. Exit codes, the same for every command: 0; 1 when the
//! input has no usable line, cannot be read, names no such run, or (`--strict`) any line was
//! skipped; 2 for a usage error (a missing option, or one that does not apply).

mod agg;
#[cfg(feature = "collect")]
mod collect;
mod commands;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod db;
mod html;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod import;

mod output;
mod read;
mod replay;
mod runs;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use agg::{Dim, Needs};
use output::{render, Format};
use read::Filters;
use runs::Listing;
use tracing_llm_usage::pricing::PriceTable;

#[derive(Parser, Debug)]
#[command(
    name = "llm-usage",
    version,
    about = "Reports from tracing-llm-usage JSONL logs",
    after_help = "Reports: stats, report (--html FILE: one self-contained page), by \
                  step|model|provider|task|agent|run|day|ATTRIBUTE, compare ATTRIBUTE, run \
                  list, run show ID, export, reprice, budget; watch follows the logs live; \
                  import loads them into --db (rollup sums its calls per day again); collect \
                  receives OTLP traces from any language and writes the same logs. \
                  --where KEY=VALUE keeps the lines whose field or attribute KEY is VALUE.\n\
                  PATHS default to ./llm_usage_logs. Exit codes: 0; 1 when the input has no \
                  usable line, cannot be read, names no such run, or (--strict) any line was \
                  skipped; 2 for a usage error (an option that does not apply, a missing one)."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Common {
    /// From this date (YYYY-MM-DD, UTC) or RFC 3339 instant, inclusive.
    #[arg(long, global = true)]
    since: Option<String>,
    /// Up to this date (the whole day) or RFC 3339 instant, inclusive.
    #[arg(long, global = true)]
    until: Option<String>,
    /// Only this run.
    #[arg(long, global = true)]
    run: Option<String>,
    /// Only this model.
    #[arg(long, global = true)]
    model: Option<String>,
    /// Only this step.
    #[arg(long, global = true)]
    step: Option<String>,
    /// Only lines whose KEY is VALUE: a field (run_id, step, model, provider, task, agent) or
    /// an attribute (tenant, prompt.version, …). Repeatable: every one must match.
    #[arg(long = "where", global = true, value_name = "KEY=VALUE", value_parser = read::where_clause)]
    wheres: Vec<(String, String)>,
    /// Output format [default: table].
    #[arg(long, global = true, value_enum)]
    format: Option<Format>,
    /// Exit with 1 if any line was skipped (malformed, torn, too long).
    #[arg(long, global = true)]
    strict: bool,
    /// CSV cells exactly as logged. By default a text cell that begins with =, +, -, @, tab or
    /// carriage return gets a leading ' so that a spreadsheet shows it instead of running it
    /// as a formula; use this for programs that read the CSV.
    #[arg(long, global = true)]
    csv_raw: bool,
    /// Re-price every call with this table (LiteLLM JSON, or the TOML override format).
    #[arg(long, global = true)]
    prices: Option<PathBuf>,
    /// A database (SQLite file, or postgres:// URL) to read instead of files; for `import`,
    /// the one to load into.
    #[arg(long, global = true, value_name = "FILE|URL")]
    db: Option<String>,
}

impl Common {
    fn format(&self) -> Format {
        self.format.unwrap_or(Format::Table)
    }

    /// The first option given that `command` does not take, and the command's name.
    fn inapplicable(&self, command: &Command) -> Option<(&'static str, &'static str)> {
        let filters = [
            ("--since", self.since.is_some()),
            ("--until", self.until.is_some()),
            ("--run", self.run.is_some()),
            ("--model", self.model.is_some()),
            ("--step", self.step.is_some()),
            ("--where", !self.wheres.is_empty()),
        ];
        let given =
            |names: &[(&'static str, bool)]| names.iter().find(|(_, on)| *on).map(|(n, _)| *n);
        let format = ("--format", self.format.is_some());
        let prices = ("--prices", self.prices.is_some());
        let csv_raw = ("--csv-raw", self.csv_raw);
        match command {
            Command::Import { .. } => given(&[format, prices, csv_raw])
                .or(given(&filters))
                .map(|o| (o, "import")),
            #[cfg(feature = "collect")]
            Command::Collect(_) => given(&[format, csv_raw, ("--strict", self.strict)])
                .or(given(&filters))
                .map(|o| (o, "collect")),
            Command::Rollup => given(&[format, prices, csv_raw, ("--strict", self.strict)])
                .or(given(&filters))
                .map(|o| (o, "rollup")),
            Command::Watch { .. } => given(&[
                format,
                prices,
                csv_raw,
                ("--db", self.db.is_some()),
                ("--strict", self.strict),
            ])
            .or(given(&filters))
            .map(|o| (o, "watch")),
            Command::Export { .. } => given(&[format]).map(|o| (o, "export (always CSV)")),
            Command::Report { html: Some(_), .. } => {
                given(&[format, csv_raw]).map(|o| (o, "report --html"))
            }
            _ => None,
        }
    }
}

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
const NO_ENGINE: &str = "this llm-usage was built without a database: install it with \
     `cargo install llm-usage` (its default features)";

#[derive(Subcommand, Debug)]
enum Command {
    /// Calls, runs, tokens, cost, time span, estimated-token share.
    Stats {
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// The aggregation report: by step, by prompt component, efficiency.
    Report {
        /// Writes one self-contained HTML page instead (charts and tables, nothing fetched):
        /// spend per day, models, providers, steps, the costliest runs, latency, cache reads,
        /// budget lines.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// One table grouped by a dimension, most expensive first: step, model, provider, task,
    /// agent, run, day, or any attribute the lines carry (tenant, prompt.version, …).
    By {
        #[arg(value_name = "DIMENSION")]
        dimension: String,
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// Compares the values of an attribute (prompt versions, features, tenants): per value,
    /// calls, tokens per call, cost per call, cache-read share, output/input ratio, latency
    /// p50/p95, error rate; then each value's change against the first (the baseline).
    Compare {
        /// The attribute (`prompt.version`).
        attribute: String,
        /// The values to compare, the baseline first [default: every value, sorted], then
        /// the PATHS: an argument that names an existing file or directory (or `-`) is a path.
        #[arg(value_name = "VALUES|PATHS")]
        args: Vec<PathBuf>,
    },
    /// Runs.
    Run {
        #[command(subcommand)]
        command: RunCommand,
    },
    /// One CSV row per call, to stdout or --output.
    Export {
        /// The CSV file [default: - (stdout)].
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// What the same calls cost under the table given with --prices, per model.
    Reprice {
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// A live view of spend that follows the logs as they are written (new daily files
    /// too); plain lines when stdout is not a terminal. q, Esc or Ctrl-C quits.
    Watch {
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// Sums the calls stored in the database given with --db per day again (its table
    /// llm_daily), after rows were changed by hand.
    Rollup,
    /// Receives OTLP traces (gRPC and HTTP) from services in any language and writes the same
    /// lines as the layer: one per call, one summary per run (and rows in --db).
    #[cfg(feature = "collect")]
    Collect(Box<collect::CollectArgs>),
    /// Loads the logs into the database given with --db; lines already there are skipped.
    Import {
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// Replays the logs against a limit: the days and runs that would have crossed it.
    Budget {
        /// A limit per UTC day (USD, or tokens with --tokens).
        #[arg(long)]
        per_day: Option<f64>,
        /// A limit per run (USD, or tokens with --tokens).
        #[arg(long)]
        per_run: Option<f64>,
        /// The limits are token counts, not USD.
        #[arg(long)]
        tokens: bool,
        /// One limit per value of this attribute (`--per-day 5 --each tenant`: every tenant
        /// its own $5 a day); calls without it are not counted.
        #[arg(long, value_name = "ATTRIBUTE")]
        each: Option<String>,
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum RunCommand {
    /// Every run: status, calls, tokens, cost, time.
    List {
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
    /// One run: totals, elapsed, by step, its calls.
    Show {
        /// The run id.
        id: String,
        /// Log files (plain or .gz), directories (their *.jsonl and *.jsonl.gz) or - for
        /// stdin [default: ./llm_usage_logs]
        #[arg(value_name = "PATHS")]
        paths: Vec<PathBuf>,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!(
        "llm-usage: {}",
        tracing_llm_usage::__private::terminal(&msg.to_string())
    );
    ExitCode::from(1)
}

/// What a page covers: its inputs and filters, in words.
fn scope(inputs: &[read::Input], c: &Common) -> String {
    let names: Vec<String> = inputs.iter().map(read::Input::name).collect();
    let mut text = match names.as_slice() {
        [one] => one.clone(),
        [first, .., last] => format!("{} files, {first} to {last}", names.len()),
        [] => String::new(),
    };
    for (what, v) in [
        ("since", &c.since),
        ("until", &c.until),
        ("run", &c.run),
        ("model", &c.model),
        ("step", &c.step),
    ] {
        if let Some(v) = v {
            text.push_str(&format!("; {what} {v}"));
        }
    }
    for (k, v) in &c.wheres {
        text.push_str(&format!("; {k} = {v}"));
    }
    text
}

/// A skipped line's `file:line: reason`, inert on a terminal (a reason may quote the line).
fn problem(file: &str, line: u64, reason: &str) {
    eprintln!(
        "{}:{line}: {}",
        tracing_llm_usage::__private::terminal(file),
        tracing_llm_usage::__private::terminal(reason)
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let c = &cli.common;
    if let Some((option, command)) = c.inapplicable(&cli.command) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{option} does not apply to {command}"),
            )
            .exit();
    }
    let mut filters = Filters {
        run: c.run.clone(),
        model: c.model.clone(),
        step: c.step.clone(),
        wheres: c.wheres.clone(),
        ..Filters::default()
    };
    for (text, upper) in [(&c.since, false), (&c.until, true)] {
        if let Some(text) = text {
            match read::bound(text, upper) {
                Ok((b, exclusive)) if upper => {
                    filters.until = Some(b);
                    filters.until_exclusive = exclusive;
                }
                Ok((b, _)) => filters.since = Some(b),
                Err(e) => {
                    Cli::command()
                        .error(clap::error::ErrorKind::ValueValidation, e)
                        .exit();
                }
            }
        }
    }
    // An override file adds to the bundled table, as the builder's overrides do; a LiteLLM
    // file is a whole table.
    let prices = match &c.prices {
        Some(p) => match PriceTable::from_file_or_overrides(p) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        None => None,
    };
    #[cfg(feature = "collect")]
    if let Command::Collect(args) = &cli.command {
        return match collect::run(args, c.db.as_deref(), prices) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if let Command::Watch { paths } = &cli.command {
        return match watch::run(paths) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    let mut needs = Needs::default();
    let mut compared: (Vec<String>, Vec<PathBuf>) = Default::default();
    let dim = |d: Dim| agg::DIMS.iter().position(|x| *x == d).unwrap_or(0);
    let paths = match &cli.command {
        Command::Stats { paths } => {
            needs.count_runs = true;
            paths
        }
        Command::Report { paths, html } => {
            needs.count_runs = true;
            needs.dims[dim(Dim::Step)] = true;
            needs.prompt = true;
            needs.efficiency = true;
            if html.is_some() {
                needs.dims[dim(Dim::Model)] = true;
                needs.dims[dim(Dim::Provider)] = true;
                needs.runs = Listing::SumsWithStatus;
                needs.html = true;
            }
            paths
        }
        Command::By { paths, dimension } => {
            match group(dimension) {
                Group::Dim(d) => {
                    needs.dims[dim(d)] = true;
                    if d == Dim::Run {
                        needs.runs = Listing::Sums;
                    }
                }
                Group::Attribute(a) => needs.attribute = Some(a.to_owned()),
            }
            paths
        }
        Command::Compare { attribute, args } => {
            needs.compare = Some(attribute.clone());
            compared = split_compare_args(args);
            &compared.1
        }
        Command::Run {
            command: RunCommand::List { paths },
        } => {
            needs.runs = Listing::Listed;
            paths
        }
        Command::Run {
            command: RunCommand::Show { id, paths },
        } => {
            filters.run = Some(id.clone());
            needs.dims[dim(Dim::Step)] = true;
            needs.rows = true;
            needs.run_attributes = true;
            needs.runs = Listing::Listed;
            paths
        }
        Command::Export { paths, .. } => {
            needs.rows = true;
            paths
        }
        Command::Budget {
            paths,
            per_day,
            per_run,
            each,
            ..
        } => {
            needs.budget_each.clone_from(each);
            if per_day.is_none() && per_run.is_none() {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        "budget needs --per-day and/or --per-run",
                    )
                    .exit();
            }
            needs.budget = true;
            paths
        }
        Command::Import { paths } | Command::Watch { paths } => paths,
        Command::Rollup => return rollup(c.db.as_deref()),
        #[cfg(feature = "collect")]
        Command::Collect(_) => return ExitCode::SUCCESS,
        Command::Reprice { paths } => {
            let Some(table) = prices.clone() else {
                Cli::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        "reprice needs --prices FILE",
                    )
                    .exit();
            };
            needs.reprice = Some(table);
            paths
        }
    };
    if !matches!(cli.command, Command::Reprice { .. }) {
        needs.override_prices = prices;
    }
    if let Command::Import { paths } = &cli.command {
        return import(paths, c.db.as_deref(), c.strict);
    }

    let inputs = match (&c.db, paths.is_empty()) {
        (Some(db), true) => vec![read::Input::Db(db.clone())],
        (Some(_), false) => Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "give either PATHS or --db, not both",
            )
            .exit(),
        (None, _) => match read::inputs(paths) {
            Ok(i) => i,
            Err(e) => return fail(e),
        },
    };
    if inputs.is_empty() {
        return fail(
            "no log files found (PATHS are JSONL files, .gz files or directories of them; \
             the default is ./llm_usage_logs)",
        );
    }
    let limits = match &cli.command {
        Command::Budget {
            per_day,
            per_run,
            tokens,
            each,
            ..
        } => Some(replay::Limits {
            per_day: *per_day,
            per_run: *per_run,
            tokens: *tokens,
            each: each.is_some(),
        }),
        _ => None,
    };
    // `by`, `stats` and `run list` over a database: the database sums when it can, else the
    // lines are read.
    let summed = match (&cli.command, &c.db, &needs.override_prices) {
        (Command::By { dimension, .. }, Some(db), None) => match group(dimension) {
            Group::Dim(d) => by_in_db(db, &filters, d),
            Group::Attribute(_) => None,
        },
        (Command::Stats { .. }, Some(db), None) => match stats_in_db(db, &filters) {
            Some(Ok(scan)) => Some(scan),
            Some(Err(e)) => return fail(e),
            None => None,
        },
        (
            Command::Run {
                command: RunCommand::List { .. },
            },
            Some(db),
            None,
        ) => run_list_in_db(db, &filters, &needs),
        _ => None,
    };
    let scan = match summed {
        Some(scan) => scan,
        None => match read::scan(&inputs, &filters, &needs, limits) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
    };
    for (file, line, reason) in &scan.problems {
        problem(file, *line, reason);
    }
    let shown = scan.problems.len() as u64;
    if scan.problem_count > shown {
        eprintln!("... and {} more skipped lines", scan.problem_count - shown);
    }
    if scan.problem_count > 0 {
        eprintln!(
            "llm-usage: {} of {} lines skipped{}",
            scan.problem_count,
            scan.lines,
            if scan.torn > 0 {
                " (including a torn last line)"
            } else {
                ""
            }
        );
    }

    // Nothing readable is an error, not a table of zeros.
    if scan.problem_count >= scan.lines {
        return fail(if scan.lines == 0 {
            "the input holds no usage lines".to_owned()
        } else {
            format!("none of the {} lines is a usage line", scan.lines)
        });
    }

    let sections = match &cli.command {
        Command::Stats { .. } => {
            // From a database: the files imported, and every stored line as read (the
            // filters narrowed what travelled, as they narrow what a file's lines count for),
            // read with the sums when the database summed them.
            let (files, lines) = match (&c.db, scan.stored) {
                (Some(_), Some(stored)) => stored,
                (Some(db), None) => match imported_files(db) {
                    Ok(n) => n,
                    Err(e) => return fail(e),
                },
                (None, _) => (inputs.len() as u64, scan.lines),
            };
            commands::stats(&scan, files, lines)
        }
        Command::Report {
            html: Some(path), ..
        } => {
            let scope = scope(&inputs, c);
            let page = html::page(&scan, &scope, commands::run_count(&scan));
            return match std::fs::write(path, page) {
                Ok(()) => {
                    eprintln!(
                        "llm-usage: wrote {}",
                        tracing_llm_usage::__private::terminal(&path.display().to_string())
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("{}: {e}", path.display())),
            };
        }
        Command::Report { .. } => commands::report(&scan),
        Command::By { dimension, .. } => match group(dimension) {
            Group::Dim(d) => commands::by(&scan, d),
            Group::Attribute(a) => {
                if let Some(note) = commands::unseen_attribute(&scan, a) {
                    eprintln!("llm-usage: {note}");
                }
                commands::by_attribute(&scan, a)
            }
        },
        Command::Compare { attribute, .. } => {
            if let Some(note) = commands::unseen_attribute(&scan, attribute) {
                eprintln!("llm-usage: {note}");
            }
            commands::compare(&scan, &compared.0)
        }
        Command::Run {
            command: RunCommand::List { .. },
        } => commands::run_list(&scan),
        Command::Run {
            command: RunCommand::Show { id, .. },
        } => match commands::run_show(&scan, id) {
            Some(s) => s,
            None => return fail(format!("no run {id:?} in the logs")),
        },
        Command::Export { .. } => commands::export(&scan),
        Command::Reprice { .. } => commands::reprice(&scan),
        Command::Import { .. } | Command::Rollup => Vec::new(),
        #[cfg(feature = "collect")]
        Command::Collect(_) => Vec::new(),
        Command::Budget { tokens, each, .. } => {
            for note in commands::budget_notes(&scan, *tokens) {
                eprintln!("llm-usage: {note}");
            }
            commands::budget(&scan, *tokens, each.is_some())
        }
        Command::Watch { .. } => Vec::new(),
    };
    if c.format() == Format::Csv && sections.len() > 1 {
        let names: Vec<&str> = sections.iter().map(|s| s.name).collect();
        eprintln!(
            "llm-usage: {} tables ({}), one after the other, each after a `# name` line; a \
             spreadsheet wants one: `llm-usage by step --format csv`, or --format json",
            sections.len(),
            names.join(", ")
        );
    }
    if c.format() == Format::Table && sections.iter().all(output::Section::is_empty) {
        eprintln!(
            "llm-usage: nothing matches (check --since, --until, --run, --model, --step, --where)"
        );
        return ExitCode::SUCCESS;
    }
    let result = match &cli.command {
        Command::Export {
            output: Some(output),
            ..
        } if output.as_os_str() != "-" => std::fs::File::create(output).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            render(&mut w, &sections, Format::Csv, c.csv_raw)?;
            w.flush()
        }),
        Command::Export { .. } => render(
            &mut std::io::stdout().lock(),
            &sections,
            Format::Csv,
            c.csv_raw,
        ),
        _ => render(
            &mut std::io::stdout().lock(),
            &sections,
            c.format(),
            c.csv_raw,
        ),
    };
    if let Err(e) = result {
        // A closed pipe (`| head`) is not a failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return fail(e);
        }
    }
    if c.strict && scan.problem_count > 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// What `by` groups on: one of the line's fields, or an attribute.
enum Group<'a> {
    Dim(Dim),
    Attribute(&'a str),
}

fn group(dimension: &str) -> Group<'_> {
    use clap::ValueEnum;
    match Dim::from_str(dimension, false) {
        Ok(d) => Group::Dim(d),
        Err(_) => Group::Attribute(dimension),
    }
}

/// `compare`'s arguments after the attribute: values, and the paths among them (an argument
/// that names an existing file or directory, or `-`).
fn split_compare_args(args: &[PathBuf]) -> (Vec<String>, Vec<PathBuf>) {
    let (paths, values): (Vec<&PathBuf>, Vec<&PathBuf>) = args
        .iter()
        .partition(|p| p.as_os_str() == "-" || p.exists());
    (
        values
            .into_iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect(),
        paths.into_iter().cloned().collect(),
    )
}

/// `by <dim>` summed by the database `db`, when it can.
fn by_in_db(db: &str, filters: &Filters, dim: Dim) -> Option<read::Scan> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    return db::by(db, filters, dim);
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = (db, filters, dim);
        None
    }
}

/// `run list` computed by the database `db`, when it can.
fn run_list_in_db(db: &str, filters: &Filters, needs: &Needs) -> Option<read::Scan> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    return db::run_list(db, filters, needs);
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = (db, filters, needs);
        None
    }
}

/// `stats` computed by the database `db`, when it can.
fn stats_in_db(db: &str, filters: &Filters) -> Option<Result<read::Scan, String>> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    return db::stats(db, filters);
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = (db, filters);
        None
    }
}

/// `files` and `lines` for `stats --db`: the distinct files imported, the lines stored.
fn imported_files(db: &str) -> Result<(u64, u64), String> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    return db::imported_files(db).map_err(|e| format!("{db}: {e}"));
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    return Err(format!("{db}: {NO_ENGINE}"));
}

/// `llm-usage rollup --db TARGET`.
fn rollup(db: Option<&str>) -> ExitCode {
    let Some(db) = db else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "rollup needs --db FILE|URL",
            )
            .exit();
    };
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    return match db::rebuild_daily_sums(db) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    };
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    return fail(format!("{db}: {NO_ENGINE}"));
}

/// `llm-usage import PATHS --db TARGET`.
fn import(paths: &[PathBuf], db: Option<&str>, strict: bool) -> ExitCode {
    let Some(db) = db else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "import needs --db FILE|URL",
            )
            .exit();
    };
    let inputs = match read::inputs(paths) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    {
        let done = match import::import(&inputs, db, &mut std::io::stdout().lock()) {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        for (file, line, reason) in &done.problems {
            problem(file, *line, reason);
        }
        if done.problem_count > 0 {
            eprintln!(
                "llm-usage: {} of {} lines skipped",
                done.problem_count, done.lines
            );
        }
        // As for every report: nothing usable is an error.
        if done.problem_count >= done.lines {
            return fail(if done.lines == 0 {
                "the input holds no usage lines".to_owned()
            } else {
                format!("none of the {} lines is a usage line", done.lines)
            });
        }
        if strict && done.problem_count > 0 {
            return ExitCode::from(1);
        }
        ExitCode::SUCCESS
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = (inputs, strict);
        fail(format!("{db}: {NO_ENGINE}"))
    }
}
