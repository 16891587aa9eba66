//! Safe sharing of recipes: a recipe is published and exported without its connections,
//! secrets and personal data, which its publisher sees; another workspace imports it with its
//! own values filled in.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};
use crate::support::weft;

const WELCOME: &str = "\
name: Welcome
description: Greets new customers; questions to ann.smith@acme.example
trigger:
  webhook: { path: welcome }
vars:
  owner: Ann Smith
  hotline: +49 30 1234 5678
steps:
  - id: tell
    action: http.request
    connection: acme-crm
    input:
      url: https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX
      body: { text: 'Hello {{ trigger.body.name }} from {{ vars.owner }}', key: sk_live_abcdefgh12345678 }
";
const PRIVATE: [&str; 6] = [
    "ann.smith@acme.example",
    "Ann Smith",
    "+49 30 1234 5678",
    "acme-crm",
    "hooks.slack.com/services/T000",
    "sk_live_abcdefgh12345678",
];

fn placeholder_of(removed: &Value, kind: &str) -> String {
    removed
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} removed: {removed}"))["placeholder"]
        .as_str()
        .unwrap()
        .to_owned()
}

on_both_backends!(
    a_published_recipe_is_imported_by_another_workspace,
    |server: Server| async move {
        let saved = server.save_recipe(WELCOME).await;
        let (status, published) = server
            .api(
                Method::POST,
                "/api/v1/library",
                Some(json!({ "recipe": saved["id"], "description": "Greets" }).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{published}");
        // The publisher sees what was taken out; the library keeps none of it.
        let removed = &published["removed"];
        for (kind, value) in [
            ("email", "ann.smith@acme.example"),
            ("name", "Ann Smith"),
            ("phone", "+49 30 1234 5678"),
            ("connection", "acme-crm"),
            ("secret", "sk_live_abcdefgh12345678"),
        ] {
            let found = removed
                .as_array()
                .unwrap()
                .iter()
                .any(|finding| finding["kind"] == kind && finding["value"] == value);
            assert!(found, "{kind} `{value}` not among {removed}");
        }
        let id = published["id"].as_str().unwrap().to_owned();

        let acme = server.create_user_and_token_in("acme", "owner@acme.example", "owner");
        let (status, listed) = server
            .api_as(&acme, Method::GET, "/api/v1/library", None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(listed["recipes"][0]["name"], "Welcome", "{listed}");
        let (_, shown) = server
            .api_as(&acme, Method::GET, &format!("/api/v1/library/{id}"), None)
            .await;
        let shared = shown.to_string();
        for private in PRIVATE {
            assert!(!shared.contains(private), "`{private}` is in {shared}");
        }
        let (_, audit) = server
            .api(Method::GET, "/api/v1/audit?action=library.publish", None)
            .await;
        for private in PRIVATE {
            assert!(
                !audit.to_string().contains(private),
                "`{private}` in the audit log"
            );
        }

        // Import: every placeholder needs a value; then the recipe is acme's own.
        let import = format!("/api/v1/library/{id}/import");
        let (status, refused) = server
            .api_as(
                &acme,
                Method::POST,
                &import,
                Some(json!({ "values": {} }).to_string()),
            )
            .await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("__share_connection_1__"),
            "{refused}"
        );
        let mut values = serde_json::Map::new();
        for finding in removed.as_array().unwrap() {
            let value = match finding["kind"].as_str().unwrap() {
                "connection" => "acme-api".to_owned(),
                "email" => "ops@acme.example".to_owned(),
                "name" => "Bo Li".to_owned(),
                "phone" => "+1 555 0100 200".to_owned(),
                "url" => "https://hooks.slack.com/services/T1/B1/ZZZZZZZZ".to_owned(),
                other => format!("{other}-of-acme"),
            };
            values.insert(
                finding["placeholder"].as_str().unwrap().to_owned(),
                json!(value),
            );
        }
        let (status, imported) = server
            .api_as(
                &acme,
                Method::POST,
                &import,
                Some(json!({ "values": values }).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{imported}");
        let source = imported["source"].as_str().unwrap();
        assert!(source.contains("connection: acme-api"), "{source}");
        assert!(source.contains("owner: Bo Li"), "{source}");
        let (_, acme_recipes) = server
            .api_as(&acme, Method::GET, "/api/v1/recipes", None)
            .await;
        assert_eq!(acme_recipes["recipes"][0]["name"], "Welcome");
        assert_eq!(
            placeholder_of(removed, "connection"),
            "__share_connection_1__"
        );

        // Only the publishing workspace takes it out.
        let entry = format!("/api/v1/library/{id}");
        let (status, _) = server.api_as(&acme, Method::DELETE, &entry, None).await;
        assert_eq!(status, 404);
        let (status, _) = server.api(Method::DELETE, &entry, None).await;
        assert_eq!(status, 204);
        let (_, listed) = server.api(Method::GET, "/api/v1/library", None).await;
        assert_eq!(listed["recipes"], json!([]));
    }
);

#[test]
fn a_recipe_file_is_exported_fit_to_share() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("welcome.yaml");
    std::fs::write(&file, WELCOME).unwrap();
    let exported = weft()
        .args(["recipe", "export", "--share"])
        .arg(&file)
        .output()
        .expect("weft runs");
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let shared = String::from_utf8_lossy(&exported.stdout);
    for private in PRIVATE {
        assert!(!shared.contains(private), "`{private}` in {shared}");
    }
    assert!(
        shared.contains("connection: __share_connection_1__"),
        "{shared}"
    );
    let told = String::from_utf8_lossy(&exported.stderr);
    assert!(
        told.contains("removed: email `ann.smith@acme.example` (line 2) -> __share_email_1__"),
        "{told}"
    );
    assert!(
        told.contains("removed: name `Ann Smith` (line 6)"),
        "{told}"
    );
}

#[tokio::test]
async fn a_recipe_that_is_not_one_cannot_be_published() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let (status, refused) = server
        .api(
            Method::POST,
            "/api/v1/library",
            Some(json!({ "recipe": "no-such-recipe" }).to_string()),
        )
        .await;
    assert_eq!(status, 404, "{refused}");
}

#[tokio::test]
async fn the_check_shows_what_publishing_would_share_and_publishes_nothing() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    let recipe = server.save_recipe(WELCOME).await;
    let (status, checked) = server
        .api(
            Method::POST,
            "/api/v1/library/check",
            Some(json!({ "recipe": recipe["id"] }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    let shared = checked["source"].as_str().unwrap();
    for value in PRIVATE {
        assert!(!shared.contains(value), "{value} is in {shared}");
    }
    let connection = placeholder_of(&checked["removed"], "connection");
    assert!(shared.contains(&connection), "{shared}");
    let (_, listed) = server.api(Method::GET, "/api/v1/library", None).await;
    assert_eq!(listed["recipes"], json!([]), "nothing is published");
    let (_, audited) = server
        .api(Method::GET, "/api/v1/audit?action=library.publish", None)
        .await;
    assert_eq!(audited["events"], json!([]), "{audited}");
}
