//! Connections on a real `weft serve`: the API and the CLI, secrets sealed at rest and never
//! shown back, the master key from a file or the environment, and its rotation; and the
//! connector reference commands.

use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

use crate::support::http_server::{PRIVATE_TOKEN, TestServer};
use crate::support::server::{Backend, Server};
use crate::support::{files_under, weft};

/// A connection to the stand-in API behind a bearer token.
fn private_api(name: &str, token: &str) -> String {
    let api = TestServer::start();
    json!({
        "name": name,
        "connector": "http",
        "fields": { "base_url": format!("{}/private", api.base), "auth": "bearer", "token": token }
    })
    .to_string()
}

/// A recipe that calls the stand-in API through the connection `crm`.
const USE_CRM: &str = "name: Use crm\ntrigger: { manual: {} }\nsteps:\n  - id: fetch\n    action: http.request\n    connection: crm\n    input: { url: /orders }\noutput: '{{ steps.fetch.output.body }}'\n";

async fn test_connection(server: &Server, id: &str) -> Value {
    let (status, outcome) = server
        .api(
            Method::POST,
            &format!("/api/v1/connections/{id}/test"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    outcome
}

/// Runs `USE_CRM` (saved already) and returns its finished job.
async fn run_crm(server: &Server, recipe_id: &str) -> Value {
    let (status, accepted) = server
        .api(
            Method::POST,
            &format!("/api/v1/recipes/{recipe_id}/run"),
            Some("{}".to_owned()),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    server
        .finished_job(accepted["job_id"].as_str().unwrap())
        .await
}

on_both_backends!(
    connection_secrets_are_write_only,
    |server: Server| async move {
        let (status, created) = server
            .api(
                Method::POST,
                "/api/v1/connections",
                Some(private_api("crm", "wrong-token-91d2")),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["fields"]["token"], "********");
        assert_eq!(created["fields"]["auth"], "bearer");
        let id = created["id"].as_str().unwrap().to_owned();
        for path in [
            "/api/v1/connections".to_owned(),
            format!("/api/v1/connections/{id}"),
        ] {
            let (_, read) = server.api(Method::GET, &path, None).await;
            assert!(!read.to_string().contains("wrong-token-91d2"), "{read}");
        }
        let (_, by_name) = server
            .api(Method::GET, "/api/v1/connections/crm", None)
            .await;
        assert_eq!(by_name["id"], id.as_str());

        // The wrong token is refused by the remote end, and the message does not repeat it.
        let outcome = test_connection(&server, &id).await;
        assert_eq!(outcome["ok"], false, "{outcome}");
        let message = outcome["message"].as_str().unwrap();
        assert!(message.contains("401"), "{message}");
        assert!(!message.contains("wrong-token-91d2"), "{message}");

        // A new token is written; it is never read back, and it works.
        let mut replaced: Value = serde_json::from_str(&private_api("crm", PRIVATE_TOKEN)).unwrap();
        replaced["fields"]["base_url"] = created["fields"]["base_url"].clone();
        let (status, updated) = server
            .api(
                Method::PUT,
                &format!("/api/v1/connections/{id}"),
                Some(replaced.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["fields"]["token"], "********");
        assert_eq!(test_connection(&server, &id).await, json!({ "ok": true }));

        // Sending back what a read shows keeps the secret: a form can be saved as it was read.
        let (_, read) = server
            .api(Method::GET, &format!("/api/v1/connections/{id}"), None)
            .await;
        let mut edited =
            json!({ "name": "crm", "connector": "http", "fields": read["fields"].clone() });
        let (status, _) = server
            .api(
                Method::PUT,
                &format!("/api/v1/connections/{id}"),
                Some(edited.to_string()),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(test_connection(&server, &id).await, json!({ "ok": true }));

        // Jobs use the stored connection, and their records never hold the secret.
        let recipe = server.save_recipe(USE_CRM).await;
        let job = run_crm(&server, recipe["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(
            job["output"],
            json!({ "path": "/private/orders", "welcome": true })
        );
        assert!(!job.to_string().contains(PRIVATE_TOKEN), "{job}");

        // A bearer connection without its token is refused at save.
        edited["fields"]["token"] = Value::Null;
        let (status, refused) = server
            .api(
                Method::PUT,
                &format!("/api/v1/connections/{id}"),
                Some(edited.to_string()),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused.to_string().contains("`token` is empty"),
            "{refused}"
        );
        // Clearing the secret with null, without auth: the remote end refuses, and the job
        // fails with a connector error.
        edited["fields"]["auth"] = json!("none");
        let (status, cleared) = server
            .api(
                Method::PUT,
                &format!("/api/v1/connections/{id}"),
                Some(edited.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{cleared}");
        assert!(cleared["fields"].get("token").is_none(), "{cleared}");
        let job = run_crm(&server, recipe["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["kind"], "connector", "{job}");

        let (status, _) = server
            .api(Method::DELETE, &format!("/api/v1/connections/{id}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, gone) = server
            .api(Method::GET, &format!("/api/v1/connections/{id}"), None)
            .await;
        assert_eq!(status, 404, "{gone}");
        let job = run_crm(&server, recipe["id"].as_str().unwrap()).await;
        let message = job["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("no connection named `crm`"), "{job}");
    }
);

on_both_backends!(
    bad_connections_are_refused_with_reasons,
    |server: Server| async move {
        let refusals = [
            (
                json!({ "name": "x", "connector": "nope" }),
                422,
                "no connector named `nope`",
            ),
            (
                json!({ "name": "x", "connector": "http", "fields": { "tokn": "a" } }),
                422,
                "unknown field `tokn`",
            ),
            (
                json!({ "name": "x", "connector": "http", "fields": { "base_url": { "a": 1 } } }),
                422,
                "field `base_url` must be text",
            ),
            (json!({ "name": " ", "connector": "http" }), 422, "`name`"),
            (json!({ "connector": "http" }), 400, "missing field `name`"),
            (
                json!({ "name": "x", "connector": "http", "limits": { "requests": 0 } }),
                422,
                "limits.requests",
            ),
            (
                json!({ "name": "x", "connector": "http", "limits": { "per": "1s" } }),
                422,
                "needs `requests` or `concurrent`",
            ),
        ];
        for (body, status, reason) in refusals {
            let (got, error) = server
                .api(Method::POST, "/api/v1/connections", Some(body.to_string()))
                .await;
            assert_eq!(got, status, "{body}: {error}");
            let message = error["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(reason), "{body}: {message}");
        }
        let (status, created) = server
            .api(
                Method::POST,
                "/api/v1/connections",
                Some(private_api("crm", "a-secret-4411")),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let limited = json!({ "name": "limited", "connector": "http", "limits": { "requests": 5, "per": "1m", "concurrent": 2 } });
        let (status, saved) = server
            .api(
                Method::POST,
                "/api/v1/connections",
                Some(limited.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{saved}");
        assert_eq!(
            saved["limits"],
            json!({ "requests": 5, "per": "1m", "concurrent": 2 })
        );
        let (status, taken) = server
            .api(
                Method::POST,
                "/api/v1/connections",
                Some(private_api("crm", "a-secret-4411")),
            )
            .await;
        assert_eq!(status, 409, "{taken}");
        let id = created["id"].as_str().unwrap();
        let mut moved: Value = serde_json::from_str(&private_api("crm", "x")).unwrap();
        moved["connector"] = json!("slack");
        let (status, refused) = server
            .api(
                Method::PUT,
                &format!("/api/v1/connections/{id}"),
                Some(moved.to_string()),
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        assert!(!refused.to_string().contains("a-secret-4411"));
        let (status, _) = server
            .api(Method::POST, "/api/v1/connections/nobody/test", None)
            .await;
        assert_eq!(status, 404);
        let anonymous = Server::client()
            .get(server.url("/api/v1/connections"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
    }
);

/// After connections are made, tested and used by jobs (one of which fails), neither the
/// database files nor the server's log (at debug level) hold the secret anywhere.
#[tokio::test]
async fn no_secret_reaches_the_database_or_the_logs() {
    let mut server = Server::start_with_env(Backend::Sqlite, &[], &[("WEFT_LOG", "debug")])
        .await
        .expect("SQLite is always there");
    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/connections",
            Some(private_api("crm", PRIVATE_TOKEN)),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(test_connection(&server, &id).await["ok"], true);
    let recipe = server.save_recipe(USE_CRM).await;
    let recipe_id = recipe["id"].as_str().unwrap().to_owned();
    assert_eq!(run_crm(&server, &recipe_id).await["status"], "succeeded");
    // A failing call: the remote end answers 404 for a path of the recipe's second version.
    let failing = USE_CRM.replace("/orders", "/../status/404");
    let (status, _) = server
        .api(
            Method::PUT,
            &format!("/api/v1/recipes/{recipe_id}"),
            Some(failing),
        )
        .await;
    assert_eq!(status, 200);
    run_crm(&server, &recipe_id).await;
    server.terminate();
    server.wait();

    let folder = server.data_folder().expect("a data folder");
    let files = files_under(&folder);
    let holds = |text: &str| {
        files.iter().any(|bytes| {
            bytes
                .windows(text.len())
                .any(|window| window == text.as_bytes())
        })
    };
    assert!(
        holds(created["fields"]["base_url"].as_str().unwrap()),
        "the connection is not in the data folder: the test looks in the wrong place"
    );
    assert!(!holds(PRIVATE_TOKEN), "the secret is stored in clear");
    let logs = server.logs();
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "no debug log: {logs}"
    );
    assert!(
        !logs.contains(PRIVATE_TOKEN),
        "the secret is in the log:\n{logs}"
    );
}

/// The key file is made 0600 on first start; `weft admin rotate-key` replaces it and re-seals
/// the data keys, after which the old key no longer opens the store and the secrets still work.
#[tokio::test]
async fn the_master_key_file_is_private_and_rotates() {
    let mut server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let (_, created) = server
        .api(
            Method::POST,
            "/api/v1/connections",
            Some(private_api("crm", PRIVATE_TOKEN)),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.terminate();
    server.wait();
    let key_file = server.data_folder().unwrap().join("master.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let rotated = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("re-sealed 1 data key"));
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(old_key, new_key);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o} after the rotation");

    // The old key no longer opens the store: a server given it refuses to start, and says why.
    let refused = weft()
        .arg("serve")
        .args(server.store_args())
        .args(["--listen", "127.0.0.1:0"])
        .env("WEFT_MASTER_KEY", old_key.trim())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("is not the one that sealed"), "{message}");
    assert!(!message.contains(old_key.trim()), "{message}");

    server.start_again();
    assert_eq!(test_connection(&server, &id).await, json!({ "ok": true }));
    server.terminate();
    server.wait();

    // A key file that others can read is refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("chmod 600"));
}

/// A rotation that re-sealed the data keys but stopped before its new key file replaced the
/// old one is finished at the next start.
#[tokio::test]
async fn an_interrupted_rotation_is_finished_at_start() {
    let mut server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let (_, created) = server
        .api(
            Method::POST,
            "/api/v1/connections",
            Some(private_api("crm", PRIVATE_TOKEN)),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.terminate();
    server.wait();
    let key_file = server.data_folder().unwrap().join("master.key");
    let old_key = std::fs::read(&key_file).unwrap();
    let rotated = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .output()
        .unwrap();
    assert!(rotated.status.success());
    // Put the files back as they were just before the rename.
    let next = key_file.with_file_name("master.key.next");
    std::fs::rename(&key_file, &next).unwrap();
    std::fs::write(&key_file, &old_key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    server.start_again();
    assert_eq!(test_connection(&server, &id).await, json!({ "ok": true }));
    assert!(!next.exists(), "the new key file was moved into place");
    assert_ne!(std::fs::read(&key_file).unwrap(), old_key);
}

/// With `WEFT_MASTER_KEY` no key file is made; a rotation takes the new key from
/// `WEFT_NEW_MASTER_KEY`.
#[tokio::test]
async fn the_master_key_can_come_from_the_environment() {
    let generate = || {
        let output = weft().args(["admin", "generate-key"]).output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let (old_key, new_key) = (generate(), generate());
    assert_ne!(old_key, new_key);
    let mut server = Server::start_with_env(Backend::Sqlite, &[], &[("WEFT_MASTER_KEY", &old_key)])
        .await
        .expect("SQLite is always there");
    let (_, created) = server
        .api(
            Method::POST,
            "/api/v1/connections",
            Some(private_api("crm", PRIVATE_TOKEN)),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(test_connection(&server, &id).await, json!({ "ok": true }));
    let folder = server.data_folder().unwrap();
    assert!(!folder.join("master.key").exists());
    server.terminate();
    server.wait();

    let without_new = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .env("WEFT_MASTER_KEY", &old_key)
        .output()
        .unwrap();
    assert!(!without_new.status.success());
    assert!(String::from_utf8_lossy(&without_new.stderr).contains("WEFT_NEW_MASTER_KEY"));
    let rotated = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .env("WEFT_MASTER_KEY", &old_key)
        .env("WEFT_NEW_MASTER_KEY", &new_key)
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );

    // The rotated store opens with the new key only.
    let refused = weft()
        .arg("serve")
        .args(server.store_args())
        .args(["--listen", "127.0.0.1:0"])
        .env("WEFT_MASTER_KEY", &old_key)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let opened = weft()
        .args(["admin", "rotate-key"])
        .args(server.store_args())
        .env("WEFT_MASTER_KEY", &new_key)
        .env("WEFT_NEW_MASTER_KEY", &new_key)
        .output()
        .unwrap();
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(String::from_utf8_lossy(&opened.stdout).contains("re-sealed 0 data key"));
}

/// `weft connection push|list|show|test|delete` against a server, with the secret taken from
/// the environment.
#[tokio::test]
async fn the_connection_commands_manage_a_servers_connections() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let api = TestServer::start();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("connections.yaml");
    std::fs::write(
        &file,
        format!(
            "crm:\n  connector: http\n  base_url: {}/private\n  auth: bearer\n  token: ${{CRM_TOKEN}}\n",
            api.base
        ),
    )
    .unwrap();
    let cli = |args: &[&str], token: &str| {
        weft()
            .args(["connection"])
            .args(args)
            .env("WEFT_SERVER", &server.base)
            .env("WEFT_TOKEN", &server.token)
            .env("CRM_TOKEN", token)
            .output()
            .unwrap()
    };
    let file = file.display().to_string();
    let pushed = cli(&["push", &file], "not-the-token");
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&pushed.stdout).trim(),
        "created crm"
    );
    let failed = cli(&["test", "crm"], "");
    assert!(!failed.status.success());
    let reason = String::from_utf8_lossy(&failed.stderr);
    assert!(
        reason.contains("401") && !reason.contains("not-the-token"),
        "{reason}"
    );

    let pushed = cli(&["push", &file], PRIVATE_TOKEN);
    assert_eq!(
        String::from_utf8_lossy(&pushed.stdout).trim(),
        "updated crm"
    );
    let tested = cli(&["test", "crm"], "");
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let listed = String::from_utf8_lossy(&cli(&["list"], "").stdout).to_string();
    assert!(
        listed.contains("http") && listed.contains("crm"),
        "{listed}"
    );
    let shown = String::from_utf8_lossy(&cli(&["show", "crm"], "").stdout).to_string();
    assert!(
        shown.contains("\"token\": \"********\"") && !shown.contains(PRIVATE_TOKEN),
        "{shown}"
    );
    assert!(cli(&["delete", "crm"], "").status.success());
    let missing = cli(&["show", "crm"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no connection"));
}

#[test]
fn the_connectors_commands_list_and_show_what_the_binary_has() {
    let listed = weft().args(["connectors", "list"]).output().unwrap();
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("http"));
    let shown = weft()
        .args(["connectors", "show", "http", "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["name"], "http");
    let token = shown["connection_fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|field| field["name"] == "token")
        .expect("a token field");
    assert_eq!(token["secret"], true);
    assert_eq!(
        shown["actions"][0]["input_schema"]["required"],
        json!(["url"])
    );
    let unknown = weft()
        .args(["connectors", "show", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let reason = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        reason.contains("no connector named `nope`") && reason.contains("http"),
        "{reason}"
    );
}

/// `docs/connectors/` is what `weft connectors docs` writes: regenerate it after changing a
/// connector (`weft connectors docs docs/connectors`).
#[test]
fn the_connector_reference_in_docs_is_up_to_date() {
    let fresh = tempfile::tempdir().unwrap();
    let written = weft()
        .args(["connectors", "docs"])
        .arg(fresh.path())
        .output()
        .unwrap();
    assert!(written.status.success());
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/connectors");
    for entry in std::fs::read_dir(fresh.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let expected = std::fs::read_to_string(entry.path()).unwrap();
        let found = std::fs::read_to_string(committed.join(&name)).unwrap_or_default();
        assert!(
            found == expected,
            "docs/connectors/{} is stale: run `weft connectors docs docs/connectors`",
            name.to_string_lossy()
        );
    }
    let committed_pages = std::fs::read_dir(&committed).unwrap().count();
    let fresh_pages = std::fs::read_dir(fresh.path()).unwrap().count();
    assert_eq!(
        committed_pages, fresh_pages,
        "docs/connectors holds pages of no connector"
    );
}
