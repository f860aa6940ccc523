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
    },
    /// Work with pathway files.
    Pathway {
        #[command(subcommand)]
        command: PathwayCommand,
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
        Command::Check { file, now, pathway } => check(&file, now, pathway.as_deref()),
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

fn check(file: &str, now: Option<DateTime<Utc>>, pathway_file: Option<&Path>) -> ExitCode {
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
    // A closed pipe (`| head`) is the reader's choice, not an error worth a panic.
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    ExitCode::SUCCESS
}
