//! The command line: `serve`, `check`, `pathway lint`, `db migrate`, `audit verify`, ...
//! Errors name the file and, for JSON input, the path of the offending field.

use crate::pathway;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "orderguard",
    version,
    about = "Clinical decision support for vertebral compression fracture order sets"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a CDS Hooks request or a native order set (auto-detected) and print the answer:
    /// the CDS Hooks response (`{"cards": [...]}`) or the native decision. Exit 0 whatever the
    /// findings; exit 2 on input that cannot be read.
    Check {
        /// The file to check, or `-` for standard input.
        file: String,
        /// The evaluation time (RFC 3339); defaults to the order set's `evaluated_at`, else now.
        #[arg(long)]
        now: Option<DateTime<Utc>>,
        /// A pathway file to use instead of the shipped one.
        #[arg(long)]
        pathway: Option<PathBuf>,
        /// Also record the decision in the audit log (DATABASE_URL, else the embedded cluster).
        #[arg(long)]
        audit: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run the CDS Hooks service.
    Serve {
        /// Configuration file (JSON); the environment overrides it (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// A pathway file to use instead of the shipped one.
        #[arg(long)]
        pathway: Option<PathBuf>,
        /// Accept calls without a client JWT. For local demonstrations only.
        #[arg(long)]
        insecure_no_auth: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Database administration.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Audit-log integrity.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Work with pathway files.
    Pathway {
        #[command(subcommand)]
        command: PathwayCommand,
    },
    /// Print a quality report (see README: reports). The read is recorded in the audit log.
    Report(ReportArgs),
    /// Demonstration data.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// Replay stored decisions: what a draft pathway would have said about them (what-if), or,
    /// with --verify-determinism, that the version which decided each one reproduces it exactly
    /// (exit 1 on any difference). Writes nothing to the decision tables; the run is recorded as
    /// one audit event.
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The report: alert-burden, override-by-rule, override-by-reason, suggestion-acceptance,
    /// by-prescriber, by-encounter, vcf-adherence, augmentation, mme, missing-inputs.
    name: String,
    /// Start (inclusive): RFC 3339 time or date. Default: 30 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// End (exclusive; a date includes that day). Default: now.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
    /// Comma-separated column names, `-name` for descending.
    #[arg(long, allow_hyphen_values = true)]
    sort: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    rule: Option<String>,
    #[arg(long)]
    severity: Option<String>,
    /// Prescriber (user reference).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    encounter: Option<String>,
    #[arg(long)]
    unit: Option<String>,
    #[arg(long)]
    pathway_version: Option<String>,
    /// Override reason code.
    #[arg(long)]
    reason: Option<String>,
    /// Print the query time and row count to standard error (benchmarks).
    #[arg(long)]
    timing: bool,
    /// Read the audit tables only, not the daily rollups (`db refresh-rollups`); same numbers,
    /// slower over long windows.
    #[arg(long)]
    raw: bool,
    /// Read from a replica instead of the audit database.
    #[arg(long, env = "REPORTS_DATABASE_URL", hide_env_values = true)]
    reports_database_url: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The draft pathway to replay under (what-if).
    #[arg(
        long,
        required_unless_present = "verify_determinism",
        conflicts_with = "verify_determinism"
    )]
    pathway: Option<PathBuf>,
    /// Replay each decision under its own recorded pathway version and report any difference.
    #[arg(long)]
    verify_determinism: bool,
    /// Decisions evaluated at or after this time (RFC 3339, or a date = its midnight UTC).
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Decisions evaluated before this time.
    #[arg(long, value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
    /// Report this rule only (what-if).
    #[arg(long, conflicts_with = "verify_determinism")]
    rule: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: crate::replay::output::Format,
    /// Also write a self-contained HTML page with a before/after chart per rule (what-if).
    #[arg(long, conflicts_with = "verify_determinism")]
    html: Option<PathBuf>,
    /// Also write every card change (decision id, rule, order ref, kind, severities) as CSV.
    #[arg(long, conflicts_with = "verify_determinism")]
    changes: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Who runs the replay, as recorded in the audit event (default: cli:$USER).
    #[arg(long, env = "ORDERGUARD_ACTOR")]
    actor: Option<String>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Write realistic decisions (the real engine on varied order sets), findings and feedback
    /// through the real audit writer. Synthetic patients, prescribers and encounters only.
    Seed {
        /// How many decisions.
        #[arg(long)]
        decisions: u64,
        /// Spread over the last D days.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// The random seed (same seed, same data).
        #[arg(long, default_value_t = 20261201)]
        seed: u64,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// RFC 3339, or a bare date meaning its midnight UTC.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{s:?}: expected an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Where the audit database is: `DATABASE_URL`, else a private cluster under `--data-dir`.
#[derive(Debug, clap::Args)]
struct DbArgs {
    /// PostgreSQL connection string; absent = the embedded cluster under --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Folder for the embedded cluster (`postgres/`) and the audit spool (`spool/`).
    #[arg(long, env = "ORDERGUARD_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the schema migrations (and create the coming months' partitions).
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Fold the report rollups: every closed day (older than --settle-minutes) not folded yet,
    /// and folded days whose decisions changed or whose cards were answered since the last run.
    /// Run it every few minutes (a timer); reports read raw rows for days not folded.
    RefreshRollups {
        /// A day is folded once it ended this many minutes ago.
        #[arg(long, default_value_t = 60)]
        settle_minutes: u64,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk every hash chain and report the first break of each. Exit 1 on any break.
    Verify {
        /// A checkpoint written by `audit checkpoint`, to detect a truncated tail.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the head of every chain (JSON) for keeping outside the database; signed with
    /// HMAC-SHA-256 when ORDERGUARD_CHECKPOINT_KEY is set.
    Checkpoint {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PathwayCommand {
    /// Validate a pathway file: schema errors with their JSON path, then semantic errors
    /// (unknown rule kind, unknown value set, threshold in the wrong unit). Exit 1 on problems.
    Lint { file: PathBuf },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            file,
            now,
            pathway,
            audit,
            db,
        } => check(&file, now, pathway.as_deref(), audit.then_some(db)),
        Command::Serve {
            config,
            listen,
            pathway,
            insecure_no_auth,
            db,
        } => run_async(serve(config, listen, pathway, insecure_no_auth, db)),
        Command::Db {
            command: DbCommand::Migrate { db },
        } => run_async(async move {
            let database = Database::open(&db).await?;
            eprintln!("migrations applied");
            database.close().await;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Db {
            command: DbCommand::RefreshRollups { settle_minutes, db },
        } => run_async(async move {
            let database = Database::open(&db).await?;
            let started = std::time::Instant::now();
            let bar = progress_bar(0, "{pos}/{len} days folded (eta {eta})");
            let folded = crate::reports::refresh_with_progress(
                &database.pool,
                std::time::Duration::from_secs(settle_minutes * 60),
                crate::reports::IN_FLIGHT,
                |done, total| {
                    bar.set_length(total.max(0) as u64);
                    bar.set_position(done.max(0) as u64);
                },
            )
            .await;
            bar.finish_and_clear();
            database.close().await;
            eprintln!(
                "report rollups: {} days folded in {:.1} s",
                folded?,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }),
        Command::Audit {
            command: AuditCommand::Verify { checkpoint, db },
        } => run_async(verify(checkpoint, db)),
        Command::Audit {
            command: AuditCommand::Checkpoint { out, db },
        } => run_async(checkpoint(out, db)),
        Command::Pathway {
            command: PathwayCommand::Lint { file },
        } => lint(&file),
        Command::Report(args) => run_async(report(args)),
        Command::Demo {
            command:
                DemoCommand::Seed {
                    decisions,
                    days,
                    seed,
                    db,
                },
        } => run_async(demo_seed(decisions, days, seed, db)),
        Command::Replay(args) => run_async(replay(args)),
    }
}

async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    use crate::reports::{ReportName, ReportQuery};
    let Some(name) = ReportName::parse(&args.name) else {
        let known: Vec<&str> = ReportName::ALL.iter().map(|r| r.as_str()).collect();
        eprintln!(
            "orderguard report: no report {:?}; reports: {}",
            args.name,
            known.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let limit = args.limit.map(|l| l.to_string());
    let given = [
        ("from", args.from.as_deref()),
        ("to", args.to.as_deref()),
        ("sort", args.sort.as_deref()),
        ("limit", limit.as_deref()),
        ("rule", args.rule.as_deref()),
        ("severity", args.severity.as_deref()),
        ("user", args.user.as_deref()),
        ("encounter", args.encounter.as_deref()),
        ("unit", args.unit.as_deref()),
        ("pathway_version", args.pathway_version.as_deref()),
        ("reason", args.reason.as_deref()),
    ];
    let params = given.iter().filter_map(|(k, v)| v.map(|v| (*k, v)));
    let query = match ReportQuery::from_params(params, Utc::now()).and_then(|q| {
        q.check(name)?;
        Ok(q)
    }) {
        Ok(q) => q,
        Err(e) => {
            eprintln!(
                "orderguard report: --{}: {}",
                e.param.replace('_', "-"),
                e.message
            );
            return Ok(ExitCode::from(2));
        }
    };
    let database = Database::open(&args.db).await?;
    let read_pool = match &args.reports_database_url {
        Some(url) => crate::reports::connect_read_pool(url)?,
        None => database.pool.clone(),
    };
    let started = std::time::Instant::now();
    let source = if args.raw {
        crate::reports::Source::Raw
    } else {
        crate::reports::Source::Auto
    };
    let table = crate::reports::run_from(&read_pool, name, &query, source).await;
    let elapsed = started.elapsed();
    let table = match table {
        Ok(table) => table,
        Err(e) => {
            database.close().await;
            return Err(e.into());
        }
    };
    // The read is recorded like a staff route's: who (the OS user), which report and window.
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let event = crate::audit::EventRecord {
        kind: "staff.read".into(),
        actor,
        decision_id: None,
        payload: serde_json::json!({
            "route": "orderguard report",
            "report": name,
            "from": query.from,
            "to": query.to,
            "filters": query.filters,
            "sort": query.sort,
            "limit": query.limit,
            "rows": table.rows.len(),
        }),
    };
    let mut config = crate::audit::WriterConfig::new(args.db.data_dir.join("spool"));
    config.lanes = 1;
    let recorded = match crate::audit::AuditWriter::start(database.pool.clone(), config).await {
        Ok(writer) => {
            let result = writer.record_event(event).await;
            writer.shutdown().await;
            result
        }
        Err(e) => Err(e),
    };
    database.close().await;
    recorded.map_err(|e| anyhow::anyhow!("the read could not be recorded: {e}"))?;
    if args.timing {
        eprintln!(
            "query: {:.1} ms, {} rows",
            elapsed.as_secs_f64() * 1e3,
            table.rows.len()
        );
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        ReportFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&table)?),
        ReportFormat::Csv => out.write_all(&table.to_csv()?),
        ReportFormat::Table => write!(out, "{}", text_table(&table)),
    };
    // A closed pipe (`| head`) is the reader's choice.
    let _ = written;
    Ok(ExitCode::SUCCESS)
}

/// Columns aligned for a terminal: numbers right, text left.
fn text_table(table: &crate::reports::ReportTable) -> String {
    use crate::reports::ColumnKind;
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| match v {
                    serde_json::Value::Null => "-".to_owned(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.name.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric = |i: usize| {
        matches!(
            table.columns[i].kind,
            ColumnKind::Integer | ColumnKind::Number | ColumnKind::Percent
        )
    };
    let line = |values: Vec<&str>| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if numeric(i) {
                    format!("{v:>w$}", w = widths[i])
                } else {
                    format!("{v:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = format!("{}\n", table.title);
    text += &line(table.columns.iter().map(|c| c.name.as_str()).collect());
    text.push('\n');
    for row in &cells {
        text += &line(row.iter().map(String::as_str).collect());
        text.push('\n');
    }
    text += &format!("({} rows)\n", cells.len());
    text
}

/// A progress bar on stderr, drawn only on a terminal: elapsed time, the bar, then `counts`
/// (an indicatif template).
fn progress_bar(len: u64, counts: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{bar:40}}] {counts}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

async fn demo_seed(decisions: u64, days: u32, seed: u64, db: DbArgs) -> anyhow::Result<ExitCode> {
    let database = Database::open(&db).await?;
    let writer = crate::audit::AuditWriter::start(
        database.pool.clone(),
        crate::demo::writer_config(db.data_dir.join("spool")),
    )
    .await?;
    let bar = progress_bar(decisions, "{pos}/{len} decisions ({per_sec}, eta {eta})");
    let mut options = crate::demo::SeedOptions::new(decisions, days, Utc::now());
    options.seed = seed;
    let started = std::time::Instant::now();
    let result = crate::demo::seed(crate::pathway::Plan::builtin(), &writer, &options, |n| {
        bar.inc(n)
    })
    .await;
    bar.finish_and_clear();
    writer.shutdown().await;
    database.close().await;
    let summary = result?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} decisions ({} findings, {} feedback) over {} days in {:.1} s ({:.0} decisions/s)",
        summary.decisions,
        summary.findings,
        summary.feedback,
        days,
        seconds,
        summary.decisions as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn lint(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let problems = pathway::lint(&text);
    if problems.is_empty() {
        let plan = pathway::Plan::from_json(&text).expect("lint found no problems");
        println!(
            "{}: ok — pathway {} version {}, {} rules, sha256 {}",
            file.display(),
            plan.reference.id,
            plan.reference.version,
            plan.rules.len(),
            plan.reference.content_hash
        );
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("{}: {p}", file.display());
        }
        eprintln!("{}: {} problem(s)", file.display(), problems.len());
        ExitCode::from(1)
    }
}

/// Loads the pathway to use: a file given on the command line, else the shipped one.
fn load_plan(path: Option<&Path>) -> Result<std::sync::Arc<pathway::Plan>, String> {
    match path {
        None => Ok(pathway::Plan::builtin()),
        Some(path) => pathway::Plan::from_path(path)
            .map(std::sync::Arc::new)
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}

fn check(
    file: &str,
    now: Option<DateTime<Utc>>,
    pathway_file: Option<&Path>,
    audit: Option<DbArgs>,
) -> ExitCode {
    let plan = match load_plan(pathway_file) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut bytes = Vec::new();
    let read = if file == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(file).map(|b| bytes = b)
    };
    if let Err(e) = read {
        eprintln!("{file}: cannot read: {e}");
        return ExitCode::from(2);
    }
    let mut prepared = match crate::decide::prepare(&bytes) {
        Ok(p) => p,
        Err(e) => {
            match &e {
                crate::adapters::AdapterError::Invalid { errors } => {
                    for error in errors {
                        let path = if error.path.is_empty() {
                            "/"
                        } else {
                            &error.path
                        };
                        eprintln!("{file}: {path}: {}", error.message);
                    }
                }
                other => eprintln!("{file}: {other}"),
            }
            return ExitCode::from(2);
        }
    };
    let now = now.or(prepared.requested_time).unwrap_or_else(Utc::now);
    let decision = crate::decide::decide(&plan, &mut prepared, now, uuid::Uuid::now_v7());
    let answer = crate::decide::render(&prepared, &decision);
    let text = String::from_utf8(crate::decide::response_bytes(
        crate::audit::Channel::Cli,
        &answer,
    ))
    .expect("JSON is UTF-8");
    if let Some(db) = audit {
        // Recorded before it is printed: the CLI keeps the service's promise too.
        let meta = crate::audit::RequestMeta {
            channel: crate::audit::Channel::Cli,
            hook: prepared.hook.clone(),
            hook_instance: prepared.hook_instance.clone(),
            client_id: Some("orderguard-cli".into()),
            user_ref: prepared.user_ref.clone(),
            patient_ref: prepared.patient_ref.clone(),
            encounter_ref: prepared.encounter_ref.clone(),
        };
        let record = crate::audit::AuditRecord::from_decision(
            &decision,
            meta,
            std::mem::take(&mut prepared.canonical_input),
            text.clone().into_bytes(),
        );
        let recorded = run_async(async move {
            let database = Database::open(&db).await?;
            let durability =
                crate::audit::record_one(&database.pool, db.data_dir.join("spool"), record).await;
            database.close().await;
            durability?;
            Ok(ExitCode::SUCCESS)
        });
        if recorded != ExitCode::SUCCESS {
            return recorded;
        }
        eprintln!("decision {} recorded", decision.decision_id);
    }
    // A closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    ExitCode::SUCCESS
}

fn run_async(future: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(future) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("orderguard: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The audit database, migrated: the one named by `DATABASE_URL`, or the embedded cluster.
struct Database {
    pool: sqlx::PgPool,
    embedded: Option<crate::audit::EmbeddedPostgres>,
}

impl Database {
    async fn open(args: &DbArgs) -> anyhow::Result<Database> {
        use anyhow::Context;
        let (pool, embedded) =
            crate::audit::connect(args.database_url.as_deref(), &args.data_dir.join("postgres"))
                .await
                .context("opening the audit database (set DATABASE_URL, or install PostgreSQL for the embedded one)")?;
        Ok(Database { pool, embedded })
    }

    async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded
            && let Err(error) = pg.stop().await
        {
            eprintln!("orderguard: stopping the embedded PostgreSQL: {error}");
        }
    }
}

async fn serve(
    config_file: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    pathway_file: Option<PathBuf>,
    insecure_no_auth: bool,
    db: DbArgs,
) -> anyhow::Result<ExitCode> {
    use crate::service::config::ServiceConfig;
    let mut config = ServiceConfig::load(config_file.as_deref())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if pathway_file.is_some() {
        config.pathway = pathway_file;
    }
    config.insecure_no_auth |= insecure_no_auth;
    let db = DbArgs {
        database_url: config
            .database_url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .or(db.database_url),
        data_dir: db.data_dir,
    };
    let plan = load_plan(config.pathway.as_deref()).map_err(anyhow::Error::msg)?;
    let database = Database::open(&db).await?;
    let mut writer_config = crate::audit::WriterConfig::new(db.data_dir.join("spool"));
    // The spool's cap (default 1 GiB): past it, with PostgreSQL away, decisions are 503.
    if let Ok(cap) = std::env::var("ORDERGUARD_SPOOL_CAP_BYTES") {
        use anyhow::Context;
        writer_config.spool_cap_bytes = cap
            .parse()
            .context("ORDERGUARD_SPOOL_CAP_BYTES: a number of bytes")?;
    }
    let writer = crate::audit::AuditWriter::start(database.pool.clone(), writer_config).await?;
    let fhir = crate::service::fhir_client::FhirClient::new(&config.fhir);
    // Staff routes read audit data from a replica when one is configured, and append their own
    // events (reads, pharmacist actions) through the same writer as the decisions.
    let reports = match &config.reports_database_url {
        Some(url) => crate::reports::connect_read_pool(url.expose())?,
        None => database.pool.clone(),
    };
    let pipeline = std::sync::Arc::new(crate::pipeline::Pipeline::new(
        plan,
        writer.clone(),
        database.pool.clone(),
        fhir,
    ));
    let reloader = std::sync::Arc::new(crate::reload::Reloader::new(
        pipeline.clone(),
        config.pathway.clone(),
    ));
    let staff = crate::service::staff::StaffBackend {
        reports,
        audit: writer,
        reloader: Some(reloader.clone()),
    };
    reloader.record_startup().await;
    let sighup = tokio::spawn(crate::reload::watch_sighup(reloader.clone()));
    // Folds on the audit database itself (a replica cannot take writes).
    let refresher = (config.rollups.refresh_minutes > 0).then(|| {
        tokio::spawn(crate::reports::run_refresher(
            database.pool.clone(),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(config.rollups.refresh_minutes * 60),
            std::time::Duration::from_secs(config.rollups.settle_minutes * 60),
        ))
    });
    let served = crate::service::run(config, pipeline, Some(staff)).await;
    sighup.abort();
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    database.close().await;
    served.map(|()| ExitCode::SUCCESS)
}

async fn verify(checkpoint_file: Option<PathBuf>, db: DbArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let checkpoint: Option<crate::audit::Checkpoint> = match &checkpoint_file {
        Some(path) => Some(
            serde_json::from_slice(
                &std::fs::read(path).with_context(|| format!("{}", path.display()))?,
            )
            .with_context(|| format!("{}: not a checkpoint", path.display()))?,
        ),
        None => None,
    };
    let database = Database::open(&db).await?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = crate::audit::verify(&database.pool, checkpoint.as_ref(), progress).await;
    database.close().await;
    let report = report?;
    for chain in &report.chains {
        println!("{chain:?}");
    }
    if report.is_clean() {
        println!(
            "audit log verifies: {} chain(s), no break",
            report.chains.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for b in &report.breaks {
            println!("BREAK {b}");
        }
        println!(
            "audit log does NOT verify: {} break(s)",
            report.breaks.len()
        );
        Ok(ExitCode::from(1))
    }
}

async fn checkpoint(out: Option<PathBuf>, db: DbArgs) -> anyhow::Result<ExitCode> {
    let key = std::env::var("ORDERGUARD_CHECKPOINT_KEY").ok();
    let database = Database::open(&db).await?;
    let checkpoint =
        crate::audit::checkpoint(&database.pool, key.as_deref().map(str::as_bytes)).await;
    database.close().await;
    let text = serde_json::to_string_pretty(&checkpoint?)?;
    match out {
        Some(path) => std::fs::write(&path, text + "\n")?,
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use crate::replay::{self, RunOptions, Window, output};
    use anyhow::Context;
    use std::sync::Arc;
    let window = Window {
        from: args.from,
        to: args.to,
    };
    if let (Some(from), Some(to)) = (window.from, window.to)
        && from >= to
    {
        anyhow::bail!("--from {from} is not before --to {to}");
    }
    // The draft first: a pathway that fails lint is refused before any database work.
    let draft = match &args.pathway {
        Some(path) => match pathway::Plan::from_path(path) {
            Ok(plan) => Some(Arc::new(plan)),
            Err(error) => {
                for problem in error.lint_errors() {
                    eprintln!("{}: {problem}", path.display());
                }
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let database = Database::open(&args.db).await?;
    let options = RunOptions {
        workers: args.jobs.unwrap_or_else(|| RunOptions::default().workers),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..RunOptions::default()
    };
    let actor = args.actor.clone().unwrap_or_else(|| {
        format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    });
    let outcome = async {
        let (text, event, code, html, changes) = match draft {
            Some(draft) => {
                let job = Arc::new(replay::whatif::WhatIf {
                    draft,
                    rule: args.rule.clone(),
                    collect_changes: args.changes.is_some(),
                });
                let (acc, stats) =
                    replay::run(&database.pool, &window, job.clone(), &options).await?;
                let report = job.report(window, acc, stats);
                let mut summary = serde_json::to_value(&report)?;
                // The event keeps the counts, not the example ids of every rule.
                if let Some(rules) = summary.get_mut("rules").and_then(|r| r.as_array_mut()) {
                    for rule in rules {
                        if let Some(obj) = rule.as_object_mut() {
                            obj.remove("examples");
                        }
                    }
                }
                let changes = args.changes.as_ref().map(|_| {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    for c in &report.changes {
                        let _ = w.serialize(ChangeRow::from(c));
                    }
                    w.into_inner().unwrap_or_default()
                });
                (
                    output::what_if(&report, args.format),
                    ("replay.what_if", summary),
                    ExitCode::SUCCESS,
                    args.html.as_ref().map(|_| output::what_if_html(&report)),
                    changes,
                )
            }
            None => {
                let plans = crate::audit::known_plans(&database.pool).await?;
                let job = Arc::new(replay::determinism::Determinism { plans });
                let (acc, stats) = replay::run(
                    &database.pool,
                    &window,
                    job.clone(),
                    &RunOptions {
                        label: "verifying",
                        ..options.clone()
                    },
                )
                .await?;
                let report = job.report(window, acc, stats);
                let mut summary = serde_json::to_value(&report)?;
                if let Some(obj) = summary.as_object_mut() {
                    obj.insert(
                        "differences".into(),
                        serde_json::json!(report.differences.iter().take(20).collect::<Vec<_>>()),
                    );
                }
                let code = if report.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
                (
                    output::determinism(&report, args.format),
                    ("replay.verify_determinism", summary),
                    code,
                    None,
                    None,
                )
            }
        };
        // Recorded before anything is written out, like every other answer orderguard gives.
        crate::audit::record_one_event(
            &database.pool,
            args.db.data_dir.join("spool"),
            crate::audit::EventRecord {
                kind: event.0.into(),
                actor: actor.clone(),
                decision_id: None,
                payload: event.1,
            },
        )
        .await
        .context("recording the replay run in the audit log")?;
        if let (Some(path), Some(html)) = (&args.html, html) {
            std::fs::write(path, html).with_context(|| format!("{}", path.display()))?;
        }
        if let (Some(path), Some(changes)) = (&args.changes, changes) {
            std::fs::write(path, changes).with_context(|| format!("{}", path.display()))?;
        }
        use std::io::Write;
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        Ok::<_, anyhow::Error>(code)
    }
    .await;
    database.close().await;
    outcome
}

/// One line of `replay --changes FILE`.
#[derive(serde::Serialize)]
struct ChangeRow<'a> {
    decision_id: uuid::Uuid,
    evaluated_at: DateTime<Utc>,
    rule_id: &'a str,
    order_ref: Option<&'a str>,
    change: crate::replay::whatif::ChangeKind,
    old_severity: Option<&'static str>,
    new_severity: Option<&'static str>,
}

impl<'a> From<&'a crate::replay::whatif::DecisionChange> for ChangeRow<'a> {
    fn from(c: &'a crate::replay::whatif::DecisionChange) -> Self {
        ChangeRow {
            decision_id: c.decision_id,
            evaluated_at: c.evaluated_at,
            rule_id: &c.change.rule_id,
            order_ref: c.change.order_ref.as_deref(),
            change: c.change.kind,
            old_severity: c.change.old.map(|s| s.as_str()),
            new_severity: c.change.new.map(|s| s.as_str()),
        }
    }
}
