//! The OpenAPI 3 document of the whole HTTP interface, made from the same list of routes the
//! router is built from, so that it cannot leave a route out.

use axum::Json;
use serde_json::{Map, Value, json};

use crate::access::api_routes;

/// The routes outside `/api/v1`, which take no API token (except the metrics): method, path,
/// summary, success status.
const OTHER_ROUTES: &[(&str, &str, &str, u16)] = &[
    (
        "post",
        "/hooks/{path}",
        "Start a job of the default workspace's recipe whose webhook this is (any method the recipe allows)",
        202,
    ),
    (
        "post",
        "/w/{workspace}/hooks/{path}",
        "Start a job of the workspace's recipe whose webhook this is (any method the recipe allows)",
        202,
    ),
    (
        "get",
        "/oauth/callback",
        "Where an OAuth 2 provider sends the browser back",
        200,
    ),
    ("get", "/healthz", "Liveness: the process answers", 200),
    ("get", "/readyz", "Readiness: the store answers", 200),
    (
        "get",
        "/metrics",
        "Prometheus metrics (needs an API token)",
        200,
    ),
    ("get", "/api/v1/openapi.json", "This document", 200),
    (
        "post",
        "/api/v1/session",
        "Sign in with email and password: sets the session cookie",
        200,
    ),
    (
        "post",
        "/api/v1/sign-up",
        "Sign up with a workspace of one's own (when the server lets anyone)",
        202,
    ),
    (
        "post",
        "/api/v1/setup",
        "Make the first owner with the link printed at the first start",
        201,
    ),
    (
        "post",
        "/api/v1/invitations/accept",
        "Join a workspace with an invitation's link",
        200,
    ),
    (
        "post",
        "/api/v1/password-reset",
        "Ask for a password reset link by mail",
        202,
    ),
    (
        "post",
        "/api/v1/password-reset/confirm",
        "Set a new password with a reset link",
        204,
    ),
    (
        "post",
        "/api/v1/email/confirm",
        "Confirm an email address with its link",
        204,
    ),
    (
        "get",
        "/api/v1/sso/start",
        "Go to the workspace's identity provider",
        303,
    ),
    (
        "get",
        "/sso/callback",
        "Where the identity provider sends the browser back",
        303,
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split('/')
        .filter(|segment| !segment.is_empty() && *segment != "api" && *segment != "v1")
        .map(|segment| segment.trim_matches(['{', '}']))
        .collect();
    format!("{method}_{}", words.join("_")).replace(['.', '-'], "_")
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in api_routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let path = format!("/api/v1{}", route.path);
        let mut responses = Map::new();
        responses.insert(
            route.success.to_string(),
            json!({ "description": "done", "content": { "application/json": {} } }),
        );
        responses.insert("400".to_owned(), error_response("the request is not valid"));
        responses.insert("401".to_owned(), error_response("no valid API token"));
        responses.insert(
            "403".to_owned(),
            error_response("the token's role is too low"),
        );
        if route.path.contains('{') {
            responses.insert("404".to_owned(), error_response("no such object"));
        }
        let mut operation = json!({
            "operationId": operation_id(&method, &path),
            "summary": route.summary,
            "security": [{ "bearer": [] }],
            "x-weft-role": route.needs.as_str(),
            "parameters": path_parameters(route.path),
            "responses": responses,
        });
        if let Some(action) = route.audit {
            operation["x-weft-audit"] = json!(action);
        }
        if method == "post" || method == "put" {
            operation["requestBody"] = json!({
                "content": {
                    "application/json": { "schema": { "type": "object" } },
                    "text/plain": { "schema": { "type": "string" } },
                }
            });
        }
        paths
            .entry(path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|methods| methods.insert(method, operation));
    }
    for (method, path, summary, success) in OTHER_ROUTES {
        let mut operation = json!({
            "operationId": operation_id(method, path),
            "summary": summary,
            "security": [],
            "parameters": path_parameters(path),
            "responses": { success.to_string(): { "description": "done" } },
        });
        if *path == "/metrics" {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        paths
            .entry(*path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|methods| methods.insert((*method).to_owned(), operation));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Weft",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Recipes, connections, jobs, lookup tables, tokens and the audit log of a Weft server. Every /api/v1 route needs `Authorization: Bearer TOKEN`; `x-weft-role` is the least role that may call it, and `x-weft-audit` the audit log's action for a successful call.",
        },
        "servers": [{ "url": "/" }],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": { "type": "string" },
                                "message": { "type": "string" },
                                "problems": { "type": "array", "items": { "type": "object" } },
                            },
                        },
                    },
                },
            },
        },
        "paths": paths,
    })
}

/// `GET /api/v1/openapi.json`: public, like any API's documentation.
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_in_the_document_with_its_role() {
        let document = document();
        for route in api_routes() {
            let path = format!("/api/v1{}", route.path);
            let method = route.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][&path][&method];
            assert_eq!(
                operation["x-weft-role"],
                route.needs.as_str(),
                "{method} {path}"
            );
            assert!(!route.summary.is_empty());
        }
        let ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|methods| methods.as_object().unwrap().values())
            .map(|operation| operation["operationId"].as_str().unwrap())
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique");
    }
}
