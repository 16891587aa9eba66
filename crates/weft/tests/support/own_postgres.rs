//! A PostgreSQL server of the test's own, in a temporary folder on a free port, which the
//! test stops and starts again without disturbing the server the other tests use. Run as the
//! `postgres` account when the tests run as root (PostgreSQL refuses to run as root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// Set when the tests run as root: the account the server runs as.
    account: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Makes a database cluster and starts it; `None` (with the reason printed) when the
    /// machine has no PostgreSQL programs, unless services are required.
    pub fn start() -> Option<OwnPostgres> {
        let Some(bin) = programs_folder() else {
            assert!(
                std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "PostgreSQL's initdb and pg_ctl are required (WEFT_REQUIRE_SERVICES=1) but not installed"
            );
            eprintln!("skipped: no initdb and pg_ctl to start a PostgreSQL of the test's own");
            return None;
        };
        // SAFETY: geteuid only reads the process's user id.
        let account = (unsafe { libc::geteuid() } == 0).then_some("postgres");
        let dir = tempfile::tempdir().expect("a temporary folder");
        if account.is_some() {
            // The server's account must reach its folder: the temporary folder is root's.
            let folder = dir.path();
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o777))
                .expect("the folder opens to the server's account");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let server = OwnPostgres {
            port,
            bin,
            data: dir.path().join("data"),
            account,
            _dir: dir,
        };
        let data = server.data.display().to_string();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            server._dir.path().display()
        );
        let log = server
            ._dir
            .path()
            .join("postgres.log")
            .display()
            .to_string();
        server.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`: sessions are
    /// ended, the server shuts down cleanly).
    pub fn stop(&self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server again with the options it was first started with.
    pub fn start_again(&self) {
        let data = self.data.display().to_string();
        let log = self._dir.path().join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self._dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
        );
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let output = match self.account {
            Some(account) => Command::new("runuser")
                .args(["-u", account, "--"])
                .arg(&program)
                .args(args)
                .current_dir(self._dir.path())
                .output(),
            None => Command::new(&program).args(args).output(),
        }
        .expect("a PostgreSQL program runs");
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = match self.account {
            Some(account) => Command::new("runuser")
                .args(["-u", account, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}

/// The folder of `initdb` and `pg_ctl`: Debian's versioned folder (the newest), or the `PATH`.
fn programs_folder() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versioned: Vec<PathBuf> = versions
            .filter_map(Result::ok)
            .map(|version| version.path().join("bin"))
            .collect();
        versioned.sort();
        candidates.extend(versioned.into_iter().rev());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.extend(std::env::split_paths(&path));
    candidates
        .into_iter()
        .find(|folder| has(folder, "initdb") && has(folder, "pg_ctl"))
        .map(|folder| std::fs::canonicalize(&folder).unwrap_or(folder))
}

fn has(folder: &Path, program: &str) -> bool {
    folder.join(program).is_file()
}
