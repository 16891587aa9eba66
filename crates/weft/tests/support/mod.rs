//! Helpers shared by the tests: running the `weft` binary and a local HTTP server that stands
//! in for the remote end of `http.request`.

/// Runs a test against a server on each backend, started with more options of `weft serve`
/// when some are given. The calling module imports `Server` and `Backend`.
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        on_both_backends!($name, &[], $body);
    };
    ($name:ident, $options:expr, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let server = Server::start_with(Backend::Sqlite, $options)
                    .await
                    .expect("SQLite is always there");
                ($body)(server).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(server) = Server::start_with(Backend::Postgres, $options).await {
                    ($body)(server).await;
                }
            }
        }
    };
}

pub mod http_server;
pub mod oauth_server;
pub mod oidc_server;
pub mod own_postgres;
pub mod own_server;
pub mod server;
pub mod slack_server;
pub mod smtp_server;
pub mod stripe_server;
pub mod tcp_proxy;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `weft` binary built for these tests.
pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

/// A recipe file kept in `tests/recipes/`.
pub fn recipe(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recipes")
        .join(name)
}

/// The repository's `examples/` folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// What one `weft run` did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub record: Value,
    pub stderr: String,
}

impl Ran {
    /// The records of the steps with this id, in run order.
    pub fn steps(&self, id: &str) -> Vec<&Value> {
        self.record["steps"]
            .as_array()
            .map(|steps| steps.iter().filter(|step| step["id"] == id).collect())
            .unwrap_or_default()
    }

    /// The only record of a step.
    pub fn step(&self, id: &str) -> &Value {
        let found = self.steps(id);
        assert_eq!(
            found.len(),
            1,
            "expected one record of step `{id}`, found {}: {:#}",
            found.len(),
            self.record
        );
        found[0]
    }

    /// The ids of the step records, in order.
    pub fn step_ids(&self) -> Vec<String> {
        self.record["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|step| step["id"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs a recipe with an event, allowing loopback (the test server lives there).
pub fn run(recipe: &Path, event: &Value) -> Ran {
    run_with(recipe, event, &[])
}

pub fn run_with(recipe: &Path, event: &Value, extra: &[&str]) -> Ran {
    let output = weft()
        .arg("run")
        .arg(recipe)
        .arg("--event")
        .arg(event.to_string())
        .arg("--allow-private-network")
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("the weft binary runs");
    ran(output)
}

pub fn ran(output: Output) -> Ran {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let record = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!("stdout is not a job record ({error}): {stdout}\nstderr: {stderr}")
        })
    };
    Ran {
        code: output.status.code().unwrap_or(-1),
        record,
        stderr,
    }
}

/// Writes a recipe into a fresh folder and returns both (the folder lives as long as the guard).
pub fn write_recipe(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("recipe.yaml");
    std::fs::write(&path, text).expect("the recipe is written");
    (dir, path)
}

/// The bytes of every file under a folder, sub-folders included.
pub fn files_under(folder: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(std::fs::read(&path).unwrap());
        }
    }
    files
}

/// True when a server answers at `address`; otherwise prints why the test skips (or fails it
/// under `WEFT_REQUIRE_SERVICES=1`).
pub fn service_answers(name: &str, address: &str) -> bool {
    let reachable = address
        .parse()
        .ok()
        .and_then(|address| {
            std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).ok()
        })
        .is_some();
    if !reachable {
        assert!(
            std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{name} is required (WEFT_REQUIRE_SERVICES=1) but nothing answers at {address}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {name} does not answer at {address}"
        );
    }
    reachable
}

/// Serves `routes` on a free loopback port, on a thread of its own that lives as long as the
/// test process; returns the base URL.
pub fn serve_routes(routes: axum::Router) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for a stand-in server");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a free port");
            let address = listener.local_addr().expect("a local address");
            sender
                .send(format!("http://{address}"))
                .expect("the test waits for the address");
            axum::serve(listener, routes)
                .await
                .expect("the stand-in server runs");
        });
    });
    receiver.recv().expect("the stand-in server starts")
}
