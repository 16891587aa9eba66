//! The audit log: what people and `weft admin` change is written with who, from where, and
//! the change's before and after without secrets; read newest first by admins and owners,
//! filtered and paged; and deleted after its retention.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

const HELLO: &str =
    "name: Hello\ntrigger: { manual: {} }\nsteps:\n  - id: say\n    transform: '\"hello\"'\n";
const HELLO_AGAIN: &str =
    "name: Hello\ntrigger: { manual: {} }\nsteps:\n  - id: say\n    transform: '\"hello again\"'\n";

async fn audit(server: &Server, query: &str) -> Value {
    let (status, answer) = server
        .api(Method::GET, &format!("/api/v1/audit{query}"), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn actions(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect()
}

on_both_backends!(
    changes_are_written_with_who_what_and_where,
    &["--audit-retention", "4s"],
    |mut server: Server| async move {
        let id = server.save_recipe(HELLO).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = server
            .api(
                Method::PUT,
                &format!("/api/v1/recipes/{id}"),
                Some(HELLO_AGAIN.to_owned()),
            )
            .await;
        assert_eq!(status, 200);
        server
            .api(Method::POST, &format!("/api/v1/recipes/{id}/disable"), None)
            .await;
        let secret = "sk-audit-7d1e";
        let connection = server
            .save_connection(json!({
                "name": "crm", "connector": "http",
                "fields": { "base_url": "https://crm.example.com", "auth": "bearer", "token": secret }
            }))
            .await;
        let connection_id = connection["id"].as_str().unwrap().to_owned();
        let (status, _) = server
            .api(
                Method::DELETE,
                &format!("/api/v1/connections/{connection_id}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
        // A refused call and a read are not written.
        let viewer = server.create_user_and_token("vi@example.com", "viewer");
        let (status, _) = server
            .api_as(
                &viewer,
                Method::DELETE,
                &format!("/api/v1/recipes/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 403);
        server.api(Method::GET, "/api/v1/recipes", None).await;

        let all = audit(&server, "").await;
        assert_eq!(
            actions(&all),
            [
                "token.create",
                "member.create",
                "connection.delete",
                "connection.create",
                "recipe.disable",
                "recipe.update",
                "recipe.create",
                "token.create",
                "member.create",
            ],
            "{all:#}"
        );
        let events = all["events"].as_array().unwrap();
        let update = &events[5];
        assert_eq!(update["actor"], "ann@example.com");
        assert_eq!(update["target"], id.as_str());
        assert_eq!(update["ip"], "127.0.0.1");
        assert_eq!(update["user_agent"], "weft-tests");
        assert_eq!(update["details"]["before"]["version"], 1);
        assert_eq!(update["details"]["after"]["version"], 2);
        assert_eq!(
            events[2]["details"]["before"]["fields"]["token"],
            "********"
        );
        assert!(
            !all.to_string().contains(secret),
            "a secret reached the audit log"
        );
        assert_eq!(
            events[0]["actor"], "weft admin",
            "tokens made on the command line"
        );
        assert_eq!(events[1]["details"]["role"], "viewer");

        // Filters and pages.
        let updates = audit(&server, "?action=recipe.update").await;
        assert_eq!(actions(&updates), ["recipe.update"]);
        let of_recipe = audit(&server, &format!("?target={id}")).await;
        assert_eq!(
            actions(&of_recipe),
            ["recipe.disable", "recipe.update", "recipe.create"]
        );
        let first = audit(&server, "?limit=6").await;
        let next = first["next"].as_str().unwrap();
        let second = audit(&server, &format!("?limit=6&before={next}")).await;
        assert_eq!(
            actions(&second),
            ["recipe.create", "token.create", "member.create"]
        );
        let (status, refused) = server
            .api_as(&viewer, Method::GET, "/api/v1/audit", None)
            .await;
        assert_eq!(status, 403, "{refused}");

        // Past its retention an event is deleted (at the next start, and every hour).
        tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
        server.terminate();
        server.wait();
        server.start_again();
        // The deletion runs beside the start: give it a moment.
        let mut kept = audit(&server, "").await;
        for _ in 0..50 {
            if actions(&kept).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            kept = audit(&server, "").await;
        }
        assert_eq!(actions(&kept), Vec::<String>::new(), "{kept:#}");
    }
);

/// The address of the newest sign-in in the audit log.
async fn last_sign_in_address(server: &Server) -> Value {
    let (_, events) = server
        .api(Method::GET, "/api/v1/audit?action=session.sign_in", None)
        .await;
    events["events"][0]["ip"].clone()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_clients_address_is_recorded() {
    let sign_in_from = |server: &Server, client: &'static str| {
        Server::client()
            .post(server.url("/api/v1/session"))
            .header("x-forwarded-for", format!("198.51.100.9, {client}"))
            .body(
                json!({ "email": "ann@example.com", "password": "a long enough password" })
                    .to_string(),
            )
            .send()
    };
    let direct = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    assert_eq!(
        sign_in_from(&direct, "203.0.113.7").await.unwrap().status(),
        200
    );
    assert_eq!(
        last_sign_in_address(&direct).await,
        "127.0.0.1",
        "no proxy is trusted: the header is anybody's"
    );

    let proxied = Server::start_with(Backend::Sqlite, &["--trusted-proxy", "127.0.0.1"])
        .await
        .unwrap();
    assert_eq!(
        sign_in_from(&proxied, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        last_sign_in_address(&proxied).await,
        "203.0.113.7",
        "the address the proxy saw, not what the client wrote"
    );
}

#[tokio::test]
async fn the_log_names_the_actions_it_holds_for_its_filter() {
    let server = Server::start_with(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");
    server
        .save_recipe("name: Listed\ntrigger:\n  webhook: { path: listed }\nsteps:\n  - id: echo\n    transform: .trigger.body\n")
        .await;
    let (status, listed) = server.api(Method::GET, "/api/v1/audit/actions", None).await;
    assert_eq!(status, 200, "{listed}");
    let listed: Vec<&str> = listed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|action| action.as_str().unwrap())
        .collect();
    // The test server's person and token were made with `weft admin`; the recipe by its API.
    assert!(listed.contains(&"recipe.create"), "{listed:?}");
    assert!(listed.contains(&"member.create"), "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(listed, sorted, "each once, in order");
}
