//! The `llm_usage` tables: the live sink and `llm-usage import` against SQLite (always) and
//! PostgreSQL (a real server, whose URL comes from `LLM_USAGE_TEST_POSTGRES`; `bash .ci/run`
//! starts one). Without the variable the PostgreSQL tests are reported as ignored, and fail
//! if run anyway (`--include-ignored`): never a silent pass.
//!
//! A custom harness (libtest-mimic) because only it can mark a test ignored at run time.

#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod common;

#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod store {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use assert_cmd::Command;
    use libtest_mimic::{Failed, Trial};
    use serde_json::Value;
    use tracing::field::Empty;
    use tracing_llm_usage::{Budget, UsageGuard, UsageHandle, UsageLayer, UsageLayerBuilder};

    use super::common::{self, Buf};

    const PG_VAR: &str = "LLM_USAGE_TEST_POSTGRES";
    /// The CA that signed the test server's certificate (`bash .ci/run` makes both).
    const PG_CA_VAR: &str = "LLM_USAGE_TEST_POSTGRES_CA";

    pub fn trials() -> Vec<Trial> {
        let mut trials = vec![
            Trial::test("sqlite_live_sink_holds_the_jsonl_lines", || {
                live_sink_holds_the_jsonl_lines(&Db::sqlite("live"))
            }),
            Trial::test("sqlite_import_is_idempotent_and_reports_match", || {
                import_is_idempotent_and_reports_match(&Db::sqlite("import"))
            }),
            Trial::test("sqlite_failing_database_is_counted_not_raised", || {
                sqlite_failing_database_is_counted()
            }),
            Trial::test("sqlite_newer_schema_is_refused", || {
                sqlite_newer_schema_is_refused()
            }),
            Trial::test("sqlite_older_schema_is_upgraded_newer_refused", || {
                schema_upgrade_and_newer_refused(&Db::sqlite("schema"))
            }),
            Trial::test("sqlite_streaming_and_modality_columns", || {
                streaming_and_modality_columns(&Db::sqlite("columns"))
            }),
            Trial::test("sqlite_attributes_in_sql_and_reports", || {
                attributes_in_sql_and_reports(&Db::sqlite("attributes"))
            }),
            Trial::test("sqlite_filters_and_sums_in_sql", || {
                filters_and_sums_in_sql(&Db::sqlite("pushdown"))
            }),
            Trial::test("sqlite_an_unfinished_import_is_said", || {
                unfinished_import_is_said(&Db::sqlite("unfinished"))
            }),
            Trial::test("sqlite_reload_adds_exactly_the_new_lines", || {
                reload_adds_exactly_the_new_lines(&Db::sqlite("reload"))
            }),
            Trial::test("import_skips_bad_lines_and_strict_fails", || {
                import_skips_bad_lines(&Db::sqlite("bad"))
            }),
            Trial::test("report_over_a_missing_database_fails", || {
                missing_database_fails()
            }),
            Trial::test(
                "sqlite_import_into_a_new_file_appears_whole_or_not_at_all",
                new_file_whole_or_not_at_all,
            ),
            Trial::test(
                "postgres_require_against_a_server_without_tls_fails",
                require_without_tls_fails,
            ),
        ];
        type PgTest = fn(&str) -> Result<(), Failed>;
        let pg_tests: [(&str, PgTest); 9] = [
            ("postgres_an_unfinished_import_is_said", |url| {
                unfinished_import_is_said(&Db::postgres(url, "unfinished")?)
            }),
            ("postgres_filters_and_sums_in_sql", |url| {
                filters_and_sums_in_sql(&Db::postgres(url, "pushdown")?)
            }),
            ("postgres_attributes_in_sql_and_reports", |url| {
                attributes_in_sql_and_reports(&Db::postgres(url, "attributes")?)
            }),
            ("postgres_reload_adds_exactly_the_new_lines", |url| {
                reload_adds_exactly_the_new_lines(&Db::postgres(url, "reload")?)
            }),
            ("postgres_streaming_and_modality_columns", |url| {
                streaming_and_modality_columns(&Db::postgres(url, "columns")?)
            }),
            ("postgres_older_schema_is_upgraded_newer_refused", |url| {
                schema_upgrade_and_newer_refused(&Db::postgres(url, "schema")?)
            }),
            ("postgres_live_sink_holds_the_jsonl_lines", |url| {
                live_sink_holds_the_jsonl_lines(&Db::postgres(url, "live")?)
            }),
            ("postgres_import_is_idempotent_and_reports_match", |url| {
                import_is_idempotent_and_reports_match(&Db::postgres(url, "import")?)
            }),
            (
                "postgres_killed_connection_loses_nothing",
                postgres_killed_connection,
            ),
        ];
        let url = std::env::var(PG_VAR).ok().filter(|u| !u.is_empty());
        if url.is_none() {
            eprintln!(
                "PostgreSQL tests ignored: {PG_VAR} is not set (bash .ci/run starts a server)"
            );
        }
        for (name, f) in pg_tests {
            trials.push(match url.clone() {
                Some(url) => Trial::test(name, move || f(&url)),
                None => Trial::test(name, || Err(format!("{PG_VAR} is not set").into()))
                    .with_ignored_flag(true),
            });
        }
        let ca = std::env::var(PG_CA_VAR).ok().filter(|c| !c.is_empty());
        type TlsTest = fn(&str, &str) -> Result<(), Failed>;
        let tls_tests: [(&str, TlsTest); 3] = [
            (
                "postgres_tls_verify_full_stores_exact_rows",
                tls_verify_full,
            ),
            (
                "postgres_tls_wrong_root_certificate_is_refused",
                tls_wrong_root,
            ),
            ("postgres_tls_disable_still_connects", tls_disable),
        ];
        for (name, f) in tls_tests {
            trials.push(match (url.clone(), ca.clone()) {
                (Some(url), Some(ca)) => Trial::test(name, move || f(&url, &ca)),
                _ => Trial::test(name, || {
                    Err(format!("{PG_VAR} and {PG_CA_VAR} are not both set").into())
                })
                .with_ignored_flag(true),
            });
        }
        trials
    }

    /// A database for one test: a SQLite file in a temp dir, or a fresh PostgreSQL database.
    struct Db {
        target: String,
        _dir: Option<tempfile::TempDir>,
        pg: bool,
    }

    impl Db {
        fn sqlite(name: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join(format!("{name}.sqlite"));
            Db {
                target: target.display().to_string(),
                _dir: Some(dir),
                pg: false,
            }
        }

        fn postgres(admin_url: &str, name: &str) -> Result<Self, Failed> {
            let db = format!("llm_usage_test_{name}_{}", std::process::id());
            let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)?;
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
            admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url, |(base, _)| base);
            Ok(Db {
                target: format!("{base}/{db}"),
                _dir: None,
                pg: true,
            })
        }

        fn builder(&self) -> UsageLayerBuilder {
            let b = UsageLayer::builder();
            if self.pg {
                b.postgres(&self.target)
            } else {
                b.sqlite(&self.target)
            }
        }

        /// One row of numbers from a query.
        fn numbers(&self, sql: &str) -> Vec<f64> {
            if self.pg {
                let mut c = postgres::Client::connect(&self.target, postgres::NoTls).unwrap();
                let row = c.query_one(sql, &[]).unwrap();
                (0..row.len())
                    .map(|i| row.get::<_, Option<f64>>(i).unwrap_or(0.0))
                    .collect()
            } else {
                let c = rusqlite::Connection::open(&self.target).unwrap();
                c.query_row(sql, [], |r| {
                    Ok((0..r.as_ref().column_count())
                        .map(|i| r.get::<_, Option<f64>>(i).unwrap().unwrap_or(0.0))
                        .collect())
                })
                .unwrap()
            }
        }

        fn strings(&self, sql: &str) -> Vec<String> {
            if self.pg {
                let mut c = postgres::Client::connect(&self.target, postgres::NoTls).unwrap();
                c.query(sql, &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            } else {
                let c = rusqlite::Connection::open(&self.target).unwrap();
                let mut s = c.prepare(sql).unwrap();
                let rows = s.query_map([], |r| r.get(0)).unwrap();
                rows.map(Result::unwrap).collect()
            }
        }

        fn execute(&self, sql: &str) {
            if self.pg {
                let mut c = postgres::Client::connect(&self.target, postgres::NoTls).unwrap();
                c.batch_execute(sql).unwrap();
            } else {
                rusqlite::Connection::open(&self.target)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
        }

        /// Takes migrations 5 and 6 back: the time indexes, the line count and its
        /// triggers, the imports under way, the daily sums and their triggers.
        fn undo_migrations_from_5(&self) {
            self.execute(
                "DROP INDEX llm_runs_time; DROP INDEX llm_events_time; DROP TABLE llm_loads;
                 DROP TABLE llm_daily",
            );
            if self.pg {
                self.execute("DROP FUNCTION llm_daily_removed, llm_daily_cleared CASCADE");
            } else {
                self.execute("DROP TRIGGER llm_usage_undaily");
            }
            if self.pg {
                self.execute(
                    "DROP TABLE llm_counts; DROP FUNCTION llm_count_added, llm_count_removed, \
                     llm_recount CASCADE",
                );
            } else {
                let mut sql = String::from("DROP TABLE llm_counts;");
                for t in ["llm_usage", "llm_runs", "llm_events"] {
                    sql.push_str(&format!(
                        "DROP TRIGGER {t}_counted; DROP TRIGGER {t}_uncounted;"
                    ));
                }
                self.execute(&sql);
            }
        }

        fn count(&self, table: &str) -> u64 {
            self.numbers(&format!(
                "SELECT CAST(count(*) AS DOUBLE PRECISION) FROM {table}"
            ))[0] as u64
        }
    }

    const MODELS: [(&str, &str); 3] = [
        ("gpt-4o", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("no-such-model", "acme"),
    ];

    /// `runs` runs of `calls` calls each, spread over `threads` threads; every number differs.
    fn workload(d: &tracing::Dispatch, threads: u64, runs: u64, calls: u64) {
        std::thread::scope(|s| {
            for t in 0..threads {
                let d = d.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        for r in (0..runs).filter(|r| r % threads == t) {
                            let run = tracing::info_span!("run", run_id = %format!("run-{r}"));
                            let _run = run.enter();
                            for c in 0..calls {
                                let (model, provider) = MODELS[((r + c) % 3) as usize];
                                let step = ["plan", "act", "sum\"mary\n"][(c % 3) as usize];
                                let span = tracing::info_span!(
                                    "llm_call",
                                    step,
                                    model,
                                    provider,
                                    task = "t",
                                    tokens.input = Empty,
                                    tokens.output = Empty,
                                    tokens.cache_read = Empty,
                                    prompt.system = Empty
                                );
                                span.record("tokens.input", 1000 + r * 7 + c);
                                span.record("tokens.output", 10 + c * 3);
                                span.record("tokens.cache_read", c * 2);
                                span.record("prompt.system", 50 + c);
                            }
                        }
                    });
                });
            }
        });
    }

    fn live(db: &Db) -> (tracing::Dispatch, UsageHandle, UsageGuard, Buf) {
        common::setup(db.builder().budget(Budget::per_run("cap").tokens(3000)))
    }

    fn live_sink_holds_the_jsonl_lines(db: &Db) -> Result<(), Failed> {
        let (d, handle, guard, buf) = live(db);
        workload(&d, 4, 40, 12);
        assert!(guard.shutdown());
        let stats = handle.stats();
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        let values = common::parse_lines(&text);
        assert_eq!(common::calls(&values).len(), 480);
        assert_eq!(common::summaries(&values).len(), 40);
        assert_eq!(stats.lines_written, lines.len() as u64);
        assert_eq!(stats.db_lines_written, lines.len() as u64);
        assert_eq!((stats.db_lines_dropped, stats.db_errors), (0, 0));

        // Every line is a row, byte for byte (the two outputs may interleave threads
        // differently, so compared as sorted lists).
        let mut want: Vec<&str> = lines.clone();
        want.sort_unstable();
        let mut got = db.strings(
            "SELECT line FROM llm_usage UNION ALL SELECT line FROM llm_runs
             UNION ALL SELECT line FROM llm_events",
        );
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(db.count("llm_usage"), 480);
        if !db.pg {
            let mode: String = rusqlite::Connection::open(&db.target)?.query_row(
                "PRAGMA journal_mode",
                [],
                |r| r.get(0),
            )?;
            assert_eq!(mode, "wal");
        }
        assert_eq!(db.count("llm_runs"), 40);
        let budget_lines = values
            .iter()
            .filter(|v| v["event"] != "llm_call" && v["event"] != "run_summary")
            .count() as u64;
        assert!(budget_lines > 0);
        assert_eq!(db.count("llm_events"), budget_lines);

        // The columns hold the lines' numbers exactly.
        let calls = common::calls(&values);
        let sum = |f: &dyn Fn(&Value) -> f64| calls.iter().map(|v| f(v)).sum::<f64>();
        let cols = db.numbers(
            "SELECT CAST(sum(input_tokens) AS DOUBLE PRECISION),
                    CAST(sum(output_tokens) AS DOUBLE PRECISION),
                    CAST(sum(total_tokens) AS DOUBLE PRECISION),
                    CAST(sum(cache_read_tokens) AS DOUBLE PRECISION),
                    sum(cost_usd),
                    CAST(sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
             FROM llm_usage",
        );
        let tokens = |k: &'static str| move |v: &Value| v["tokens"][k].as_f64().unwrap();
        assert_eq!(cols[0], sum(&tokens("input")));
        assert_eq!(cols[1], sum(&tokens("output")));
        assert_eq!(cols[2], sum(&tokens("total")));
        assert_eq!(cols[3], sum(&tokens("cache_read")));
        let cost = sum(&|v| v["cost_usd"].as_f64().unwrap_or(0.0));
        assert!((cols[4] - cost).abs() < 1e-9, "{} vs {cost}", cols[4]);
        assert_eq!(cols[5], 160.0, "the unknown model's calls are unpriced");
        let runs = db.numbers(
            "SELECT CAST(sum(call_count) AS DOUBLE PRECISION),
                    CAST(sum(input_tokens) AS DOUBLE PRECISION) FROM llm_runs",
        );
        assert_eq!(runs, [480.0, sum(&tokens("input"))]);
        let step = db.strings("SELECT DISTINCT step FROM llm_usage WHERE step LIKE 'sum%'");
        assert_eq!(step, ["sum\"mary\n"]);

        // Loading the same JSONL into the database fed live adds nothing.
        let jsonl = db
            ._dir
            .as_ref()
            .map_or_else(std::env::temp_dir, |d| d.path().to_owned())
            .join(format!("live-{}.jsonl", std::process::id()));
        std::fs::write(&jsonl, &text)?;
        let out = llm_usage(&["import", path(&jsonl), "--db", &db.target]);
        assert!(
            out.contains(&format!("{} lines, 0 rows added", lines.len())),
            "{out}"
        );
        std::fs::remove_file(&jsonl)?;
        Ok(())
    }

    fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn llm_usage(args: &[&str]) -> String {
        let out = Command::cargo_bin("llm-usage")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "llm-usage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    /// A log with every line kind: the CLI fixture, then a generated workload.
    fn log_file(dir: &Path) -> PathBuf {
        let (d, _h, guard, buf) =
            common::setup(UsageLayer::builder().budget(Budget::per_run("cap").tokens(3000)));
        workload(&d, 1, 30, 9);
        drop(guard);
        let mut text = std::fs::read_to_string(fixture().join("usage.jsonl")).unwrap();
        text.push_str(&buf.text());
        let p = dir.join("usage.jsonl");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Files that repeat lines already stored, mostly (`import` looks ids up first) or
    /// partly (the look-ups stop): each adds exactly its new lines.
    fn reload_adds_exactly_the_new_lines(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let file = |name: &str, lines: std::ops::Range<u64>| {
            let text: String = lines
                .map(|i| {
                    format!(
                        "{{\"timestamp\":\"2025-12-14T10:30:15.123Z\",\"event\":\"llm_call\",\"run_id\":\"r{}\",\"tokens\":{{\"input\":{i},\"output\":2}}}}\n",
                        i % 97
                    )
                })
                .collect();
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        for (name, lines, added) in [
            ("a.jsonl", 0..12_000, 12_000),
            ("b.jsonl", 0..13_000, 1_000),
            ("c.jsonl", 10_000..30_000, 17_000),
        ] {
            let p = file(name, lines.clone());
            let out = llm_usage(&["import", path(&p), "--db", &db.target]);
            let n = lines.end - lines.start;
            assert!(
                out.contains(&format!(
                    "{n} lines, {added} rows added, {} already there",
                    n - added
                )),
                "{out}"
            );
        }
        assert_eq!(db.count("llm_usage"), 30_000);
        let sum = db.numbers("SELECT CAST(sum(input_tokens) AS DOUBLE PRECISION) FROM llm_usage");
        assert_eq!(sum, [(0..30_000u64).sum::<u64>() as f64]);
        Ok(())
    }

    fn import_is_idempotent_and_reports_match(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let log = log_file(dir.path());
        let lines = std::fs::read_to_string(&log)?.lines().count();
        let first = llm_usage(&["import", path(&log), "--db", &db.target]);
        assert!(
            first.contains(&format!(
                "{lines} lines, {lines} rows added, 0 already there"
            )),
            "{first}"
        );
        let counts = |db: &Db| ["llm_usage", "llm_runs", "llm_events"].map(|t| db.count(t));
        let after_first = counts(db);
        assert_eq!(after_first.iter().sum::<u64>(), lines as u64);
        let second = llm_usage(&["import", path(&log), "--db", &db.target]);
        assert!(
            second.contains(&format!("{lines} lines, 0 rows added")),
            "{second}"
        );
        assert_eq!(counts(db), after_first);

        // Every report over --db is the report over the file, to the byte.
        let prices = fixture().join("prices.toml");
        let commands: Vec<Vec<&str>> = vec![
            vec!["stats"],
            vec!["stats", "--format", "json"],
            vec!["report"],
            vec!["report", "--format", "csv"],
            vec!["by", "step"],
            vec!["by", "model", "--format", "json"],
            vec!["by", "provider"],
            vec!["by", "task"],
            vec!["by", "agent"],
            vec!["by", "run"],
            vec!["by", "day"],
            vec!["run", "list"],
            vec!["run", "show", "run-a"],
            vec!["run", "show", "run-7", "--format", "json"],
            vec!["export", "--output", "-"],
            vec!["reprice", "--prices", path(&prices)],
            vec!["budget", "--per-day", "0.05", "--per-run", "0.01"],
            vec![
                "by",
                "model",
                "--since",
                "2025-12-14",
                "--until",
                "2025-12-14",
            ],
            vec!["by", "step", "--model", "gpt-4o", "--run", "run-a"],
        ];
        for args in commands {
            let mut files = args.clone();
            files.push(path(&log));
            let mut from_db = args.clone();
            from_db.extend(["--db", &db.target]);
            let want = llm_usage(&files);
            assert!(want.len() > 20, "{args:?}: {want}");
            assert_eq!(llm_usage(&from_db), want, "{args:?}");
        }
        Ok(())
    }

    /// The attributed service's log imported (half of it by the live sink): per-tenant sums in
    /// SQL are the lines' sums, every attribute report over `--db` is the report over the
    /// file, and a store at the previous schema gains the column, filled from its lines.
    fn attributes_in_sql_and_reports(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let log = common::attributed_log(dir.path());
        let text = std::fs::read_to_string(&log)?;
        let lines = common::parse_lines(&text);
        llm_usage(&["import", path(&log), "--db", &db.target]);
        let mut want: Vec<(String, u64, u64)> = Vec::new();
        for tenant in common::TENANTS {
            let calls: Vec<&Value> = common::calls(&lines)
                .into_iter()
                .filter(|l| l["attributes"]["tenant"] == tenant)
                .collect();
            let input = calls
                .iter()
                .map(|l| l["tokens"]["input"].as_u64().unwrap())
                .sum();
            let nano: u64 = calls
                .iter()
                .map(|l| (l["cost_usd"].as_f64().unwrap() * 1e9).round() as u64)
                .sum();
            want.push((tenant.to_owned(), input, nano));
        }
        let per_tenant = |sql: &str| -> Vec<(String, u64, u64)> {
            db.strings(sql)
                .into_iter()
                .map(|row| {
                    let mut parts = row.split('|');
                    let mut next = || parts.next().unwrap_or("").to_owned();
                    (next(), next().parse().unwrap(), next().parse().unwrap())
                })
                .collect()
        };
        let sql = if db.pg {
            "SELECT concat_ws('|', attributes->>'tenant', sum(input_tokens),
                 sum(round(cost_usd * 1e9)::bigint))
             FROM llm_usage GROUP BY attributes->>'tenant' ORDER BY attributes->>'tenant'"
        } else {
            "SELECT json_extract(attributes, '$.tenant') || '|' || sum(input_tokens) || '|' ||
                 sum(CAST(round(cost_usd * 1e9) AS INTEGER))
             FROM llm_usage GROUP BY json_extract(attributes, '$.tenant')
             ORDER BY json_extract(attributes, '$.tenant')"
        };
        assert_eq!(per_tenant(sql), want);
        let runs = if db.pg {
            "SELECT attributes->>'tenant' FROM llm_runs ORDER BY run_id"
        } else {
            "SELECT json_extract(attributes, '$.tenant') FROM llm_runs ORDER BY run_id"
        };
        assert_eq!(
            db.strings(runs),
            ["acme", "acme", "globex", "globex", "initech", "initech"]
        );

        let commands: Vec<Vec<&str>> = vec![
            vec!["by", "tenant"],
            vec!["by", "prompt.version", "--format", "json"],
            vec!["compare", "prompt.version"],
            vec!["compare", "tenant", "globex", "acme", "--format", "csv"],
            vec!["stats", "--where", "tenant=acme"],
            vec![
                "by",
                "model",
                "--where",
                "tenant=initech",
                "--where",
                "prompt.version=v2",
            ],
            vec!["run", "show", "globex-1"],
            vec!["budget", "--per-day", "0.04", "--each", "tenant"],
        ];
        let check = |commands: &[Vec<&str>]| {
            for args in commands {
                let mut files = args.clone();
                files.push(path(&log));
                let mut from_db = args.clone();
                from_db.extend(["--db", &db.target]);
                let want = llm_usage(&files);
                assert!(want.len() > 20, "{args:?}: {want}");
                assert_eq!(llm_usage(&from_db), want, "{args:?}");
            }
        };
        check(&commands);

        // The live sink fills the column too.
        {
            let (d, _h, guard, _buf) =
                common::setup(db.builder().attributes(["tenant", "prompt.version"]));
            tracing::dispatcher::with_default(&d, || {
                let run = tracing::info_span!("run", run_id = "live-1", tenant = "umbrella");
                let _r = run.enter();
                drop(tracing::info_span!(
                    "llm_call",
                    model = "gpt-4o",
                    prompt.version = 7u64,
                    tokens.input = 11u64,
                    tokens.output = 1u64
                ));
            });
            assert!(guard.shutdown());
        }
        let live = if db.pg {
            "SELECT concat_ws('|', attributes->>'tenant', attributes->>'prompt.version',
                 jsonb_typeof(attributes->'prompt.version'))
             FROM llm_usage WHERE run_id = 'live-1'"
        } else {
            "SELECT json_extract(attributes, '$.tenant') || '|' ||
                 json_extract(attributes, '$.\"prompt.version\"') || '|' ||
                 json_type(attributes, '$.\"prompt.version\"')
             FROM llm_usage WHERE run_id = 'live-1'"
        };
        let number = if db.pg { "number" } else { "integer" };
        assert_eq!(db.strings(live), [format!("umbrella|7|{number}")]);

        // The previous schema: no attribute columns, version 3. The next open adds them and
        // fills them from the stored lines.
        db.undo_migrations_from_5();
        db.execute(
            "ALTER TABLE llm_usage DROP COLUMN attributes; ALTER TABLE llm_runs DROP COLUMN attributes;
             UPDATE llm_schema SET version = 3",
        );
        let out = llm_usage(&["import", path(&log), "--db", &db.target]);
        assert!(out.contains("0 rows added"), "{out}");
        assert_eq!(
            db.numbers("SELECT CAST(version AS DOUBLE PRECISION) FROM llm_schema"),
            [6.0]
        );
        assert_eq!(per_tenant(sql)[..3], want[..]);
        assert_eq!(
            db.strings(runs),
            ["acme", "acme", "globex", "globex", "initech", "initech", "umbrella"]
        );
        Ok(())
    }

    /// Reports over `--db` ask the database: the filters are conditions on the rows (a time
    /// window through the `timestamp` index), `by` sums per group in SQL; every output is the
    /// files' to the byte, and a hostile value is matched literally or refused.
    fn filters_and_sums_in_sql(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        // Every line kind, unpriced calls, errors, reused run ids, several days, attributes.
        let log = log_file(dir.path());
        let attributed = common::attributed_log(dir.path());
        let mut both = std::fs::read_to_string(&log)?;
        both.push_str(&std::fs::read_to_string(&attributed)?);
        let all = dir.path().join("all.jsonl");
        std::fs::write(&all, both)?;
        llm_usage(&["import", path(&all), "--db", &db.target]);
        let mut commands: Vec<Vec<&str>> = Vec::new();
        for dim in [
            "step", "model", "provider", "task", "agent", "day", "run", "tenant", "", "list",
            "report", "compare", "budget", "export", "show",
        ] {
            for filter in [
                vec![],
                vec!["--since", "2026-03-03"],
                vec!["--since", "2025-12-14T10:30:00Z", "--until", "2026-03-02"],
                vec!["--until", "2026-03-02T09:00:05.000Z"],
                vec!["--model", "gpt-4o"],
                vec![
                    "--where",
                    "provider=anthropic",
                    "--where",
                    "task=onboarding",
                ],
                vec!["--run", "run-a"],
                vec!["--step", "answer", "--where", "tenant=globex"],
            ] {
                // `stats` where the dimension is empty; then every other report.
                let mut args = match dim {
                    "" => vec!["stats"],
                    "list" => vec!["run", "list"],
                    "report" => vec!["report"],
                    "compare" => vec!["compare", "tenant"],
                    "budget" => vec!["budget", "--per-day", "0.01", "--per-run", "0.005"],
                    "export" => vec!["export"],
                    "show" => vec!["run", "show", "run-a"],
                    _ => vec!["by", dim],
                };
                args.extend(filter);
                commands.push(args.clone());
                args.extend(["--format", "json"]);
                commands.push(args);
            }
        }
        commands.push(vec![
            "stats",
            "--where",
            "run_id=run-b",
            "--since",
            "2026-03-02",
        ]);
        commands.push(vec!["report", "--where", "tenant=acme"]);
        commands.push(vec!["run", "list", "--until", "2026-03-02"]);
        commands.push(vec!["budget", "--per-day", "0.01", "--since", "2026-03-02"]);
        for args in &commands {
            let mut files = args.clone();
            files.push(path(&all));
            let mut from_db = args.clone();
            from_db.extend(["--db", &db.target]);
            let out = |args: &[&str]| {
                Command::cargo_bin("llm-usage")
                    .unwrap()
                    .args(args)
                    .output()
                    .unwrap()
            };
            let (want, got) = (out(&files), out(&from_db));
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&want.stdout),
                "{args:?}"
            );
            assert_eq!(got.status.code(), want.status.code(), "{args:?}");
        }

        // The time window is an index range.
        let mut filter = tracing_llm_usage::store::LineFilter::default();
        filter.since = Some("2026-03-03T00:00:00.000Z".into());
        filter.until = Some("2026-03-04T00:00:00.000Z".into());
        filter.until_exclusive = true;
        let mut store = tracing_llm_usage::store::Store::open_existing(&db.target)?;
        if db.pg {
            // A small table is scanned whatever its indexes: ask for the plan an index allows.
            let mut c = postgres::Client::connect(&db.target, postgres::NoTls)?;
            let name = db.target.rsplit('/').next().unwrap_or("");
            c.batch_execute(&format!("ALTER DATABASE {name} SET enable_seqscan = off"))?;
            drop(store);
            store = tracing_llm_usage::store::Store::open_existing(&db.target)?;
        }
        let plan = store.explain_lines(&filter)?;
        for index in ["llm_usage_time", "llm_runs_time", "llm_events_time"] {
            assert!(plan.contains(index), "{index}: {plan}");
        }
        drop(store);

        // Hostile values are values: matched literally on both engines, the tables intact.
        for hostile in [
            "model='; DROP TABLE llm_usage; --",
            "tenant=$.tenant",
            "tenant=' OR '1'='1",
            "step=%",
        ] {
            let out = Command::cargo_bin("llm-usage")?
                .args(["by", "model", "--where", hostile, "--db", &db.target])
                .output()?;
            assert!(out.status.success(), "{hostile}");
            assert!(
                out.stdout.is_empty(),
                "{hostile}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let out = Command::cargo_bin("llm-usage")?
            .args(["stats", "--where", "a\"b=x", "--db", &db.target])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be looked up"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(db.count("llm_usage") > 0);

        // `stats`, `by` and `run list` are the columns' sums: lines changed behind the
        // columns' back change a report that reads lines, not them.
        let run = |args: &[&str], source: &str| {
            let mut args = args.to_vec();
            args.extend(["--format", "json"]);
            if source == "db" {
                args.extend(["--db", &db.target]);
            } else {
                args.push(source);
            }
            let out = Command::cargo_bin("llm-usage")
                .unwrap()
                .args(args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let report_before = run(&["report"], "db");
        db.execute("UPDATE llm_usage SET line = replace(line, '\"input\":', '\"in\":')");
        assert_ne!(run(&["report"], "db"), report_before);
        for args in [
            &["stats"][..],
            &["by", "run"],
            &["by", "step"],
            &["by", "day"],
            &["run", "list"],
            &["run", "list", "--until", "2026-03-02"],
        ] {
            assert_eq!(run(args, "db"), run(args, path(&all)), "{args:?}");
        }

        // Costs are summed in nano-dollars, in any order the same: these three add up to
        // exactly $0.09875 (as doubles, in this order, to 0.09874999999999999: $0.0987).
        let exact = dir.path().join("exact.jsonl");
        let call = |second: u32, cost: &str| {
            format!(
                r#"{{"timestamp":"2027-01-01T00:00:0{second}.000Z","event":"llm_call","run_id":"run-exact","step":"s","model":"m","tokens":{{"input":1,"output":1,"total":2}},"cost_usd":{cost}}}"#
            )
        };
        let lines = [
            call(1, "0.019545649"),
            call(2, "0.077728337"),
            call(3, "0.001476014"),
        ];
        std::fs::write(&exact, lines.join("\n") + "\n")?;
        llm_usage(&["import", path(&exact), "--db", &db.target]);
        for args in [
            &["by", "run", "--run", "run-exact"][..],
            &["by", "step", "--run", "run-exact"],
            &["run", "list", "--run", "run-exact"],
            &["by", "model", "--since", "2027-01-01"],
        ] {
            let mut files = args.to_vec();
            files.push(path(&exact));
            let mut from_db = args.to_vec();
            from_db.extend(["--db", &db.target]);
            let want = llm_usage(&files);
            assert!(want.contains("$0.0988"), "{args:?}: {want}");
            assert_eq!(llm_usage(&from_db), want, "{args:?}");
        }

        // Whole days are read from the daily sums: a change to them shows in `by` and
        // `stats`, not in a window that cuts a day (read from the calls); `rollup` makes
        // them again from the calls.
        let everything = ["--until", "2100-01-01T00:00:00.001Z"];
        let from_calls = |args: &[&str]| {
            let mut args = args.to_vec();
            args.extend(everything);
            run(&args, "db")
        };
        let by_step = run(&["by", "step"], "db");
        assert_eq!(from_calls(&["by", "step"]), by_step);
        db.execute("UPDATE llm_daily SET input_tokens = input_tokens + 1000");
        assert_ne!(run(&["by", "step"], "db"), by_step);
        assert_ne!(run(&["stats"], "db"), from_calls(&["stats"]));
        assert_eq!(from_calls(&["by", "step"]), by_step);
        llm_usage(&["rollup", "--db", &db.target]);
        assert_eq!(run(&["by", "step"], "db"), by_step);
        // Deleted calls leave the daily sums (a day, and a whole run).
        db.execute("DELETE FROM llm_usage WHERE run_id = 'run-a' OR timestamp < '2026-03-03'");
        for args in [
            &["by", "step"][..],
            &["by", "day"],
            &["by", "model", "--since", "2026-03-03"],
            &["stats"],
        ] {
            assert_eq!(run(args, "db"), from_calls(args), "{args:?}");
        }
        if db.pg {
            db.execute("TRUNCATE llm_usage");
            assert_eq!(db.count("llm_daily"), 0);
        }
        Ok(())
    }

    /// An import cut short (its first transactions stored, the process gone) is said by every
    /// report over the store until an import finishes; a store at an older schema version
    /// gains the table that notes imports, and the daily sums of its calls, when next opened.
    fn unfinished_import_is_said(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let log = log_file(dir.path());
        llm_usage(&["import", path(&log), "--db", &db.target]);
        if db.pg {
            // The import vacuumed what it loaded: every page of the calls is marked
            // all-visible, so index-only scans need not visit the table.
            let [visible, pages] = db.numbers(
                "SELECT relallvisible::float8, relpages::float8 FROM pg_class \
                 WHERE relname = 'llm_usage'",
            )[..] else {
                unreachable!()
            };
            assert!(pages > 0.0);
            assert_eq!(visible, pages);
        }
        db.undo_migrations_from_5();
        db.execute("UPDATE llm_schema SET version = 4");
        let version = "SELECT CAST(version AS DOUBLE PRECISION) FROM llm_schema";
        let mut store = tracing_llm_usage::store::Store::open(&db.target)?;
        assert_eq!(db.numbers(version), [6.0]);
        // The daily sums were made from the calls already there.
        let calls = db.count("llm_usage");
        assert!(calls > 0);
        assert_eq!(
            db.numbers("SELECT CAST(sum(calls) AS DOUBLE PRECISION) FROM llm_daily"),
            [calls as f64]
        );
        store.prepare_bulk()?;
        let late = r#"{"timestamp":"2027-02-01T10:00:00.000Z","event":"llm_call","run_id":"late","tokens":{"input":5,"output":1}}"#;
        assert_eq!(store.insert(&[late])?.added, 1);
        drop(store);
        let stats = |args: &[&str]| {
            let mut args = args.to_vec();
            args.extend(["--db", &db.target]);
            let out = Command::cargo_bin("llm-usage")
                .unwrap()
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stderr).unwrap()
        };
        let pid = format!("pid {}", std::process::id());
        for args in [&["stats"][..], &["by", "step"], &["report"]] {
            let err = stats(args);
            assert!(
                err.contains("has not finished") && err.contains(&pid),
                "{args:?}: {err}"
            );
        }
        llm_usage(&["import", path(&log), "--db", &db.target]);
        let err = stats(&["stats"]);
        assert!(!err.contains("has not finished"), "{err}");
        assert_eq!(db.count("llm_loads"), 0);
        Ok(())
    }

    /// A new SQLite file is loaded beside its place and moved there when complete: a load
    /// that fails leaves neither the file nor its scratch copy; one that succeeds, the file
    /// alone, each input counted in its own line however the transactions fell.
    fn new_file_whole_or_not_at_all() -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs)?;
        let fixture = std::fs::read_to_string(fixture().join("usage.jsonl"))?;
        let lines: Vec<&str> = fixture.lines().collect();
        // Three files, the middle one empty.
        std::fs::write(logs.join("a.jsonl"), lines[..10].join("\n") + "\n")?;
        std::fs::write(logs.join("b.jsonl"), "")?;
        std::fs::write(logs.join("c.jsonl"), lines[10..].join("\n") + "\n")?;
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };

        // The second input is not gzip: the load fails after storing the first.
        let broken = dir.path().join("broken");
        std::fs::create_dir(&broken)?;
        std::fs::write(broken.join("a.jsonl"), lines[..10].join("\n") + "\n")?;
        std::fs::write(broken.join("b.jsonl.gz"), "not gzip at all")?;
        let target = dir.path().join("db").join("usage.sqlite");
        std::fs::create_dir(dir.path().join("db"))?;
        let out = Command::cargo_bin("llm-usage")?
            .args(["import", path(&broken), "--db", path(&target)])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("b.jsonl.gz"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(names(&dir.path().join("db")).is_empty());

        let out = Command::cargo_bin("llm-usage")?
            .args(["import", path(&logs), "--db", path(&target)])
            .output()?;
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout)?;
        let n = lines.len() - 10;
        assert_eq!(
            stdout,
            format!(
                "{a}: 10 lines, 10 rows added, 0 already there, 0 skipped\n\
                 {b}: 0 lines, 0 rows added, 0 already there, 0 skipped\n\
                 {c}: {n} lines, {n} rows added, 0 already there, 0 skipped\n",
                a = logs.join("a.jsonl").display(),
                b = logs.join("b.jsonl").display(),
                c = logs.join("c.jsonl").display(),
            )
        );
        assert_eq!(names(&dir.path().join("db")), ["usage.sqlite"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)?.permissions().mode() & 0o777;
            // As a store the library makes (the JSONL files' mode).
            assert_eq!(mode, 0o640);
        }
        let db = Db {
            target: path(&target).to_owned(),
            pg: false,
            _dir: None,
        };
        assert_eq!(
            db.count("llm_usage") + db.count("llm_runs") + db.count("llm_events"),
            lines.len() as u64
        );
        assert_eq!(
            db.numbers("SELECT count(DISTINCT path) FROM llm_imports"),
            [3.0]
        );
        // The moved file is an ordinary store: a report reads it, and loading again adds
        // nothing.
        let again = Command::cargo_bin("llm-usage")?
            .args(["import", path(&logs), "--db", path(&target)])
            .output()?;
        assert!(String::from_utf8(again.stdout)?
            .contains(&format!("{n} lines, 0 rows added, {n} already there")));
        Ok(())
    }

    fn import_skips_bad_lines(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let good = std::fs::read_to_string(fixture().join("usage.jsonl"))?;
        let first = good.lines().next().unwrap();
        let p = dir.path().join("bad.jsonl");
        std::fs::write(
            &p,
            format!("{first}\nnot json\n{{\"event\":\"llm_call\",\"timestamp\":\"soon\"}}\n{first}\n{{\"event\":\"llm_call\""),
        )?;
        let out = Command::cargo_bin("llm-usage")?
            .args(["import", path(&p), "--db", &db.target])
            .output()?;
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout)?;
        let stderr = String::from_utf8(out.stderr)?;
        // The repeated line is a second call identical to the millisecond: a row of its own.
        assert!(
            stdout.contains("5 lines, 2 rows added, 0 already there, 3 skipped"),
            "{stdout}"
        );
        assert!(stderr.contains("bad.jsonl:2: "), "{stderr}");
        assert!(
            stderr.contains("bad.jsonl:3: timestamp \"soon\" is not RFC 3339"),
            "{stderr}"
        );
        assert!(stderr.contains("bad.jsonl:5: torn last line"), "{stderr}");
        assert_eq!(db.count("llm_usage"), 2);
        let strict = Command::cargo_bin("llm-usage")?
            .args(["import", "--strict", path(&p), "--db", &db.target])
            .output()?;
        assert_eq!(strict.status.code(), Some(1));
        assert_eq!(db.count("llm_usage"), 2);
        Ok(())
    }

    fn missing_database_fails() -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("none.sqlite");
        let out = Command::cargo_bin("llm-usage")?
            .args(["stats", "--db", path(&missing)])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8(out.stderr)?.contains("no database file"));
        assert!(!missing.exists(), "a report must not create a database");
        let both = Command::cargo_bin("llm-usage")?
            .args(["stats", "x.jsonl", "--db", path(&missing)])
            .output()?;
        assert_eq!(both.status.code(), Some(2));
        Ok(())
    }

    /// Waits (without asserting on time) until `n` lines reached the database.
    fn wait_for_rows(handle: &UsageHandle, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while handle.stats().db_lines_written < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn sqlite_failing_database_is_counted() -> Result<(), Failed> {
        let db = Db::sqlite("failing");
        let (d, handle, guard, buf) = common::setup(db.builder());
        workload(&d, 1, 5, 4);
        wait_for_rows(&handle, 25);
        rusqlite::Connection::open(&db.target)?.execute_batch("DROP TABLE llm_usage")?;
        // The application carries on (a panic here would fail the test).
        workload(&d, 2, 10, 4);
        assert!(guard.shutdown());
        let stats = handle.stats();
        let lines = buf.text().lines().count() as u64;
        assert_eq!(lines, 25 + 50);
        assert_eq!(stats.lines_written, lines, "the JSONL is not affected");
        assert_eq!(stats.db_lines_written + stats.db_lines_dropped, lines);
        assert!(stats.db_lines_dropped >= 40, "{stats:?}");
        assert!(stats.db_errors >= 1);
        assert_eq!(db.count("llm_runs"), 5 + (50 - stats.db_lines_dropped));
        Ok(())
    }

    fn sqlite_newer_schema_is_refused() -> Result<(), Failed> {
        let db = Db::sqlite("newer");
        drop(db.builder().build()?);
        let c = rusqlite::Connection::open(&db.target)?;
        assert_eq!(
            c.query_row("SELECT version FROM llm_schema", [], |r| r.get::<_, i64>(0))?,
            6
        );
        c.execute("UPDATE llm_schema SET version = 7", [])?;
        let err = db.builder().build().err().unwrap();
        assert_eq!(
            err.to_string(),
            "usage database: the database is at schema version 7, newer than the 6 this build \
             knows: use a newer tracing-llm-usage"
        );
        let out = Command::cargo_bin("llm-usage")?
            .args(["stats", "--db", &db.target])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8(out.stderr)?.contains("schema version 7"));
        Ok(())
    }

    /// A streamed call with a modality breakdown: its columns hold the line's values.
    fn streaming_and_modality_columns(db: &Db) -> Result<(), Failed> {
        let (d, _handle, guard, _buf) = common::setup(db.builder());
        tracing::dispatcher::with_default(&d, || {
            drop(tracing::info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = "openai",
                gen_ai.request.model = "gpt-4o",
                gen_ai.request.stream = true,
                gen_ai.response.time_to_first_chunk = 0.321,
                gen_ai.usage.input_tokens = 700u64,
                gen_ai.usage.output_tokens = 20u64,
                gen_ai.usage.audio.input_tokens = 500u64
            ));
            drop(tracing::info_span!(
                "llm_call",
                model = "gpt-4o",
                tokens.input = 1u64,
                tokens.output = 1u64
            ));
        });
        assert!(guard.shutdown());
        let stream_true = if db.pg { "true" } else { "1" };
        assert_eq!(
            db.strings(
                "SELECT coalesce(CAST(stream AS TEXT), '-') || ' ' \
                 || coalesce(CAST(ttft_ms AS TEXT), '-') FROM llm_usage ORDER BY input_tokens"
            ),
            ["- -".to_owned(), format!("{stream_true} 321")]
        );
        assert_eq!(
            db.strings("SELECT CAST(modality AS TEXT) FROM llm_usage WHERE modality IS NOT NULL")
                .iter()
                .map(|m| serde_json::from_str::<Value>(m).unwrap())
                .collect::<Vec<_>>(),
            [serde_json::json!({"audio": {"input": 500}})]
        );
        Ok(())
    }

    fn with_params(url: &str, params: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{params}")
    }

    /// `verify-full` against the test CA: the live sink and `import` store exact rows.
    fn tls_verify_full(url: &str, ca: &str) -> Result<(), Failed> {
        let db = Db::postgres(url, "tls")?;
        let tls = Db {
            target: with_params(&db.target, &format!("sslmode=verify-full&sslrootcert={ca}")),
            _dir: None,
            pg: true,
        };
        let (d, handle, guard, buf) = common::setup(tls.builder());
        workload(&d, 2, 4, 5);
        assert!(guard.shutdown());
        let stats = handle.stats();
        let lines = buf.text().lines().count() as u64;
        assert_eq!((stats.db_lines_written, stats.db_errors), (lines, 0));
        let values = common::parse_lines(&buf.text());
        assert_eq!(common::calls(&values).len(), 20);
        assert_eq!(db.count("llm_usage"), 20);
        let input: f64 = common::calls(&values)
            .iter()
            .map(|v| v["tokens"]["input"].as_f64().unwrap())
            .sum();
        assert_eq!(
            db.numbers("SELECT CAST(sum(input_tokens) AS DOUBLE PRECISION) FROM llm_usage"),
            [input]
        );
        // `import` over the same TLS URL adds nothing: every line is there.
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("tls.jsonl");
        std::fs::write(&log, buf.text())?;
        let out = llm_usage(&["import", path(&log), "--db", &tls.target]);
        assert!(
            out.contains(&format!("{lines} lines, 0 rows added")),
            "{out}"
        );
        Ok(())
    }

    /// A root certificate that did not sign the server's: refused, by the layer and the CLI.
    fn tls_wrong_root(url: &str, _ca: &str) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let other_ca = common::unrelated_ca(dir.path());
        let target = with_params(
            url,
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        );
        let err = UsageLayer::builder()
            .postgres(&target)
            .build()
            .expect_err("refused")
            .to_string();
        assert!(err.contains("certificate"), "{err}");
        let out = Command::cargo_bin("llm-usage")?
            .args(["stats", "--db", &target])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8(out.stderr)?.contains("certificate"));
        Ok(())
    }

    fn tls_disable(url: &str, _ca: &str) -> Result<(), Failed> {
        let db = Db::postgres(url, "plain")?;
        let plain = Db {
            target: with_params(&db.target, "sslmode=disable"),
            _dir: None,
            pg: true,
        };
        let (d, _handle, guard, _buf) = common::setup(plain.builder());
        workload(&d, 1, 2, 3);
        assert!(guard.shutdown());
        assert_eq!(db.count("llm_usage"), 6);
        Ok(())
    }

    /// `require` against a server that answers the TLS request with "no": a clear error.
    fn require_without_tls_fails() -> Result<(), Failed> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 8]; // the SSLRequest packet
                if stream.read_exact(&mut request).is_ok() {
                    let _ = stream.write_all(b"N");
                }
            }
        });
        let url = format!("postgres://llm:hunter2@127.0.0.1:{port}/usage?sslmode=require");
        let err = UsageLayer::builder()
            .postgres(&url)
            .build()
            .expect_err("refused")
            .to_string();
        assert!(err.contains("TLS"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let out = Command::cargo_bin("llm-usage")?
            .args(["stats", "--db", &url])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr)?;
        assert!(stderr.contains("TLS"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(stderr.contains("postgres://llm:***@127.0.0.1"), "{stderr}");
        Ok(())
    }

    /// A database taken back to schema version 1 (migration 2's objects dropped) is brought up
    /// to date by the next open, rows kept; one at a version above the build's is refused.
    fn schema_upgrade_and_newer_refused(db: &Db) -> Result<(), Failed> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("one.jsonl");
        let first = std::fs::read_to_string(fixture().join("usage.jsonl"))?;
        std::fs::write(&log, format!("{}\n", first.lines().next().unwrap()))?;
        llm_usage(&["import", path(&log), "--db", &db.target]);
        db.undo_migrations_from_5();
        db.execute(
            "ALTER TABLE llm_usage DROP COLUMN stream; ALTER TABLE llm_usage DROP COLUMN ttft_ms;
             ALTER TABLE llm_usage DROP COLUMN modality; ALTER TABLE llm_usage DROP COLUMN attributes;
             ALTER TABLE llm_runs DROP COLUMN attributes;
             DROP TABLE llm_events; DROP TABLE llm_imports; DROP INDEX llm_usage_seq;
             DROP INDEX llm_usage_time; DROP INDEX llm_usage_model; DROP INDEX llm_usage_provider;
             DROP INDEX llm_usage_step; DROP INDEX llm_usage_run; DROP INDEX llm_runs_seq;
             DROP INDEX llm_runs_run; UPDATE llm_schema SET version = 1",
        );
        assert_eq!(
            db.numbers("SELECT CAST(version AS DOUBLE PRECISION) FROM llm_schema"),
            [1.0]
        );
        let out = llm_usage(&["import", path(&log), "--db", &db.target]);
        assert!(
            out.contains("1 lines, 0 rows added, 1 already there"),
            "{out}"
        );
        assert_eq!(
            db.numbers("SELECT CAST(version AS DOUBLE PRECISION) FROM llm_schema"),
            [6.0]
        );
        assert_eq!(db.count("llm_events"), 0);
        assert_eq!(db.count("llm_imports"), 1);
        assert_eq!(db.count("llm_usage"), 1);
        // Migration 5 counted the rows already there.
        assert_eq!(
            db.numbers("SELECT CAST(lines AS DOUBLE PRECISION) FROM llm_counts"),
            [1.0]
        );

        db.execute("UPDATE llm_schema SET version = 7");
        let out = Command::cargo_bin("llm-usage")?
            .args(["import", path(&log), "--db", &db.target])
            .output()?;
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr)?;
        assert!(
            err.contains("the database is at schema version 7, newer than the 6"),
            "{err}"
        );
        Ok(())
    }

    fn postgres_killed_connection(url: &str) -> Result<(), Failed> {
        let db = Db::postgres(url, "killed")?;
        let (d, handle, guard, buf) = common::setup(db.builder());
        workload(&d, 2, 10, 5);
        wait_for_rows(&handle, 60);
        let mut admin = postgres::Client::connect(url, postgres::NoTls)?;
        let killed = admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'tracing-llm-usage' AND datname = $1",
            &[&db.target.rsplit('/').next().unwrap_or("")],
        )?;
        assert_eq!(killed.len(), 1, "the sink's one connection");
        workload(&d, 2, 10, 5);
        assert!(guard.shutdown());
        let stats = handle.stats();
        let lines = buf.text().lines().count() as u64;
        assert_eq!(lines, 120);
        assert_eq!((stats.db_lines_written, stats.db_lines_dropped), (120, 0));
        assert_eq!(db.count("llm_usage"), 100);
        assert_eq!(db.count("llm_runs"), 20);
        Ok(())
    }
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn main() {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, store::trials()).exit();
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn main() {
    eprintln!("the store tests need --features sqlite,postgres,cli");
}
