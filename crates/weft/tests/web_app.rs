//! The web app: what `weft serve` sends a browser, and the end-to-end scenario of `e2e/` in a
//! real chromium against a fresh server.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::server::{Backend, Server};

/// Most bytes a page of the app may take before images: its HTML, style and scripts.
const PAGE_BUDGET: usize = 100 * 1024;

/// The app's pages, by the module each draws with.
const PAGES: &[(&str, &str)] = &[
    ("/", "pages/dashboard.js"),
    ("/recipes/r1", "pages/recipes.js"),
    ("/jobs/j1", "pages/jobs.js"),
    ("/connections", "pages/connections.js"),
    ("/members", "pages/members.js"),
    ("/tokens", "pages/tokens.js"),
    ("/audit", "pages/audit.js"),
    ("/privacy", "pages/privacy.js"),
    ("/library", "pages/library.js"),
    ("/account", "pages/account.js"),
    ("/usage", "pages/usage.js"),
    ("/sign-in", "pages/sign-in.js"),
];

fn html_get(server: &Server, path: &str) -> reqwest::RequestBuilder {
    Server::client()
        .get(server.url(path))
        .header("accept", "text/html,application/xhtml+xml")
}

#[tokio::test]
async fn every_page_is_served_by_the_binary_within_its_budget_and_asks_no_other_host() {
    let Some(server) = Server::start_with(Backend::Sqlite, &[]).await else {
        return;
    };
    let shell = html_get(&server, "/").send().await.unwrap();
    assert_eq!(shell.status(), 200);
    let policy = shell.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let shell = shell.text().await.unwrap();
    for (path, module) in PAGES {
        let page = html_get(&server, path).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(
            page.text().await.unwrap(),
            shell,
            "{path} is the app's page"
        );
        let mut bytes = shell.len();
        for asset in ["app.css", "app.js", "lib.js", module] {
            let answer = Server::client()
                .get(server.url(&format!("/assets/{asset}")))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{asset}");
            let text = answer.text().await.unwrap();
            assert_no_other_host(asset, &text);
            bytes += text.len();
        }
        // The recipe page also draws jobs as they run.
        if *module == "pages/recipes.js" {
            bytes += asset_len(&server, "pages/jobs.js").await;
        }
        assert!(
            bytes < PAGE_BUDGET,
            "{path} takes {bytes} bytes, over {PAGE_BUDGET}"
        );
    }
}

async fn asset_len(server: &Server, asset: &str) -> usize {
    let answer = Server::client()
        .get(server.url(&format!("/assets/{asset}")))
        .send()
        .await
        .unwrap();
    answer.text().await.unwrap().len()
}

/// No URL of another host in a file of the app (the SVG namespace is a name, not a request).
fn assert_no_other_host(asset: &str, text: &str) {
    for scheme in ["http://", "https://", "//cdn", "//fonts"] {
        for (at, _) in text.match_indices(scheme) {
            let rest = &text[at..];
            assert!(
                rest.starts_with("http://www.w3.org/2000/svg"),
                "{asset} names another host: {}",
                &rest[..rest.len().min(60)]
            );
        }
    }
}

#[tokio::test]
async fn api_clients_still_get_json_errors_outside_the_app() {
    let Some(server) = Server::start_with(Backend::Sqlite, &[]).await else {
        return;
    };
    let answer = Server::client()
        .get(server.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // An API path stays the API's even for a browser.
    let answer = html_get(&server, "/api/v1/nothing").send().await.unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("not_found"));
    let missing = Server::client()
        .get(server.url("/assets/%2e%2e/Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // A second visit revalidates cheaply.
    let first = Server::client()
        .get(server.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = Server::client()
        .get(server.url("/assets/app.js"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

/// What the browser scenario needs, or why it cannot run here.
struct Browser {
    chromium: PathBuf,
    e2e: PathBuf,
}

fn browser() -> Option<Browser> {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e");
    let chromium = std::env::var_os("WEFT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let node = Command::new("node").arg("--version").output();
    let missing = if node.is_err() {
        Some("node is not installed".to_owned())
    } else if !chromium.exists() {
        Some(format!("no chromium at {}", chromium.display()))
    } else if !e2e.join("node_modules/playwright-core").exists() {
        Some("playwright-core is not installed (npm ci --prefix e2e)".to_owned())
    } else {
        None
    };
    if let Some(reason) = missing {
        assert!(
            std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "the browser tests are required (WEFT_REQUIRE_SERVICES=1), but {reason}"
        );
        eprintln!("skipped: {reason}");
        return None;
    }
    Some(Browser { chromium, e2e })
}

/// A fresh `weft serve` that nobody has set up, and the setup link it printed.
fn fresh_server(data: &Path) -> (Child, String, String) {
    // The scenario's connection points at a stand-in on this machine.
    let mut child = crate::support::weft()
        .args([
            "serve",
            "--allow-private-network",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft serve starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut base, mut link) = (String::new(), String::new());
    while link.is_empty() {
        let line = lines
            .next()
            .expect("the server prints its setup link")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("weft is serving on ") {
            base = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        if let Some((_, url)) = line.split_once("used once): ") {
            link = url.to_owned();
        }
    }
    // Keep reading, so that the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base, link)
}

#[test]
fn a_new_user_goes_from_setup_to_erasure_in_a_real_browser() {
    let Some(browser) = browser() else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    let (mut child, base, link) = fresh_server(&folder.path().join("data"));
    let screenshots = std::env::var_os("WEFT_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-screenshots")
        });
    let run = Command::new("node")
        .args(["--test", "--test-reporter=spec", "app.test.mjs"])
        .current_dir(&browser.e2e)
        .env("WEFT_URL", &base)
        .env("WEFT_SETUP_LINK", &link)
        .env("WEFT_CHROMIUM", &browser.chromium)
        .env("WEFT_SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs");
    let _ = child.kill();
    let _ = child.wait();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}");
    assert!(
        run.status.success(),
        "the browser scenario failed:\n{report}"
    );
    for shot in ["05-editor-error", "07-job-running", "13-subject-erased"] {
        assert!(
            screenshots.join(format!("{shot}.png")).exists(),
            "{shot}.png is saved"
        );
    }
}

/// Fails when its event says so: for the dashboard's counts.
const SORTER: &str = "name: Sorter\ntrigger:\n  webhook: { path: sorter }\nsteps:\n  - id: check\n    if: trigger.body.bad\n    then:\n      - id: refuse\n        stop: { status: failed, reason: bad }\n  - id: each\n    for_each: trigger.body.items\n    steps:\n      - id: keep\n        set: { kept: true }\n";

on_both_backends!(
    the_pages_read_what_they_draw_from_the_api,
    |server: Server| async move {
        let recipe = server.save_recipe(SORTER).await;
        let mut last = String::new();
        for bad in [false, true, false] {
            let accepted = server
                .hook(
                    "/hooks/sorter",
                    serde_json::json!({ "bad": bad, "items": [1, 2] }),
                )
                .await;
            last = accepted["job_id"].as_str().unwrap().to_owned();
            server.finished_job(&last).await;
        }
        // The dashboard: the day's jobs by hour and outcome, and the recipe failing most.
        let (status, day) = server
            .api(reqwest::Method::GET, "/api/v1/dashboard?days=1", None)
            .await;
        assert_eq!(status, 200, "{day}");
        assert_eq!(day["totals"], serde_json::json!({ "jobs": 3, "failed": 1 }));
        let hours = day["hours"].as_array().unwrap();
        let succeeded: i64 = hours
            .iter()
            .map(|hour| hour["succeeded"].as_i64().unwrap())
            .sum();
        assert_eq!(succeeded, 2, "{day}");
        assert_eq!(day["failing"][0]["recipe_id"], recipe["id"], "{day}");
        assert_eq!(day["failing"][0]["failed"], 1);
        assert_eq!(day["failing"][0]["total"], 3);
        let (status, _) = server
            .api(reqwest::Method::GET, "/api/v1/dashboard?days=30", None)
            .await;
        assert_eq!(status, 400);
        // The recipe list: each recipe's last job.
        let (_, listed) = server
            .api(reqwest::Method::GET, "/api/v1/recipes", None)
            .await;
        assert_eq!(
            listed["recipes"][0]["last_job"]["id"],
            last.as_str(),
            "{listed}"
        );
        assert_eq!(listed["recipes"][0]["last_job"]["status"], "succeeded");
        // The flow the diagram draws: branches and the loop's body, with their lines.
        let (status, checked) = server
            .api(
                reqwest::Method::POST,
                "/api/v1/recipes/check",
                Some(SORTER.to_owned()),
            )
            .await;
        assert_eq!(status, 200, "{checked}");
        let steps = &checked["flow"]["steps"];
        assert_eq!(steps[0]["id"], "check");
        assert_eq!(steps[0]["branches"][0]["label"], "then");
        assert_eq!(steps[0]["branches"][0]["steps"][0]["id"], "refuse");
        assert_eq!(steps[1]["branches"][0]["loop"], true);
        assert_eq!(steps[1]["branches"][0]["steps"][0]["line"], 13);
        // A text with problems is an answer too: each at its line and column.
        let broken = SORTER.replace("set: {", "sett: {");
        let (status, checked) = server
            .api(reqwest::Method::POST, "/api/v1/recipes/check", Some(broken))
            .await;
        assert_eq!(status, 200, "{checked}");
        assert_eq!(checked["valid"], false);
        assert!(
            checked["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|problem| problem["line"] == 14),
            "{checked}"
        );
        // The connection forms: each connector's fields, secrets marked.
        let (_, connectors) = server
            .api(reqwest::Method::GET, "/api/v1/connectors", None)
            .await;
        let http = connectors["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|connector| connector["name"] == "http")
            .expect("the http connector");
        let token = http["connection_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|field| field["name"] == "token")
            .expect("its token field");
        assert_eq!(token["secret"], true);
    }
);
