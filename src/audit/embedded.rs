//! A private PostgreSQL cluster for `orderguard serve` without `DATABASE_URL`.
//!
//! Uses the PostgreSQL binaries already installed (never downloads): `initdb` once into
//! `<data_dir>/pgdata`, then `postgres` listening only on a Unix socket in `<data_dir>`, started
//! and stopped with `pg_ctl`. PostgreSQL refuses to run as root, so as root the folder is handed
//! to the `postgres` user and every command runs through `runuser -u postgres --`.

use std::path::{Path, PathBuf};
use std::process::Output;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH or in \
         /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: `apt-get install postgresql`, \
         Fedora: `dnf install postgresql-server`) or set DATABASE_URL to an existing database"
    )]
    NoBinaries,
    #[error("running as root needs a `postgres` system user to own the embedded database")]
    NoPostgresUser,
    #[error("embedded PostgreSQL: {step} failed: {detail}")]
    Command { step: &'static str, detail: String },
    #[error("embedded PostgreSQL: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    as_postgres_user: bool,
    running: bool,
}

impl EmbeddedPostgres {
    /// Starts (initialising on first use) the cluster in `data_dir`, and returns it with its
    /// `DATABASE_URL`. A cluster already running in that folder is reused.
    pub async fn start(data_dir: impl AsRef<Path>) -> Result<(Self, String), EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NoBinaries)?;
        std::fs::create_dir_all(data_dir.as_ref())?;
        let data_dir = std::fs::canonicalize(data_dir.as_ref())?;
        let as_postgres_user = running_as_root();
        let pg = EmbeddedPostgres {
            bin_dir,
            data_dir,
            as_postgres_user,
            running: false,
        };
        if as_postgres_user {
            let status = Command::new("id").args(["-u", "postgres"]).output().await?;
            if !status.status.success() {
                return Err(EmbeddedError::NoPostgresUser);
            }
            pg.run_plain(
                "chown",
                &["-R", "postgres:postgres", &pg.data_dir.to_string_lossy()],
            )
            .await?;
        }
        set_private(&pg.data_dir)?;
        let pgdata = pg.pgdata();
        if !pgdata.join("PG_VERSION").exists() {
            // A half-finished initdb leaves a folder initdb refuses to reuse.
            if pgdata.exists() {
                std::fs::remove_dir_all(&pgdata)?;
            }
            pg.run_pg(
                "initdb",
                "initdb",
                &[
                    "-D",
                    &pgdata.to_string_lossy(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
            )
            .await?;
        }
        let mut pg = pg;
        if !pg.is_running().await {
            let socket = pg.data_dir.to_string_lossy().replace('\'', "");
            let options = format!("-c listen_addresses='' -k '{socket}'");
            let log = pg.data_dir.join("postgres.log");
            pg.run_pg(
                "pg_ctl start",
                "pg_ctl",
                &[
                    "-D",
                    &pgdata.to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &options,
                    "start",
                ],
            )
            .await?;
        }
        pg.running = true;
        let url = pg.database_url();
        Ok((pg, url))
    }

    /// `postgres://` URL reaching the cluster over its Unix socket.
    pub fn database_url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}",
            self.data_dir.display()
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn pgdata(&self) -> PathBuf {
        self.data_dir.join("pgdata")
    }

    async fn is_running(&self) -> bool {
        let pgdata = self.pgdata();
        // pg_ctl status exits 0 when a server is running in the folder.
        matches!(
            self.command("pg_ctl", &["-D", &pgdata.to_string_lossy(), "status"]).output().await,
            Ok(out) if out.status.success()
        )
    }

    /// Stops the cluster (fast shutdown: sessions are ended, committed data is safe).
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        self.stop_in_place().await
    }

    async fn stop_in_place(&mut self) -> Result<(), EmbeddedError> {
        if !self.running {
            return Ok(());
        }
        let pgdata = self.pgdata();
        self.run_pg(
            "pg_ctl stop",
            "pg_ctl",
            &["-D", &pgdata.to_string_lossy(), "-m", "fast", "-w", "stop"],
        )
        .await?;
        self.running = false;
        Ok(())
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let binary = self.bin_dir.join(program);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .current_dir(&self.data_dir)
            .kill_on_drop(true);
        command
    }

    async fn run_pg(
        &self,
        step: &'static str,
        program: &str,
        args: &[&str],
    ) -> Result<Output, EmbeddedError> {
        let out = self.command(program, args).output().await?;
        check(step, out)
    }

    async fn run_plain(
        &self,
        program: &'static str,
        args: &[&str],
    ) -> Result<Output, EmbeddedError> {
        let out = Command::new(program).args(args).output().await?;
        check(program, out)
    }
}

impl Drop for EmbeddedPostgres {
    /// A forgotten `stop` must not leave a server running (tests, panics): stop synchronously.
    fn drop(&mut self) {
        if self.running {
            let pgdata = self.pgdata();
            let binary = self.bin_dir.join("pg_ctl");
            let mut command = if self.as_postgres_user {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(binary);
                c
            } else {
                std::process::Command::new(binary)
            };
            let _ = command
                .arg("-D")
                .arg(pgdata)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

fn check(step: &'static str, out: Output) -> Result<Output, EmbeddedError> {
    if out.status.success() {
        Ok(out)
    } else {
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        Err(EmbeddedError::Command {
            step,
            detail: format!("{} ({detail})", out.status),
        })
    }
}

fn set_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn running_as_root() -> bool {
    // /proc/self/status "Uid: real effective saved fs"; no libc call needed on Linux.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// The folder holding initdb, pg_ctl and postgres: `ORDERGUARD_PG_BIN`, then PATH (following
/// symlinks, so pg_ctl finds its postgres), then the newest /usr/lib/postgresql/*/bin (Debian
/// keeps them off PATH).
pub fn find_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("ORDERGUARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        return complete(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let pg_ctl = dir.join("pg_ctl");
            if pg_ctl.is_file()
                && let Ok(real) = std::fs::canonicalize(&pg_ctl)
                && let Some(real_dir) = real.parent()
                && complete(real_dir)
            {
                return Some(real_dir.to_owned());
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
