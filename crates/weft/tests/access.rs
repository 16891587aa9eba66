//! Who may call what: every API route, walked from the server's own list of routes and their
//! rules, called by a person of each role, by nobody, and with a token that no longer works.
//! A route added without a rule cannot exist (the router is built from the list), and a rule
//! that does not hold fails here.

use reqwest::Method;
use serde_json::{Value, json};
use weft_store::Role;

use crate::support::server::{Backend, Server};

/// A path of the route with made-up ids, so that an allowed call changes nothing.
fn concrete(path: &str) -> String {
    format!(
        "/api/v1{}",
        path.replace("{id}", "no-such-id")
            .replace("{name}", "no_such_table")
    )
}

on_both_backends!(
    every_route_answers_each_role_as_its_rule_says,
    |server: Server| async move {
        let tokens: Vec<(Role, String)> = Role::ALL
            .into_iter()
            .map(|role| {
                let email = format!("{role}@example.com");
                (role, server.create_user_and_token(&email, role.as_str()))
            })
            .collect();
        let routes = weft_server::api_routes();
        assert!(routes.len() > 30, "the list holds every route");
        for route in &routes {
            let path = concrete(route.path);
            let body = (route.method != Method::GET && route.method != Method::DELETE)
                .then(|| "{}".to_owned());
            let (status, answer) = server
                .api_as("", route.method.clone(), &path, body.clone())
                .await;
            assert_eq!(
                status, 401,
                "{} {path} without a token: {answer}",
                route.method
            );
            for (role, token) in &tokens {
                let (status, answer) = server
                    .api_as(token, route.method.clone(), &path, body.clone())
                    .await;
                if *role < route.needs {
                    assert_eq!(status, 403, "{} {path} as {role}: {answer}", route.method);
                    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
                } else {
                    assert!(
                        status != 401 && status != 403,
                        "{} {path} as {role} answered {status}: {answer}",
                        route.method
                    );
                }
            }
        }
    }
);

on_both_backends!(
    tokens_are_made_listed_and_revoked_within_a_role,
    |server: Server| async move {
        let builder = server.create_user_and_token("bea@example.com", "builder");
        let (status, me) = server
            .api_as(&builder, Method::GET, "/api/v1/whoami", None)
            .await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["role"], "builder");
        assert_eq!(me["user"]["email"], "bea@example.com");

        // A token of a lower role, shown once; not one of a higher role.
        let (server, builder) = (&server, &builder);
        let new = |body: Value| async move {
            server
                .api_as(
                    builder,
                    Method::POST,
                    "/api/v1/tokens",
                    Some(body.to_string()),
                )
                .await
        };
        let (status, made) =
            new(json!({ "name": "deploys", "role": "operator", "expires_in": "30d" })).await;
        assert_eq!(status, 201, "{made}");
        let deploy_token = made["token"].as_str().unwrap().to_owned();
        assert!(deploy_token.starts_with("weft_"));
        let (status, refused) = new(json!({ "name": "too much", "role": "admin" })).await;
        assert_eq!(status, 403, "{refused}");
        let (status, refused) = new(json!({ "name": "", "role": "viewer" })).await;
        assert_eq!(status, 400, "{refused}");
        let (status, refused) = new(json!({ "name": "x", "expires_in": "soon" })).await;
        assert_eq!(status, 400, "{refused}");

        // The new token acts as an operator: it runs nothing a builder only may do.
        let (status, _) = server
            .api_as(
                &deploy_token,
                Method::POST,
                "/api/v1/recipes",
                Some("{}".to_owned()),
            )
            .await;
        assert_eq!(status, 403);
        let (_, me) = server
            .api_as(&deploy_token, Method::GET, "/api/v1/whoami", None)
            .await;
        assert_eq!(me["role"], "operator");

        // A builder lists their own tokens, never the tokens themselves; an owner sees all.
        let (_, own) = server
            .api_as(builder, Method::GET, "/api/v1/tokens", None)
            .await;
        let own = own["tokens"].as_array().unwrap().clone();
        assert_eq!(own.len(), 2, "{own:#?}");
        assert!(own.iter().all(|token| token["user"] == "bea@example.com"));
        assert!(
            !Value::Array(own.clone())
                .to_string()
                .contains(&deploy_token)
        );
        let deploys = own.iter().find(|token| token["name"] == "deploys").unwrap();
        assert_eq!(deploys["role"], "operator");
        assert!(deploys["expires_at"].is_string());
        let (_, all) = server.api(Method::GET, "/api/v1/tokens", None).await;
        assert_eq!(all["tokens"].as_array().unwrap().len(), 3, "{all}");

        // Revoking: a builder cannot revoke the owner's token; the owner can revoke theirs.
        let owners = all["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|token| token["user"] == "ann@example.com")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = server
            .api_as(
                builder,
                Method::DELETE,
                &format!("/api/v1/tokens/{owners}"),
                None,
            )
            .await;
        assert_eq!(status, 404);
        let deploys_id = deploys["id"].as_str().unwrap();
        let (status, _) = server
            .api(
                Method::DELETE,
                &format!("/api/v1/tokens/{deploys_id}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
        let (status, _) = server
            .api_as(&deploy_token, Method::GET, "/api/v1/whoami", None)
            .await;
        assert_eq!(status, 401, "a revoked token opens nothing");
        let (_, all) = server.api(Method::GET, "/api/v1/tokens", None).await;
        let used = all["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|token| token["user"] == "bea@example.com")
            .unwrap();
        assert!(used["last_used_at"].is_string(), "{used}");
    }
);

/// An expired token opens nothing; the CLI refuses a token above its person's role.
#[tokio::test]
async fn expired_tokens_and_roles_above_ones_own_are_refused() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    server.create_user_and_token("vi@example.com", "viewer");
    let made = crate::support::weft()
        .args([
            "admin",
            "create-token",
            "--email",
            "vi@example.com",
            "--role",
            "admin",
        ])
        .args(server.store_args())
        .output()
        .unwrap();
    assert!(!made.status.success());
    let said = String::from_utf8_lossy(&made.stderr);
    assert!(said.contains("higher role"), "{said}");

    let made = crate::support::weft()
        .args([
            "admin",
            "create-token",
            "--email",
            "vi@example.com",
            "--expires-in",
            "1s",
        ])
        .args(server.store_args())
        .output()
        .unwrap();
    assert!(made.status.success());
    let token = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let (status, _) = server
        .api_as(&token, Method::GET, "/api/v1/whoami", None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, answer) = server
        .api_as(&token, Method::GET, "/api/v1/whoami", None)
        .await;
    assert_eq!(status, 401, "{answer}");
}

/// A person's new role reaches their tokens at once; the last owner stays an owner.
#[tokio::test]
async fn a_change_of_role_reaches_the_persons_tokens() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let token = server.create_user_and_token("op@example.com", "operator");
    let set_role = |email: &str, role: &str| {
        crate::support::weft()
            .args(["admin", "set-role", "--email", email, "--role", role])
            .args(server.store_args())
            .output()
            .unwrap()
    };
    assert!(set_role("op@example.com", "viewer").status.success());
    let (_, me) = server
        .api_as(&token, Method::GET, "/api/v1/whoami", None)
        .await;
    assert_eq!(me["role"], "viewer");
    let (status, _) = server
        .api_as(&token, Method::GET, "/api/v1/jobs/no-such-id", None)
        .await;
    assert_eq!(status, 403);

    let refused = set_role("ann@example.com", "admin");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("last owner"));
    assert!(set_role("op@example.com", "owner").status.success());
    assert!(set_role("ann@example.com", "admin").status.success());
}

/// The OpenAPI document is served without a token, names every route with its role, and
/// every route it names exists.
#[tokio::test]
async fn the_openapi_document_names_every_route() {
    let server = Server::start_with(Backend::Sqlite, &[]).await.unwrap();
    let (status, document) = server
        .api_as("", Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["openapi"], "3.0.3");
    let paths = document["paths"].as_object().unwrap();
    for route in weft_server::api_routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let operation = &paths[&format!("/api/v1{}", route.path)][&method];
        assert_eq!(
            operation["x-weft-role"],
            route.needs.as_str(),
            "{method} {}",
            route.path
        );
    }
    for (path, methods) in paths {
        let concrete = path
            .replace("{id}", "no-such-id")
            .replace("{name}", "no_such_table")
            .replace("{path}", "no/such/hook");
        for method in methods.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, answer) = server
                .api(method.clone(), &concrete, Some("{}".to_owned()))
                .await;
            assert!(
                status != 405 && !answer.to_string().contains("no route here"),
                "{method} {path} is in the document but not served: {status} {answer}"
            );
        }
    }
}
