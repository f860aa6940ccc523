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
        Command::Audit {
            command: AuditCommand::Verify { checkpoint, db },
        } => run_async(verify(checkpoint, db)),
        Command::Audit {
            command: AuditCommand::Checkpoint { out, db },
        } => run_async(checkpoint(out, db)),
        Command::Pathway {
            command: PathwayCommand::Lint { file },
        } => lint(&file),
    }
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
    let text = serde_json::to_string_pretty(&answer).expect("JSON values always serialize");
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
    let staff = crate::service::staff::StaffBackend {
        reports,
        audit: writer.clone(),
    };
    let pipeline = std::sync::Arc::new(crate::pipeline::Pipeline::new(
        plan,
        writer,
        database.pool.clone(),
        fhir,
    ));
    let served = crate::service::run(config, pipeline, Some(staff)).await;
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
