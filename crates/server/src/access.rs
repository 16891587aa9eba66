//! Every API route with the least role that may call it, in one list: the router is built
//! from it, the authorization layer reads it, and the isolation test walks it. A route cannot
//! be added without a rule.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Extension, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use weft_store::{AuditEvent, Role};

use crate::error::ApiError;
use crate::{
    AppState, accounts, audit, auth, billing, connections, dashboard, jobs, library, members,
    privacy, recipes, rights, sessions, sso, tables, tokens, usage, workspaces,
};

/// One route: its method and path (under `/api/v1`), the least role that may call it, what
/// its successful calls are written to the audit log as, and its handler.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub needs: Role,
    /// The audit log's action for a successful call, such as `recipe.update`; `None` for the
    /// routes that only read.
    pub audit: Option<&'static str>,
    /// What the route does, for the OpenAPI document.
    pub summary: &'static str,
    /// The status of a successful answer.
    pub success: u16,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    needs: Role,
    summary: &'static str,
    handler: MethodRouter<AppState>,
) -> ApiRoute {
    let success = if method == Method::DELETE { 204 } else { 200 };
    ApiRoute {
        method,
        path,
        needs,
        audit: None,
        summary,
        success,
        handler,
    }
}

impl ApiRoute {
    fn audited(mut self, action: &'static str) -> ApiRoute {
        self.audit = Some(action);
        self
    }

    fn answers(mut self, status: u16) -> ApiRoute {
        self.success = status;
        self
    }
}

/// What a handler adds to its route's audit event: the target when the path does not name
/// it (a new object), and the change's before and after, without secrets.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub target_id: Option<String>,
    pub details: Option<Value>,
}

impl AuditNote {
    pub fn details(details: Value) -> Extension<AuditNote> {
        Extension(AuditNote {
            target_id: None,
            details: Some(details),
        })
    }

    pub fn created(target_id: &str, after: Value) -> Extension<AuditNote> {
        Extension(AuditNote {
            target_id: Some(target_id.to_owned()),
            details: Some(json!({ "after": after })),
        })
    }

    pub fn changed(before: Value, after: Value) -> Extension<AuditNote> {
        AuditNote::details(json!({ "before": before, "after": after }))
    }
}

/// Every route of `/api/v1`, with who may call it and what it is written to the audit log as.
#[rustfmt::skip]
pub fn api_routes() -> Vec<ApiRoute> {
    use Role::{Admin, Builder, Operator, Owner, Viewer};
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const DELETE: Method = Method::DELETE;
    const PATCH: Method = Method::PATCH;
    vec![
        route(GET, "/recipes", Viewer, "List recipes", get(recipes::list)),
        route(POST, "/recipes/check", Viewer, "Check a recipe's text without saving it: its problems, or its flow", post(recipes::check)),
        route(POST, "/recipes", Builder, "Create a recipe (YAML or JSON)", post(recipes::create))
            .audited("recipe.create").answers(201),
        route(GET, "/recipes/{id}", Viewer, "Show a recipe with its text", get(recipes::show)),
        route(PUT, "/recipes/{id}", Builder, "Save a new version of a recipe", put(recipes::replace))
            .audited("recipe.update"),
        route(DELETE, "/recipes/{id}", Builder, "Delete a recipe", delete(recipes::delete))
            .audited("recipe.delete"),
        route(POST, "/recipes/{id}/enable", Builder, "Enable a recipe", post(recipes::enable))
            .audited("recipe.enable"),
        route(POST, "/recipes/{id}/disable", Builder, "Disable a recipe", post(recipes::disable))
            .audited("recipe.disable"),
        route(GET, "/recipes/{id}/versions", Viewer, "List a recipe's versions", get(recipes::versions)),
        route(POST, "/recipes/{id}/run", Operator, "Run a recipe by hand", post(recipes::run))
            .audited("recipe.run").answers(202),
        route(POST, "/recipes/{id}/poll/reset", Builder, "Forget a poll's cursor and seen keys", post(recipes::reset_poll))
            .audited("recipe.poll_reset"),
        route(GET, "/connectors", Viewer, "Every connector with its connection fields, actions and triggers", get(connections::connectors)),
        route(GET, "/dashboard", Viewer, "Jobs per hour, the recipes failing most, and the queue", get(dashboard::show)),
        route(GET, "/connections", Viewer, "List connections", get(connections::list)),
        route(POST, "/connections", Builder, "Create a connection", post(connections::create))
            .audited("connection.create").answers(201),
        route(GET, "/connections/{id}", Viewer, "Show a connection (secrets hidden)", get(connections::show)),
        route(PUT, "/connections/{id}", Builder, "Replace a connection", put(connections::replace))
            .audited("connection.update"),
        route(DELETE, "/connections/{id}", Builder, "Delete a connection", delete(connections::delete))
            .audited("connection.delete"),
        route(POST, "/connections/{id}/test", Builder, "Test a connection", post(connections::test))
            .audited("connection.test"),
        route(POST, "/connections/{id}/oauth/start", Builder, "Start connecting an OAuth 2 account", post(connections::oauth_start))
            .audited("connection.oauth_start"),
        route(GET, "/tables", Viewer, "List lookup tables", get(tables::list)),
        route(POST, "/tables", Builder, "Create a lookup table", post(tables::create))
            .audited("table.create").answers(201),
        route(GET, "/tables/{name}", Operator, "Show a lookup table with its rows", get(tables::show)),
        route(DELETE, "/tables/{name}", Builder, "Delete a lookup table", delete(tables::delete))
            .audited("table.delete"),
        route(GET, "/tables/{name}/csv", Operator, "Read a lookup table as CSV", get(tables::export_csv))
            .audited("table.export"),
        route(PUT, "/tables/{name}/csv", Builder, "Fill a lookup table from CSV", put(tables::import_csv))
            .audited("table.import"),
        route(GET, "/jobs", Viewer, "List jobs, newest first", get(jobs::list)),
        route(POST, "/jobs/rerun", Operator, "Rerun the jobs a filter selects", post(jobs::rerun_many))
            .audited("job.rerun_many").answers(202),
        route(GET, "/jobs/{id}", Operator, "Show a job's record", get(jobs::show)),
        route(POST, "/jobs/{id}/rerun", Operator, "Rerun a job", post(jobs::rerun))
            .audited("job.rerun").answers(202),
        route(POST, "/jobs/{id}/cancel", Operator, "Cancel a job", post(jobs::cancel))
            .audited("job.cancel"),
        route(GET, "/tokens", Viewer, "List API tokens", get(tokens::list)),
        route(POST, "/tokens", Viewer, "Make an API token (shown once)", post(tokens::create))
            .audited("token.create").answers(201),
        route(DELETE, "/tokens/{id}", Viewer, "Revoke an API token", delete(tokens::revoke))
            .audited("token.revoke"),
        route(GET, "/audit", Admin, "Read the audit log", get(audit::list)),
        route(GET, "/audit/actions", Admin, "The actions the audit log holds", get(audit::actions)),
        route(GET, "/session", Viewer, "The browser session: who, and its CSRF token", get(sessions::current)),
        route(DELETE, "/session", Viewer, "Sign this session out", delete(sessions::sign_out))
            .audited("session.sign_out"),
        route(DELETE, "/sessions", Viewer, "Sign every session of the caller out", delete(sessions::sign_out_everywhere))
            .audited("session.sign_out_everywhere"),
        route(POST, "/me/password", Viewer, "Change one's password", post(sessions::change_password))
            .audited("account.password").answers(204),
        route(GET, "/me", Viewer, "One's account and profile", get(members::me)),
        route(GET, "/library", Viewer, "Recipes published on this platform, to import", get(library::list)),
        route(POST, "/library", Builder, "Publish a recipe without its connections, secrets and personal data", post(library::publish))
            .audited("library.publish").answers(201),
        route(POST, "/library/check", Builder, "What publishing a recipe would share, without publishing it", post(library::check)),
        route(GET, "/library/{id}", Viewer, "A published recipe with its shared text", get(library::show)),
        route(POST, "/library/{id}/import", Builder, "Make a recipe from a published one, its placeholders filled in", post(library::import))
            .audited("library.import").answers(201),
        route(DELETE, "/library/{id}", Admin, "Take a recipe this workspace published out of the library", delete(library::unpublish))
            .audited("library.unpublish").answers(204),
        route(POST, "/workspace/close", Owner, "Close this workspace: delete all of it after the grace period", post(workspaces::close))
            .audited("workspace.close").answers(202),
        route(POST, "/workspace/reopen", Owner, "Keep this closing workspace", post(workspaces::reopen))
            .audited("workspace.reopen"),
        route(GET, "/me/export", Viewer, "Everything held about oneself, as one JSON document", get(rights::export))
            .audited("account.export"),
        route(GET, "/me/consent", Viewer, "What one agreed to be mailed about", get(rights::consent)),
        route(PUT, "/me/consent", Viewer, "Agree or not to marketing and product news mail", put(rights::set_consent))
            .audited("account.consent"),
        route(DELETE, "/me", Viewer, "Delete one's account after the grace period", delete(rights::request_deletion))
            .audited("account.delete_request").answers(202),
        route(POST, "/me/deletion/cancel", Viewer, "Keep one's account", post(rights::cancel_deletion))
            .audited("account.delete_cancel"),
        route(PATCH, "/me", Viewer, "Change one's name and profile fields", patch(members::change_profile))
            .audited("account.profile"),
        route(PUT, "/me/photo", Viewer, "Set one's photo (PNG, JPEG, GIF or WebP)", put(members::set_photo))
            .audited("account.photo").answers(204),
        route(DELETE, "/me/photo", Viewer, "Remove one's photo", delete(members::remove_photo))
            .audited("account.photo_removed"),
        route(GET, "/users/{id}/photo", Viewer, "A member's photo", get(members::photo)),
        route(GET, "/members", Viewer, "The workspace's members and roles", get(members::list)),
        route(PUT, "/members/{id}", Admin, "Change a member's role", put(members::change_role))
            .audited("member.role"),
        route(DELETE, "/members/{id}", Viewer, "Remove a member, or leave (one's own id)", delete(members::remove))
            .audited("member.remove"),
        route(POST, "/me/email/check", Viewer, "Mail oneself a link that confirms one's email", post(accounts::check_email))
            .audited("account.email_check").answers(202),
        route(GET, "/sso", Admin, "The workspace's single sign-on", get(sso::show)),
        route(PUT, "/sso", Owner, "Set the workspace's identity provider", put(sso::save))
            .audited("sso.update"),
        route(DELETE, "/sso", Owner, "Remove the workspace's identity provider", delete(sso::remove))
            .audited("sso.delete"),
        route(POST, "/invitations", Admin, "Invite someone into the workspace", post(accounts::invite))
            .audited("member.invite").answers(201),
        route(GET, "/whoami", Viewer, "Who the token is", get(tokens::whoami)),
        route(GET, "/privacy/retention", Admin, "The job history held, for how long, and the rules", get(privacy::report)),
        route(PUT, "/privacy/retention", Admin, "Set the workspace's retention of job history", put(privacy::save))
            .audited("privacy.retention"),
        route(GET, "/privacy/masking", Admin, "The workspace's masking rules for job records", get(privacy::masking)),
        route(PUT, "/privacy/masking", Admin, "Set the workspace's masking rules", put(privacy::save_masking))
            .audited("privacy.masking"),
        route(POST, "/privacy/subjects/search", Admin, "Find every job that holds a person's identifier", post(privacy::search_subject))
            .audited("privacy.subject_search"),
        route(POST, "/privacy/subjects/erase", Admin, "Erase a person's identifier from every ended job", post(privacy::erase_subject))
            .audited("privacy.subject_erase"),
        route(GET, "/usage", Viewer, "This month's usage against the plan's limits, warnings, held jobs, and every month before", get(usage::show)),
        route(GET, "/usage/warnings", Viewer, "This month's warnings near or at the plan's limits, without measuring the history", get(usage::show_warnings)),
        route(GET, "/usage/csv", Viewer, "Usage month by month as CSV", get(usage::export_csv))
            .audited("usage.export"),
        route(GET, "/billing", Admin, "The workspace's plan, subscription, invoices and payments", get(billing::show)),
        route(GET, "/workspaces", Viewer, "The caller's workspaces and roles", get(workspaces::list)),
        route(POST, "/workspaces", Viewer, "Make a workspace, its maker its owner", post(workspaces::create))
            .audited("workspace.create").answers(201),
        route(PUT, "/session/workspace", Viewer, "Move the browser session to another workspace", put(workspaces::switch))
            .audited("session.switch"),
    ]
}

/// The rules of the routes (the least role, the audit action), by method and path under
/// `/api/v1`.
type Rules = Arc<HashMap<(Method, &'static str), (Role, Option<&'static str>)>>;

/// The `/api/v1` router: every route of [`api_routes`] behind the authorization layer.
pub fn api_router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    let mut rules = HashMap::new();
    for api_route in api_routes() {
        rules.insert(
            (api_route.method.clone(), api_route.path),
            (api_route.needs, api_route.audit),
        );
        router = router.route(api_route.path, api_route.handler);
    }
    let rules: Rules = Arc::new(rules);
    router
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), rules),
            authorize,
        ))
        // After the layer: the API's description, and signing in, are public.
        .merge(public_routes(state))
}

/// The routes anybody may call: signing in and the links mailed to people.
fn public_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/session", post(sessions::sign_in))
        .route("/setup", post(accounts::setup))
        .route("/invitations/accept", post(accounts::accept))
        .route("/password-reset", post(accounts::request_reset))
        .route("/password-reset/confirm", post(accounts::confirm_reset))
        .route("/email/confirm", post(accounts::confirm_email))
        .route("/sign-up", post(accounts::sign_up))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            same_origin_only,
        ))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/sign-in/options", get(sessions::sign_in_options))
        .route("/sso/start", get(sso::start))
}

/// The request's `Origin`, when it is neither this server's public URL nor the host asked.
fn foreign_origin(state: &AppState, headers: &axum::http::HeaderMap) -> Option<String> {
    use axum::http::header::{HOST, ORIGIN};
    let origin = headers.get(ORIGIN)?.to_str().unwrap_or_default();
    let origin = origin.trim_end_matches('/');
    let host = headers.get(HOST).and_then(|value| value.to_str().ok());
    let this_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|asked| Some(asked) == host);
    let ours = origin == state.settings.public_url.trim_end_matches('/');
    (!this_host && !ours).then(|| origin.to_owned())
}

/// Refuses a browser's request to a public route from a page of another site: a page
/// elsewhere must not sign its visitor in to an account of its choosing, nor spend their
/// links. Browsers send `Origin` with every POST; programs send none, and pass.
async fn same_origin_only(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(origin) = foreign_origin(&state, request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("requests from {origin} are not taken here"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Lets a request through when its token's caller has the role its route needs; the caller
/// goes with the request to the handler.
async fn authorize(
    State((state, rules)): State<(AppState, Rules)>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().trim_start_matches("/api/v1").to_owned())
        .unwrap_or_default();
    // A HEAD asks what a GET would, with the same rule.
    let method = match *request.method() {
        Method::HEAD => Method::GET,
        ref other => other.clone(),
    };
    let Some((needs, audit)) = rules.get(&(method, path.as_str())).copied() else {
        // Not reachable: every route is made with its rule.
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no access rule",
        )
        .into_response();
    };
    let caller = match auth::caller_of(&state, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !auth::csrf_holds(&caller, request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            format!(
                "a change made with a session needs its CSRF token in the `{}` header",
                crate::sessions::CSRF_HEADER
            ),
        )
        .into_response();
    }
    if caller.role < needs {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "your role in this workspace ({}) cannot do this; it needs {needs} or above",
                caller.role
            ),
        )
        .into_response();
    }
    let Some(action) = audit else {
        request.extensions_mut().insert(caller);
        return next.run(request).await;
    };
    let mut event = AuditEvent::new(
        &caller.workspace_id,
        Some(&caller.user.id),
        &caller.user.email,
        action,
    );
    event.target_id = target_in_path(&path, request.uri().path());
    let client = auth::ClientMeta::of(request.extensions(), request.headers());
    (event.ip, event.user_agent) = (client.ip, client.user_agent);
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if response.status().is_success() {
        if let Some(note) = response.extensions().get::<AuditNote>() {
            if note.target_id.is_some() {
                event.target_id.clone_from(&note.target_id);
            }
            event.details.clone_from(&note.details);
        }
        if let Err(error) = state.runtime.store().record_audit(&event).await {
            tracing::error!(%error, action, "cannot write to the audit log");
        }
    }
    response
}

/// The id or name a route's path names (its `{id}` or `{name}`), read from the request's path.
fn target_in_path(route: &str, path: &str) -> Option<String> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    route
        .split('/')
        .zip(path.split('/'))
        .find(|(pattern, _)| *pattern == "{id}" || *pattern == "{name}")
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_that_changes_or_exports_is_audited() {
        for route in api_routes() {
            // Checking a recipe only compiles the text the caller sent: nothing changes.
            let only_reads = ["/recipes/check", "/library/check"].contains(&route.path);
            let changes = route.method != Method::GET && !only_reads;
            let exports = route.path.ends_with("/csv") || route.path.ends_with("/export");
            assert_eq!(
                route.audit.is_some(),
                changes || exports,
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn the_target_is_read_from_the_path() {
        assert_eq!(
            target_in_path("/recipes/{id}/enable", "/api/v1/recipes/r1/enable"),
            Some("r1".to_owned())
        );
        assert_eq!(
            target_in_path("/tables/{name}/csv", "/tables/rates/csv"),
            Some("rates".to_owned())
        );
        assert_eq!(target_in_path("/recipes", "/api/v1/recipes"), None);
    }
}
