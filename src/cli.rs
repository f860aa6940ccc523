//! The command line: `serve`, `check`, `pathway lint`, `db migrate`, `audit verify`, ...
//! Errors name the file and, for JSON input, the path of the offending field.

use crate::pathway;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
