//! Workspaces keep to themselves: a stranger from another workspace, even its owner, finds
//! and changes nothing of this one through any route of the API; names, webhook paths and
//! lookup tables are each workspace's own; a job uses only its own workspace's connections,
//! tables and recipes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

/// Prices with the workspace's own `rates` table, at the workspace's own path.
const PRICE: &str = "name: Price\ntrigger:\n  webhook: { path: price, mode: sync }\nsteps:\n  - id: answer\n    respond:\n      status: 200\n      body:\n        rate: \"{{ lookup('rates', currency='EUR').rate }}\"\n        workspace: '{{ job.workspace }}'\n";

/// Uses a connection, a table and a recipe by name: in the stranger's workspace none of them
/// exists, whatever the first workspace holds.
const BORROW: &str = "name: Borrow\ntrigger: { manual: {} }\nsteps:\n  - id: fetch\n    action: http.request\n    connection: crm\n    input: { url: /orders }\n    continue_on_error: true\n  - id: read\n    action: tables.lookup\n    input: { table: private, where: { k: secret } }\n    continue_on_error: true\n  - id: ask\n    call: Price\n    input: {}\n    continue_on_error: true\n";

async fn ok(server: &Server, token: &str, method: Method, path: &str, body: Option<&str>) -> Value {
    let (status, answer) = server
        .api_as(token, method.clone(), path, body.map(str::to_owned))
        .await;
    assert!(
        (200..300).contains(&status),
        "{method} {path} answered {status}: {answer}"
    );
    answer
}

async fn fill_table(server: &Server, token: &str, name: &str, csv: &str) {
    ok(
        server,
        token,
        Method::POST,
        "/api/v1/tables",
        Some(&json!({ "name": name, "columns": ["currency", "rate", "k"] }).to_string()),
    )
    .await;
    let response = Server::client()
        .put(server.url(&format!("/api/v1/tables/{name}/csv")))
        .bearer_auth(token)
        .body(csv.to_owned())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
}

/// What the first workspace holds, by kind.
struct Theirs {
    recipe: String,
    connection: String,
    job: String,
    token: String,
    user: String,
}

async fn first_workspace(server: &Server) -> Theirs {
    let owner = &server.token;
    fill_table(server, owner, "rates", "currency,rate,k\nEUR,1.08,\n").await;
    fill_table(server, owner, "private", "currency,rate,k\n,,secret\n").await;
    let connection = server
        .save_connection(json!({
            "name": "crm",
            "connector": "http",
            "fields": { "base_url": "http://127.0.0.1:9", "auth": "bearer", "token": "first-workspace-secret" }
        }))
        .await;
    let recipe = server.save_recipe(PRICE).await;
    let answer = server.hook("/hooks/price", json!({})).await;
    assert_eq!(answer, json!({ "rate": "1.08", "workspace": "default" }));
    let (_, jobs) = server.api(Method::GET, "/api/v1/jobs?limit=1", None).await;
    let (_, tokens) = server.api(Method::GET, "/api/v1/tokens", None).await;
    let (_, me) = server.api(Method::GET, "/api/v1/me", None).await;
    Theirs {
        recipe: recipe["id"].as_str().unwrap().to_owned(),
        connection: connection["id"].as_str().unwrap().to_owned(),
        job: jobs["jobs"][0]["id"].as_str().unwrap().to_owned(),
        token: tokens["tokens"][0]["id"].as_str().unwrap().to_owned(),
        user: me["id"].as_str().unwrap().to_owned(),
    }
}

/// A body that gets past a route's own checks, so that only the workspace can refuse it.
fn body_for(method: &Method, path: &str) -> Option<String> {
    match (method.as_str(), path) {
        ("PUT", "/recipes/{id}") => Some(PRICE.to_owned()),
        ("PUT", "/connections/{id}") => Some(
            json!({ "name": "crm", "connector": "http", "fields": { "base_url": "http://127.0.0.1:9" } })
                .to_string(),
        ),
        ("PUT", "/members/{id}") => Some(json!({ "role": "viewer" }).to_string()),
        ("PUT", "/tables/{name}/csv") => Some("currency,rate,k\nEUR,9.99,\n".to_owned()),
        ("GET" | "DELETE", _) => None,
        _ => Some("{}".to_owned()),
    }
}

on_both_backends!(
    a_stranger_from_another_workspace_finds_and_changes_nothing,
    |server: Server| async move {
        let theirs = first_workspace(&server).await;
        let stranger = server.create_user_and_token_in("acme", "owner@acme.example", "owner");

        // Every route that names an object, given the first workspace's objects: not found,
        // as if they did not exist (an owner of another workspace is nobody here).
        let mut named = 0;
        for route in weft_server::api_routes() {
            if !route.path.contains('{') {
                continue;
            }
            named += 1;
            let id = if route.path.starts_with("/recipes") {
                &theirs.recipe
            } else if route.path.starts_with("/connections") {
                &theirs.connection
            } else if route.path.starts_with("/jobs") {
                &theirs.job
            } else if route.path.starts_with("/tokens") {
                &theirs.token
            } else {
                &theirs.user
            };
            let path = format!(
                "/api/v1{}",
                route.path.replace("{id}", id).replace("{name}", "rates")
            );
            let (status, answer) = server
                .api_as(
                    &stranger,
                    route.method.clone(),
                    &path,
                    body_for(&route.method, route.path),
                )
                .await;
            assert_eq!(
                status, 404,
                "{} {path} as another workspace's owner: {answer}",
                route.method
            );
        }
        assert!(named > 20, "the routes that name objects were walked");

        // Every list of theirs holds nothing of the first workspace.
        for list in [
            "/recipes",
            "/connections",
            "/tables",
            "/jobs",
            "/tokens",
            "/members",
            "/audit",
        ] {
            let answer = ok(
                &server,
                &stranger,
                Method::GET,
                &format!("/api/v1{list}"),
                None,
            )
            .await;
            let text = answer.to_string();
            for (what, value) in [
                ("recipe", &theirs.recipe),
                ("connection", &theirs.connection),
                ("job", &theirs.job),
                ("token", &theirs.token),
                ("person", &theirs.user),
            ] {
                assert!(
                    !text.contains(value.as_str()),
                    "{list} shows the first workspace's {what}: {text}"
                );
            }
            assert!(
                !text.contains("rates") && !text.contains("ann@example.com"),
                "{list}: {text}"
            );
        }

        // Nothing of the first workspace changed.
        let (status, recipe) = server
            .api(
                Method::GET,
                &format!("/api/v1/recipes/{}", theirs.recipe),
                None,
            )
            .await;
        assert_eq!(
            (status, recipe["version"].clone(), recipe["enabled"].clone()),
            (200, json!(1), json!(true))
        );
        let (status, _) = server
            .api(
                Method::GET,
                &format!("/api/v1/connections/{}", theirs.connection),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let answer = server.hook("/hooks/price", json!({})).await;
        assert_eq!(answer["rate"], "1.08", "the table kept its rows");
        let (_, jobs) = server.api(Method::GET, "/api/v1/jobs", None).await;
        assert_eq!(
            jobs["jobs"].as_array().map(Vec::len),
            Some(2),
            "no rerun: {jobs}"
        );
        let (_, members) = server.api(Method::GET, "/api/v1/members", None).await;
        assert_eq!(members["members"][0]["role"], "owner", "{members}");
    }
);

on_both_backends!(
    each_workspace_has_its_own_names_paths_tables_and_connections,
    |server: Server| async move {
        first_workspace(&server).await;
        let acme = server.create_user_and_token_in("acme", "owner@acme.example", "owner");

        // The same recipe name, webhook path and table name are free in another workspace.
        fill_table(&server, &acme, "rates", "currency,rate,k\nEUR,2.50,\n").await;
        let (status, saved) = server
            .api_as(
                &acme,
                Method::POST,
                "/api/v1/recipes",
                Some(PRICE.to_owned()),
            )
            .await;
        assert_eq!(status, 201, "{saved}");

        // Each webhook is the workspace's own, and reads the workspace's own table.
        let first = server.hook("/hooks/price", json!({})).await;
        assert_eq!(first, json!({ "rate": "1.08", "workspace": "default" }));
        let first = server.hook("/w/default/hooks/price", json!({})).await;
        assert_eq!(first["rate"], "1.08");
        let second = server.hook("/w/acme/hooks/price", json!({})).await;
        assert_eq!(second, json!({ "rate": "2.50", "workspace": "acme" }));
        let response = Server::client()
            .post(server.url("/w/nobody/hooks/price"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 404);

        // Each workspace's jobs are listed in it alone.
        let (_, theirs) = server
            .api_as(&acme, Method::GET, "/api/v1/jobs", None)
            .await;
        let listed = theirs["jobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(listed.len(), 1, "{theirs}");
        assert_eq!(listed[0]["recipe_id"], saved["id"]);

        // A job of the second workspace finds no connection, table or recipe of the first.
        let (_, borrow) = server
            .api_as(
                &acme,
                Method::POST,
                "/api/v1/recipes",
                Some(BORROW.replace("call: Price", "call: Missing")),
            )
            .await;
        let (status, accepted) = server
            .api_as(
                &acme,
                Method::POST,
                &format!("/api/v1/recipes/{}/run", borrow["id"].as_str().unwrap()),
                Some("{}".to_owned()),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let job_id = accepted["job_id"].as_str().unwrap();
        let mut job = Value::Null;
        for _ in 0..200 {
            let (_, found) = server
                .api_as(&acme, Method::GET, &format!("/api/v1/jobs/{job_id}"), None)
                .await;
            job = found;
            if job["status"] == "succeeded" || job["status"] == "failed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let errors: Vec<String> = job["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|step| {
                step["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert!(errors[0].contains("no connection named `crm`"), "{job}");
        assert!(
            errors[1].contains("no lookup table named `private`"),
            "{job}"
        );
        assert!(errors[2].contains("no recipe named `Missing`"), "{job}");
        assert!(!job.to_string().contains("first-workspace-secret"), "{job}");

        // The same recipe, calling a recipe its own workspace has, works.
        let (status, _) = server
            .api_as(
                &acme,
                Method::PUT,
                &format!("/api/v1/recipes/{}", borrow["id"].as_str().unwrap()),
                Some(BORROW.to_owned()),
            )
            .await;
        assert_eq!(status, 200);
    }
);

on_both_backends!(
    people_switch_between_their_workspaces,
    |server: Server| async move {
        let acme = server.create_user_and_token_in("acme", "owner@acme.example", "owner");
        let (status, made) = server
            .api_as(
                &acme,
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({ "id": "acme-eu", "name": "Acme Europe" }).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let (status, taken) = server
            .api_as(
                &acme,
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({ "id": "default", "name": "Mine" }).to_string()),
            )
            .await;
        assert_eq!(status, 409, "{taken}");
        let (status, bad) = server
            .api_as(
                &acme,
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({ "id": "Not An Id", "name": "x" }).to_string()),
            )
            .await;
        assert_eq!(status, 400, "{bad}");
        let listed = ok(&server, &acme, Method::GET, "/api/v1/workspaces", None).await;
        let mut ids: Vec<&str> = listed["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|workspace| workspace["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, vec!["acme", "acme-eu"], "{listed}");

        // A browser session moves between the person's workspaces, not into others.
        let response = Server::client()
            .post(server.url("/api/v1/session"))
            .body(json!({ "email": "owner@acme.example", "password": "a long enough password", "workspace": "acme" }).to_string())
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .unwrap()
            .to_owned();
        let signed_in: Value = response.json().await.unwrap();
        assert_eq!(signed_in["workspace"], "acme", "{signed_in}");
        let csrf = signed_in["csrf_token"].as_str().unwrap().to_owned();
        let (cookie, csrf) = (&cookie, &csrf);
        let session = |method: Method, path: &str, body: String| {
            Server::client()
                .request(method, server.url(path))
                .header(reqwest::header::COOKIE, cookie)
                .header("x-csrf-token", csrf)
                .body(body)
                .send()
        };
        let switch = |to: &str| {
            session(
                Method::PUT,
                "/api/v1/session/workspace",
                json!({ "workspace": to }).to_string(),
            )
        };
        assert_eq!(switch("default").await.unwrap().status(), 404);
        let moved = switch("acme-eu").await.unwrap();
        assert_eq!(moved.status(), 200);
        let saved: Value = session(Method::POST, "/api/v1/recipes", PRICE.to_owned())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(saved["id"].is_string(), "{saved}");
        let (_, in_acme) = server
            .api_as(&acme, Method::GET, "/api/v1/recipes", None)
            .await;
        assert_eq!(
            in_acme["recipes"],
            json!([]),
            "the recipe was made in acme-eu"
        );

        // A token stays in the workspace it was made for.
        let (status, refused) = server
            .api_as(
                &acme,
                Method::PUT,
                "/api/v1/session/workspace",
                Some(json!({ "workspace": "acme-eu" }).to_string()),
            )
            .await;
        assert_eq!(status, 400, "{refused}");
    }
);

on_both_backends!(
    two_owners_demoting_each_other_at_once_leave_one,
    |server: Server| async move {
        let other = server.create_user_and_token("bo@example.com", "owner");
        let id_of = |token: String| {
            let server = &server;
            async move {
                let (_, me) = server.api_as(&token, Method::GET, "/api/v1/me", None).await;
                me["id"].as_str().unwrap().to_owned()
            }
        };
        let (ann, bo) = (
            id_of(server.token.clone()).await,
            id_of(other.clone()).await,
        );
        let demote = json!({ "role": "admin" }).to_string();
        let promote = json!({ "role": "owner" }).to_string();
        for round in 0..5 {
            let (bo_path, ann_path) = (
                format!("/api/v1/members/{bo}"),
                format!("/api/v1/members/{ann}"),
            );
            let (first, second) = tokio::join!(
                server.api(Method::PUT, &bo_path, Some(demote.clone())),
                server.api_as(&other, Method::PUT, &ann_path, Some(demote.clone())),
            );
            let (_, members) = server.api(Method::GET, "/api/v1/members", None).await;
            let owners: Vec<Value> = members["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|member| member["role"] == "owner")
                .cloned()
                .collect();
            assert_eq!(
                owners.len(),
                1,
                "round {round}: {first:?} {second:?} {members}"
            );
            // Whoever is still the owner makes the other one again.
            let (token, id) = if owners[0]["user_id"] == ann.as_str() {
                (server.token.clone(), bo.clone())
            } else {
                (other.clone(), ann.clone())
            };
            let (status, _) = server
                .api_as(
                    &token,
                    Method::PUT,
                    &format!("/api/v1/members/{id}"),
                    Some(promote.clone()),
                )
                .await;
            assert_eq!(status, 200);
        }
        // A HEAD is allowed wherever a GET is.
        let viewer = server.create_user_and_token("vi@example.com", "viewer");
        let (status, _) = server
            .api_as(&viewer, Method::HEAD, "/api/v1/recipes", None)
            .await;
        assert_eq!(status, 200);
    }
);
