//! Configuration: [`UsageLayerBuilder`] and the [`UsageGuard`] that flushes on drop.

use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing_appender::rolling::Rotation;
use tracing_subscriber::fmt::MakeWriter;

use crate::attributes::AttributeKeys;
use crate::budget::{Budget, BudgetEvent, Budgets};
use crate::guard::UsageGuard;
use crate::layer::{
    BlindSpots, BudgetCallback, Budgeting, Clock, ClosingFilter, Inner, Outputs, Pricer, UsageLayer,
};
use crate::ledger::{Ledger, LedgerLimits};
use crate::otel::{MetricOptions, Recorder};
use crate::pricing::PriceTable;
use crate::sink::private_files::{Modes, PrivateRolling};
use crate::sink::queue::Queue;
use crate::sink::writer::{LineWriter, SinkStats};
use crate::Error;
use opentelemetry::metrics::Meter;

type SpawnWriter = Box<dyn FnOnce(usize, Arc<SinkStats>) -> io::Result<LineWriter> + Send>;

enum Output {
    None,
    Dir(PathBuf, Rotation),
    Writer(SpawnWriter),
}

/// Configures a [`UsageLayer`]. Made by [`UsageLayer::builder`].
///
/// | setting | default |
/// |---|---|
/// | output ([`jsonl_dir`](Self::jsonl_dir), [`jsonl_writer`](Self::jsonl_writer)) | none: aggregates only |
/// | rotation ([`jsonl_dir_with_rotation`](Self::jsonl_dir_with_rotation)) | daily |
/// | [`span_name`](Self::span_name) | `llm_call` |
/// | [`genai_operations`](Self::genai_operations) | `chat`, `chat_streaming`, `text_completion`, `generate_content`, `embeddings` |
/// | [`prices`](Self::prices) | [`PriceTable::from_env`]: the file `LLM_USAGE_PRICES` names, else [`PriceTable::bundled`] |
/// | [`recent_runs`](Self::recent_runs) | 1,024 finished runs kept for [`crate::UsageHandle::run`] |
/// | [`orphan_runs`](Self::orphan_runs) | 1,024 runs open at once without a run span |
/// | [`max_groups`](Self::max_groups) | 2,000 (step, model, …) groups in the process totals |
/// | [`queue_capacity_bytes`](Self::queue_capacity_bytes) | 1 MiB per writer |
/// | [`shutdown_timeout`](Self::shutdown_timeout) | 10 s |
/// | [`file_mode`](Self::file_mode) / [`dir_mode`](Self::dir_mode) | `0o640` / `0o750` |
/// | [`meter`](Self::meter) | none: no metrics |
/// | [`metric_step_attribute`](Self::metric_step_attribute) / [`metric_task_attribute`](Self::metric_task_attribute) | on / on |
/// | [`metric_attribute_cap`](Self::metric_attribute_cap) | 64 distinct values per attribute |
/// | [`latest_experimental_metrics`](Self::latest_experimental_metrics) | from `OTEL_SEMCONV_STABILITY_OPT_IN` |
/// | [`attributes`](Self::attributes) | none: no span field is read beyond the layer's own |
/// | [`metric_attributes`](Self::metric_attributes) | none |
/// | [`budget`](Self::budget), [`on_budget`](Self::on_budget) | none |
#[must_use = "a builder does nothing until `build` is called"]
pub struct UsageLayerBuilder {
    span_name: String,
    inference_operations: Vec<Box<str>>,
    output: Output,
    recent_runs: usize,
    orphan_runs: usize,
    max_groups: usize,
    /// `None`: [`PriceTable::from_env`] at build time.
    prices: Option<PriceTable>,
    queue_bytes: usize,
    shutdown_timeout: Duration,
    meter: Option<Meter>,
    metric_options: MetricOptions,
    budgets: Vec<Budget>,
    on_budget: Option<BudgetCallback>,
    clock: Option<Clock>,
    modes: Modes,
    attributes: Vec<String>,
    metric_attributes: Vec<String>,
    #[cfg(feature = "logs")]
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    #[cfg(feature = "otlp")]
    log_delivery: Option<std::sync::Arc<crate::otlp::DeliveryStats>>,
    /// A database for live rows: a SQLite path or a PostgreSQL URL.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    database: Option<String>,
}

impl Default for UsageLayerBuilder {
    fn default() -> Self {
        Self {
            span_name: "llm_call".into(),
            inference_operations: crate::fields::DEFAULT_INFERENCE_OPERATIONS
                .iter()
                .map(|&op| op.into())
                .collect(),
            output: Output::None,
            recent_runs: 1024,
            orphan_runs: 1024,
            max_groups: 2000,
            prices: None,
            queue_bytes: 1 << 20,
            shutdown_timeout: Duration::from_secs(10),
            meter: None,
            metric_options: MetricOptions {
                step: true,
                task: true,
                cap: 64,
                latest_experimental: crate::otel::opted_in_from_env(),
            },
            budgets: Vec::new(),
            on_budget: None,
            clock: None,
            modes: Modes::default(),
            attributes: Vec::new(),
            metric_attributes: Vec::new(),
            #[cfg(feature = "logs")]
            logger_provider: None,
            #[cfg(feature = "otlp")]
            log_delivery: None,
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            database: None,
        }
    }
}

impl fmt::Debug for UsageLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let output = match &self.output {
            Output::None => "none".to_string(),
            Output::Dir(p, _) => p.display().to_string(),
            Output::Writer(_) => "writer".to_string(),
        };
        f.debug_struct("UsageLayerBuilder")
            .field("span_name", &self.span_name)
            .field("output", &output)
            .field("recent_runs", &self.recent_runs)
            .field("orphan_runs", &self.orphan_runs)
            .field("max_groups", &self.max_groups)
            .finish_non_exhaustive()
    }
}

impl UsageLayerBuilder {
    /// Writes JSONL to daily files `llm_usage.YYYY-MM-DD.jsonl` in `dir` (created if missing).
    pub fn jsonl_dir(self, dir: impl Into<PathBuf>) -> Self {
        self.jsonl_dir_with_rotation(dir, Rotation::DAILY)
    }

    /// Like [`jsonl_dir`](Self::jsonl_dir) with another rotation (hourly, never, …).
    pub fn jsonl_dir_with_rotation(mut self, dir: impl Into<PathBuf>, rotation: Rotation) -> Self {
        self.output = Output::Dir(dir.into(), rotation);
        self
    }

    /// Writes JSONL to any [`MakeWriter`] (a file, stdout, a test buffer). Lines are batched:
    /// one `write_all` may carry many complete lines, never part of one.
    pub fn jsonl_writer<M>(mut self, make_writer: M) -> Self
    where
        M: for<'a> MakeWriter<'a> + Send + 'static,
    {
        self.output = Output::Writer(Box::new(move |cap, stats| {
            LineWriter::spawn(make_writer, cap, stats)
        }));
        self
    }

    /// Also writes every line as a row of the `llm_usage` tables (see [`crate::store`]) in the
    /// SQLite file `path` (created if missing; WAL mode). Rows are made from the records
    /// themselves (the `line` column is the line as written) and inserted by a background
    /// thread, a batch per transaction; a failing database is counted in
    /// [`LayerStats`](crate::LayerStats) and reported once on stderr, never to the caller.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.database = Some(path.as_ref().display().to_string());
        self
    }

    /// Like [`sqlite`](Self::sqlite) into a PostgreSQL server (`postgres://user@host/db`).
    /// A lost connection is re-made; a batch that still fails is counted as dropped.
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, url: &str) -> Self {
        self.database = Some(url.to_owned());
        self
    }

    /// The name of the spans that are LLM calls (default `llm_call`).
    pub fn span_name(mut self, name: &str) -> Self {
        self.span_name = name.to_owned();
        self
    }

    /// The `gen_ai.operation.name` values whose spans are calls when they declare
    /// `gen_ai.usage.*` fields (default `chat`, `chat_streaming`, `text_completion`,
    /// `generate_content`, `embeddings`). Agent-level operations (`invoke_agent`,
    /// `create_agent`, `invoke_workflow`, `execute_tool`, `plan`) are never calls: they hand
    /// `gen_ai.agent.name` down, and their usage (the sum of their calls) is not counted again.
    pub fn genai_operations<I, T>(mut self, operations: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.inference_operations = operations
            .into_iter()
            .map(|op| op.as_ref().into())
            .collect();
        self
    }

    /// The permissions of the JSONL files and the SQLite database (and its WAL) the layer
    /// creates (default `0o640`: no access for others); files that exist keep their mode.
    #[cfg(unix)]
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.modes.file = mode;
        self
    }

    /// The permissions of the directories the layer creates for the JSONL files (default
    /// `0o750`); directories that exist keep their mode.
    #[cfg(unix)]
    pub fn dir_mode(mut self, mode: u32) -> Self {
        self.modes.dir = mode;
        self
    }

    /// How many finished run summaries the handle keeps (default 1,024).
    pub fn recent_runs(mut self, n: usize) -> Self {
        self.recent_runs = n;
        self
    }

    /// How many runs without a run span (a `run_id` on the calls only) are aggregated at once;
    /// the least recently used is summarised as `incomplete` to make room (default 1,024).
    pub fn orphan_runs(mut self, n: usize) -> Self {
        self.orphan_runs = n;
        self
    }

    /// How many distinct (model, provider, step, task) groups the process totals keep; calls
    /// past that are summed under `__other__` (default 2,000).
    pub fn max_groups(mut self, n: usize) -> Self {
        self.max_groups = n;
        self
    }

    /// The price table for `cost_usd` (default: [`PriceTable::from_env`], the file named by
    /// `LLM_USAGE_PRICES` if set, else [`PriceTable::bundled`]). A table given here is used as
    /// given, whatever the environment says. Pass `PriceTable::new()` to price nothing locally
    /// (only provider-reported costs; other calls are `unpriced`, without a warning).
    pub fn prices(mut self, table: PriceTable) -> Self {
        self.prices = Some(table);
        self
    }

    /// How many bytes of lines may wait for the writer before callers wait for room
    /// (default 1 MiB, about 2,300 call lines; the thread writing them holds as much again).
    /// The database writer has a queue of its own of this size (its records counted with
    /// their lines). Lines are never dropped for lack of room.
    pub fn queue_capacity_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// How long dropping the guard waits for queued lines to be written (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Records every call into OpenTelemetry instruments made once from `meter` (see
    /// [`crate::otel`]); with the `otlp` feature, [`crate::otlp::init`] gives one.
    ///
    /// With the default `bound-instruments` feature the instruments are bound once per
    /// attribute set, which `opentelemetry_sdk` 0.33 implements (the feature turns its
    /// support on); a meter from another implementation of the `opentelemetry` 0.33 API that
    /// does not override `bind` would drop the measurements: build without the feature then.
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Also emits every call, run summary and budget line as an OpenTelemetry log record into
    /// `provider` (see [`crate::otel::logs`]); with the `otlp` feature
    /// [`crate::otlp::OtlpMetrics::logger_provider`] gives one that exports over OTLP. The
    /// JSONL output is then optional.
    #[cfg(feature = "logs")]
    pub fn logger_provider(
        mut self,
        provider: &opentelemetry_sdk::logs::SdkLoggerProvider,
    ) -> Self {
        self.logger_provider = Some(provider.clone());
        self
    }

    /// Metrics and log records into an OTLP pipeline made by [`crate::otlp::init`]: what
    /// [`meter`](Self::meter) and [`logger_provider`](Self::logger_provider) do with its
    /// providers, and [`LayerStats`](crate::LayerStats) counts its log records' delivery.
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, otlp: &crate::otlp::OtlpMetrics) -> Self {
        self.meter = Some(otlp.meter());
        self.logger_provider = Some(otlp.logger_provider().clone());
        self.log_delivery = Some(otlp.delivery_stats());
        self
    }

    /// Whether metrics carry `llm.step` (default true).
    pub fn metric_step_attribute(mut self, on: bool) -> Self {
        self.metric_options.step = on;
        self
    }

    /// Whether metrics carry `llm.task` (default true).
    pub fn metric_task_attribute(mut self, on: bool) -> Self {
        self.metric_options.task = on;
        self
    }

    /// How many distinct values `llm.step` and `llm.task` each take before new ones become
    /// `__other__` (default 64).
    pub fn metric_attribute_cap(mut self, n: usize) -> Self {
        self.metric_options.cap = n;
        self
    }

    /// Also records the upcoming `gen_ai.client.inference.usage.*` counters (default: on when
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` includes `gen_ai_latest_experimental`).
    pub fn latest_experimental_metrics(mut self, on: bool) -> Self {
        self.metric_options.latest_experimental = on;
        self
    }

    /// The span fields that attribute spend: a tenant, a user, a feature, a prompt version
    /// (`["tenant", "user.id", "feature", "prompt.version"]`, your own names). Each is read from
    /// the call span, else from the nearest ancestor span that has it, so a tenant recorded
    /// once on the run span reaches every call of the run (a value recorded after a span
    /// opened counts for the calls that close after it). A call's line gets an `attributes`
    /// object with those that have a value, and a run summary its run span's; values are
    /// strings, numbers or booleans as recorded, text cut at
    /// [`MAX_VALUE_CHARS`](crate::attributes::MAX_VALUE_CHARS) characters (said in the line's
    /// `warnings`). [`UsageHandle::by_attribute`](crate::UsageHandle::by_attribute) totals them,
    /// [`Budget::each`] limits them.
    ///
    /// Nothing is read unless named here: attributes may be personal data (a user id), and
    /// they go wherever the lines go.
    pub fn attributes<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.attributes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds these of the [`attributes`](Self::attributes) to the token, cost and duration
    /// metrics (at most [`MAX_METRIC_ATTRIBUTES`](crate::otel::MAX_METRIC_ATTRIBUTES)). Each
    /// takes at most [`metric_attribute_cap`](Self::metric_attribute_cap) distinct values;
    /// later values are recorded as `__other__`, counted in
    /// [`LayerStats::metric_attribute_overflows`](crate::LayerStats::metric_attribute_overflows)
    /// and warned about once. None by default: every value is a series of every instrument,
    /// so add only attributes of few values (a tenant, a feature), never a user id.
    pub fn metric_attributes<I, T>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.metric_attributes = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a budget (several may be given): crossing it writes a `budget_exceeded` line,
    /// calls [`on_budget`](Self::on_budget) and counts `llm.budget.exceeded`; see
    /// [`crate::budget`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Called once for each budget warning and each exceeded budget, on the thread of the
    /// call that crossed it, after the layer's locks are released. A panic in it is caught.
    pub fn on_budget(mut self, f: impl Fn(&BudgetEvent) + Send + Sync + 'static) -> Self {
        self.on_budget = Some(Arc::new(f));
        self
    }

    /// Where the timestamps of calls and run summaries come from (default: the system
    /// clock). For tests of day boundaries and budgets per day.
    pub fn clock(mut self, now: impl Fn() -> crate::Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(now));
        self
    }

    /// The metric attributes as names, checked against the attributes; and every budget's
    /// attribute checked too.
    fn metric_attribute_names(&self, keys: &AttributeKeys) -> Result<Vec<crate::Name>, Error> {
        let known = |n: &str| keys.index(n).is_some();
        for b in &self.budgets {
            if let Some(a) = b.attributes().find(|a| !known(a)) {
                return Err(Error::Attributes(format!(
                    "budget \"{}\" is per \"{a}\", which is not among the builder's attributes",
                    b.name()
                )));
            }
        }
        if self.metric_attributes.len() > crate::otel::MAX_METRIC_ATTRIBUTES {
            return Err(Error::Attributes(format!(
                "at most {} metric attributes (each multiplies the series)",
                crate::otel::MAX_METRIC_ATTRIBUTES
            )));
        }
        self.metric_attributes
            .iter()
            .map(|a| match keys.index(a) {
                Some(i) => Ok(keys.names()[i].clone()),
                None => Err(Error::Attributes(format!(
                    "metric attribute \"{a}\" is not among the builder's attributes"
                ))),
            })
            .collect()
    }

    /// Builds the layer and the guard that flushes it.
    ///
    /// # Errors
    ///
    /// [`Error::LogDir`] or [`Error::Appender`] when the JSONL directory or file cannot be
    /// made, [`Error::Store`] when the database cannot be opened or is newer than this build,
    /// [`Error::Prices`] when `LLM_USAGE_PRICES` names a file that cannot be loaded,
    /// [`Error::WriterThread`] when the writer thread cannot start, [`Error::Config`] for an
    /// empty span name or a zero orphan capacity, [`Error::Attributes`] for an attribute name
    /// that is empty, repeated or a field the layer reads itself, a metric attribute or a
    /// budget's `each`/`only` attribute that is not among [`attributes`](Self::attributes),
    /// or more metric attributes than allowed.
    ///
    /// A USD budget limited to a model the table cannot price is reported on stderr: its
    /// calls would each write a `budget_unpriced` line instead of counting.
    #[must_use = "the layer must be added to a subscriber, and the guard kept alive"]
    pub fn build(self) -> Result<(UsageLayer, UsageGuard), Error> {
        if self.span_name.is_empty() {
            return Err(Error::Config("span_name must not be empty"));
        }
        let orphan_runs =
            NonZeroUsize::new(self.orphan_runs).ok_or(Error::Config("orphan_runs must be > 0"))?;
        let attribute_keys = AttributeKeys::new(&self.attributes).map_err(Error::Attributes)?;
        let metric_attributes = self.metric_attribute_names(&attribute_keys)?;
        let prices = match self.prices {
            Some(table) => table,
            None => PriceTable::from_env()?,
        };
        crate::budget::warn_unpriced_limits(&self.budgets, &prices);
        let stats = Arc::new(SinkStats::default());
        let writer = match self.output {
            Output::None => None,
            Output::Dir(dir, rotation) => {
                let files = PrivateRolling::new(&dir, rotation, self.modes)?;
                Some(
                    LineWriter::spawn(files, self.queue_bytes, stats.clone())
                        .map_err(Error::WriterThread)?,
                )
            }
            Output::Writer(spawn) => {
                Some(spawn(self.queue_bytes, stats.clone()).map_err(Error::WriterThread)?)
            }
        };
        let db_stats = Arc::new(SinkStats::default());
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        let db = match &self.database {
            Some(target) => {
                let sink = crate::store::sink::DbSink::open(target, self.modes)?;
                Some(
                    crate::sink::writer::Writer::start(sink, self.queue_bytes, db_stats.clone())
                        .map_err(Error::WriterThread)?,
                )
            }
            None => None,
        };
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        let db = None;
        let writers: Vec<LineWriter> = writer.into_iter().collect();
        let metric_overflows = Arc::new(AtomicU64::new(0));
        let metrics = self.meter.as_ref().map(|m| {
            let recorder = Recorder::with_attributes(
                m,
                self.metric_options,
                &metric_attributes,
                metric_overflows.clone(),
            );
            (m, recorder)
        });
        #[cfg(feature = "logs")]
        let logs = self
            .logger_provider
            .as_ref()
            .map(crate::otel::logs::LogEmitter::new);
        #[cfg(feature = "logs")]
        let has_logs = logs.is_some();
        #[cfg(not(feature = "logs"))]
        let (logs, has_logs) = ((), false);
        let sink = (!writers.is_empty() || db.is_some() || metrics.is_some() || has_logs)
            .then(|| Queue::new(writers, db, metrics, logs));
        // Interned: every call carries it, and an immortal name is shared without counting.
        let price_version = (!prices.is_empty()).then(|| crate::intern::intern(&prices.version()));
        let inner = Arc::new(Inner {
            span_name: self.span_name.into_boxed_str(),
            inference_operations: self.inference_operations.into_boxed_slice(),
            default_operation: crate::intern::intern("chat"),
            clock: self.clock.clone(),
            closing: ClosingFilter::default(),
            ledger: Ledger::new(
                LedgerLimits {
                    recent_runs: self.recent_runs,
                    orphan_runs,
                    max_groups: self.max_groups,
                },
                self.clock.clone(),
                attribute_keys.names(),
            ),
            pricer: Pricer {
                prices,
                unpriced: RwLock::default(),
                price_version,
            },
            budgeting: Budgeting {
                counter: self
                    .meter
                    .as_ref()
                    .filter(|_| !self.budgets.is_empty())
                    .map(|m| {
                        m.u64_counter("llm.budget.exceeded")
                            .with_description("Budgets exceeded (once per budget and run or day).")
                            .build()
                    }),
                budgets: Budgets::new(self.budgets),
                on_budget: self.on_budget,
                callback_panics: AtomicU64::new(0),
            },
            outputs: Outputs {
                queue: sink,
                stats,
                db_stats,
                metric_overflows,
                #[cfg(feature = "otlp")]
                log_delivery: self.log_delivery,
            },
            invalid_values: AtomicU64::new(0),
            blind_spots: BlindSpots::default(),
            attribute_keys,
            #[cfg(feature = "trace-context")]
            dispatch: std::sync::OnceLock::new(),
        });
        let guard = UsageGuard {
            inner: inner.clone(),
            timeout: self.shutdown_timeout,
            done: false,
        };
        Ok((UsageLayer { inner }, guard))
    }
}
