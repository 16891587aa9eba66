//! A real `weft serve` on a free port, on SQLite in a temporary data folder or on the local
//! PostgreSQL in a schema of its own, with a user and an API token.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use super::weft;

pub struct Server {
    pub base: String,
    pub token: String,
    child: Child,
    store_args: Vec<String>,
    /// Environment variables of the server process, over the tests' defaults.
    env: Vec<(String, String)>,
    /// Everything the server has written to standard error, across restarts.
    logs: Arc<Mutex<String>>,
    _dir: Arc<tempfile::TempDir>,
}

/// Which store a test server uses.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Server {
    /// Starts a server with more options of `weft serve`, or `None` (with the reason printed)
    /// when its backend is not available.
    pub async fn start_with(backend: Backend, options: &[&str]) -> Option<Server> {
        Server::start_with_env(backend, options, &[]).await
    }

    /// Starts a server with more options and environment variables (such as `WEFT_LOG`).
    pub async fn start_with_env(
        backend: Backend,
        options: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Server> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store_args = match backend {
            Backend::Sqlite => vec![
                "--data".to_owned(),
                dir.path().join("data").display().to_string(),
            ],
            Backend::Postgres => vec![
                "--database".to_owned(),
                weft_store::testing::postgres_schema_url().await?,
            ],
        };
        Some(Server::start_on(dir, store_args, options, env))
    }

    /// Starts a server on PostgreSQL reached through `address` (`host:port`, a proxy in front
    /// of the tests' server), in a schema of its own; `None` without PostgreSQL.
    pub async fn start_on_postgres_at(address: &str, options: &[&str]) -> Option<Server> {
        let url = weft_store::testing::postgres_schema_url().await?;
        // postgres://user@HOST:PORT/database?…
        let (scheme_and_user, rest) = url.split_once('@').expect("a user in the URL");
        let (_, path) = rest.split_once('/').expect("a database in the URL");
        let proxied = format!("{scheme_and_user}@{address}/{path}");
        let dir = tempfile::tempdir().expect("a temporary folder");
        Some(Server::start_on(
            dir,
            vec!["--database".to_owned(), proxied],
            options,
            &[],
        ))
    }

    /// Starts a server on the PostgreSQL database at `url` (a server of the test's own).
    pub async fn start_on_database(url: &str, options: &[&str]) -> Option<Server> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        Some(Server::start_on(
            dir,
            vec!["--database".to_owned(), url.to_owned()],
            options,
            &[],
        ))
    }

    fn start_on(
        dir: tempfile::TempDir,
        mut store_args: Vec<String>,
        options: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        // The master key file of a server on PostgreSQL goes with the test, not into the
        // working folder.
        if store_args[0] == "--database" {
            store_args.extend([
                "--master-key-file".to_owned(),
                dir.path().join("master.key").display().to_string(),
            ]);
        }
        // Short leases, so that crash tests see jobs taken over quickly (unless a test sets
        // its own).
        if !options.contains(&"--job-lease") {
            store_args.extend(["--job-lease".to_owned(), "2s".to_owned()]);
        }
        store_args.extend(options.iter().map(|option| option.to_string()));
        store_args.extend(["--listen".to_owned(), String::new()]);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let logs = Arc::new(Mutex::new(String::new()));
        let (child, base) = launch_on_any_port(&mut store_args, &env, &logs);
        let mut server = Server {
            base,
            token: String::new(),
            child,
            store_args,
            env,
            logs,
            _dir: Arc::new(dir),
        };
        server.token = server.create_user_and_token("ann@example.com", "owner");
        server
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same store.
    pub fn crash_and_restart(&mut self) {
        self.crash();
        self.start_again();
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the server to stop with SIGTERM, as a service manager does.
    pub fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id");
        // SAFETY: kill only sends a signal, to the server this test started.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGTERM) },
            0,
            "SIGTERM is sent"
        );
    }

    /// Asks the server to stop with SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id");
        // SAFETY: kill only sends a signal, to the server this test started.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGINT) },
            0,
            "SIGINT is sent"
        );
    }

    /// The data folder of a server on SQLite; `None` on PostgreSQL.
    pub fn data_folder(&self) -> Option<std::path::PathBuf> {
        (self.store_args[0] == "--data").then(|| std::path::PathBuf::from(&self.store_args[1]))
    }

    /// Everything the store holds, as text, to search for what must not be there: the bytes
    /// of the SQLite database and its write-ahead log, or a dump of every table of the
    /// server's PostgreSQL schema.
    pub fn everything_stored(&self) -> String {
        if let Some(folder) = self.data_folder() {
            let mut bytes = Vec::new();
            for file in ["weft.db", "weft.db-wal"] {
                bytes.extend(std::fs::read(folder.join(file)).unwrap_or_default());
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        let url = &self.store_args[1];
        let schema = url
            .split("search_path%3D")
            .nth(1)
            .expect("a schema in the test URL");
        let dump = std::process::Command::new("pg_dump")
            .args(["--data-only", "--schema", schema, url])
            .output()
            .expect("pg_dump runs");
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        String::from_utf8_lossy(&dump.stdout).into_owned()
    }

    /// Runs SQL statements on the server's store, as an operator at the database would.
    pub fn sql(&self, statements: &str) {
        match self.data_folder() {
            Some(_) => self.sqlite().execute_batch(statements).unwrap(),
            None => {
                self.psql(&["--quiet", "-c", statements]);
            }
        }
    }

    /// The first column of the first row a query answers, as text (`""` for no row or NULL).
    pub fn sql_text(&self, query: &str) -> String {
        if self.data_folder().is_none() {
            return self
                .psql(&["--tuples-only", "--no-align", "-c", query])
                .trim()
                .to_owned();
        }
        let connection = self.sqlite();
        let mut statement = connection.prepare(query).unwrap();
        let mut rows = statement.query([]).unwrap();
        match rows.next().unwrap() {
            Some(row) => match row.get_ref(0).unwrap() {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(value) => value.to_string(),
                rusqlite::types::ValueRef::Real(value) => value.to_string(),
                rusqlite::types::ValueRef::Text(text) | rusqlite::types::ValueRef::Blob(text) => {
                    String::from_utf8_lossy(text).into_owned()
                }
            },
            None => String::new(),
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        let folder = self.data_folder().expect("a SQLite server");
        let connection = rusqlite::Connection::open(folder.join("weft.db")).unwrap();
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        connection
    }

    /// Runs psql with `args` on the server's database; its output, or a panic with its errors.
    fn psql(&self, args: &[&str]) -> String {
        let ran = std::process::Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1"])
            .args(args)
            .arg(&self.store_args[1])
            .output()
            .expect("psql runs");
        assert!(
            ran.status.success(),
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        String::from_utf8_lossy(&ran.stdout).into_owned()
    }

    /// Runs `weft admin ARGS` on the server's store; its output, or a panic with its errors.
    pub fn admin(&self, args: &[&str]) -> String {
        let ran = weft()
            .arg("admin")
            .args(args)
            .args(self.store_args())
            .output()
            .expect("weft admin runs");
        let said = String::from_utf8_lossy(&ran.stdout).into_owned();
        assert!(
            ran.status.success(),
            "weft admin {args:?}: {said}{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        said
    }

    /// Waits until the server has ended, and returns how it ended.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("the server ends")
    }

    /// Everything the server has written to its log so far.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .map(|logs| logs.clone())
            .unwrap_or_default()
    }

    /// The arguments that name this server's store (and, on PostgreSQL, its key file), for
    /// other `weft` commands on the same store.
    pub fn store_args(&self) -> Vec<String> {
        let end = if self.store_args[0] == "--database" {
            4
        } else {
            2
        };
        self.store_args[..end].to_vec()
    }

    /// Starts another process of the platform on the same store (with the same options, on
    /// a port of its own), as a second machine would: the same token reaches it.
    pub fn another_process(&self) -> Server {
        self.process_with(self.store_args.clone())
    }

    /// Starts another process of the platform on the same store in `role` (`web`, `worker`,
    /// `scheduler`, `all`), with more options, on a port of its own.
    pub fn another_process_as(&self, role: &str, options: &[&str]) -> Server {
        let mut store_args = self.store_args.clone();
        match store_args.iter().position(|arg| arg == "--role") {
            Some(at) => role.clone_into(&mut store_args[at + 1]),
            None => {
                let listen = store_args.len() - 2;
                store_args.splice(listen..listen, ["--role".to_owned(), role.to_owned()]);
            }
        }
        let listen = store_args.len() - 2;
        store_args.splice(
            listen..listen,
            options.iter().map(|option| option.to_string()),
        );
        self.process_with(store_args)
    }

    /// Starts a process on this server's store with `store_args`, on a port of its own.
    fn process_with(&self, mut store_args: Vec<String>) -> Server {
        let logs = Arc::new(Mutex::new(String::new()));
        let (child, base) = launch_on_any_port(&mut store_args, &self.env, &logs);
        Server {
            base,
            token: self.token.clone(),
            child,
            store_args,
            env: self.env.clone(),
            logs,
            _dir: Arc::clone(&self._dir),
        }
    }

    /// The database URL of a server on PostgreSQL.
    pub fn database_url(&self) -> Option<&str> {
        (self.store_args[0] == "--database").then(|| self.store_args[1].as_str())
    }

    /// The server's metrics, as Prometheus text.
    pub async fn metrics(&self) -> String {
        Self::client()
            .get(self.url("/metrics"))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("the server answers")
            .text()
            .await
            .expect("metrics as text")
    }

    /// Starts the server again on the same store, after it stopped.
    pub fn start_again(&mut self) {
        let (child, base) = launch(&self.store_args, &self.env, &self.logs);
        self.child = child;
        self.base = base;
    }

    /// Makes a person with `role` in the workspace, and a token of theirs.
    pub fn create_user_and_token(&self, email: &str, role: &str) -> String {
        self.create_user_and_token_in("default", email, role)
    }

    /// Makes a person with `role` in a workspace (a new workspace is made, with them as its
    /// owner), and a token of theirs there.
    pub fn create_user_and_token_in(&self, workspace: &str, email: &str, role: &str) -> String {
        let mut create = weft()
            .args([
                "admin",
                "create-user",
                "--email",
                email,
                "--name",
                "Ann",
                "--role",
                role,
                "--workspace",
                workspace,
                "--password-stdin",
            ])
            .args(self.store_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("weft admin runs");
        std::io::Write::write_all(
            &mut create.stdin.take().expect("stdin"),
            b"a long enough password\n",
        )
        .expect("the password is sent");
        assert!(create.wait().expect("weft admin ends").success());
        let token = weft()
            .args([
                "admin",
                "create-token",
                "--email",
                email,
                "--workspace",
                workspace,
            ])
            .args(self.store_args())
            .output()
            .expect("weft admin runs");
        assert!(
            token.status.success(),
            "{}",
            String::from_utf8_lossy(&token.stderr)
        );
        String::from_utf8_lossy(&token.stdout).trim().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .user_agent("weft-tests")
            .build()
            .expect("an HTTP client")
    }

    /// An API call with the token; returns the status and the JSON body (null when none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        self.api_as(&self.token, method, path, body).await
    }

    /// Calls the API with another token than the server's own (an empty one sends none).
    pub async fn api_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut request = Self::client().request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Saves a recipe, which must be accepted, and returns what the server says of it.
    pub async fn save_recipe(&self, source: &str) -> Value {
        let (status, created) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/recipes",
                Some(source.to_owned()),
            )
            .await;
        assert_eq!(status, 201, "the recipe was refused: {created}");
        created
    }

    /// Saves a connection, which must be accepted, and returns what the server says of it.
    pub async fn save_connection(&self, connection: Value) -> Value {
        let (status, saved) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/connections",
                Some(connection.to_string()),
            )
            .await;
        assert_eq!(status, 201, "the connection was refused: {saved}");
        saved
    }

    /// The triggers of a recipe's jobs that `keep` accepts, once there are at least `count`
    /// How many jobs the recipe has.
    pub async fn job_count(&self, recipe_id: &str) -> usize {
        let (_, listed) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/jobs?recipe={recipe_id}&limit=500"),
                None,
            )
            .await;
        listed["jobs"].as_array().map_or(0, Vec::len)
    }

    /// Sends probes (numbered from 1) until one makes a new job of the recipe, for up to
    /// half a minute: until a subscription is made, messages on a subject or a topic go
    /// nowhere. The number of the probe that was heard, if one was.
    pub async fn probe_until_heard(&self, recipe_id: &str, send: impl Fn(i64)) -> Option<i64> {
        let before = self.job_count(recipe_id).await;
        for probe in 1..=150 {
            send(probe);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if self.job_count(recipe_id).await > before {
                return Some(probe);
            }
        }
        None
    }

    /// of them (waiting up to 15 s), sorted by their JSON text; each job has finished.
    pub async fn job_triggers(
        &self,
        recipe_id: &str,
        count: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut found = Vec::new();
        for _ in 0..150 {
            let (_, listed) = self
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v1/jobs?recipe={recipe_id}"),
                    None,
                )
                .await;
            found.clear();
            for job in listed["jobs"].as_array().cloned().unwrap_or_default() {
                let job = self
                    .finished_job(job["id"].as_str().unwrap_or_default())
                    .await;
                if keep(&job["trigger"]) {
                    found.push(job["trigger"].clone());
                }
            }
            if found.len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        found.sort_by_key(Value::to_string);
        found
    }

    /// Posts JSON (or nothing, for null) to a webhook and returns the JSON answer.
    pub async fn hook(&self, path: &str, body: Value) -> Value {
        let mut request = Self::client().post(self.url(path));
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        response.json().await.expect("a JSON answer")
    }

    /// Waits until a job has ended and returns its record.
    pub async fn finished_job(&self, id: &str) -> Value {
        for _ in 0..200 {
            let (status, job) = self
                .api(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None)
                .await;
            if status == 200 && (job["status"] == "succeeded" || job["status"] == "failed") {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weft serve` on a port the system picks (so that no other test can take it in
/// between), and sets the `--listen` value that ends `store_args` to it, so that a later
/// start keeps the port and clients reach the server again.
fn launch_on_any_port(
    store_args: &mut [String],
    env: &[(String, String)],
    logs: &Arc<Mutex<String>>,
) -> (Child, String) {
    if let Some(listen) = store_args.last_mut() {
        "127.0.0.1:0".clone_into(listen);
    }
    let (child, base) = launch(store_args, env, logs);
    if let (Some(listen), Some(address)) = (store_args.last_mut(), base.strip_prefix("http://")) {
        address.clone_into(listen);
    }
    (child, base)
}

/// Starts `weft serve`; returns the process and its base URL. What it logs is
/// added to `logs`.
fn launch(
    store_args: &[String],
    env: &[(String, String)],
    logs: &Arc<Mutex<String>>,
) -> (Child, String) {
    let mut child = weft()
        .arg("serve")
        .args(store_args)
        .args(["--allow-private-network"])
        .env("WEFT_LOG", "warn")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft serve starts");
    let stderr = child.stderr.take().expect("the server's stderr");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "the server ended before it listened:\n{}",
                logs.lock().map(|logs| logs.clone()).unwrap_or_default()
            );
        };
        append_line(logs, &line);
        if let Some(rest) = line.strip_prefix("weft is serving on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep reading the server's output so that it never blocks on a full pipe.
    let logs = Arc::clone(logs);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            append_line(&logs, &line);
        }
    });
    (child, base)
}

fn append_line(logs: &Mutex<String>, line: &str) {
    if let Ok(mut logs) = logs.lock() {
        logs.push_str(line);
        logs.push('\n');
    }
}
