//! Every API route with the least role that may call it, in one list: the router is built
//! from it, the authorization layer reads it, and the isolation test walks it. A route cannot
//! be added without a rule.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use std::collections::HashMap;
use std::sync::Arc;
use weft_store::Role;

use crate::error::ApiError;
use crate::{AppState, auth, connections, jobs, recipes, tables, tokens};

/// One route: its method and path (under `/api/v1`), the least role that may call it, and
/// its handler.
pub struct ApiRoute {
    pub method: Method,
    pub path: &'static str,
    pub needs: Role,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    needs: Role,
    handler: MethodRouter<AppState>,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        needs,
        handler,
    }
}

/// Every route of `/api/v1`, with who may call it.
pub fn api_routes() -> Vec<ApiRoute> {
    use Role::{Builder, Operator, Viewer};
    let (read, write) = (Method::GET, Method::POST);
    vec![
        route(read.clone(), "/recipes", Viewer, get(recipes::list)),
        route(write.clone(), "/recipes", Builder, post(recipes::create)),
        route(read.clone(), "/recipes/{id}", Viewer, get(recipes::show)),
        route(Method::PUT, "/recipes/{id}", Builder, put(recipes::replace)),
        route(
            Method::DELETE,
            "/recipes/{id}",
            Builder,
            delete(recipes::delete),
        ),
        route(
            write.clone(),
            "/recipes/{id}/enable",
            Builder,
            post(recipes::enable),
        ),
        route(
            write.clone(),
            "/recipes/{id}/disable",
            Builder,
            post(recipes::disable),
        ),
        route(
            read.clone(),
            "/recipes/{id}/versions",
            Viewer,
            get(recipes::versions),
        ),
        route(
            write.clone(),
            "/recipes/{id}/run",
            Operator,
            post(recipes::run),
        ),
        route(
            write.clone(),
            "/recipes/{id}/poll/reset",
            Builder,
            post(recipes::reset_poll),
        ),
        route(read.clone(), "/connections", Viewer, get(connections::list)),
        route(
            write.clone(),
            "/connections",
            Builder,
            post(connections::create),
        ),
        route(
            read.clone(),
            "/connections/{id}",
            Viewer,
            get(connections::show),
        ),
        route(
            Method::PUT,
            "/connections/{id}",
            Builder,
            put(connections::replace),
        ),
        route(
            Method::DELETE,
            "/connections/{id}",
            Builder,
            delete(connections::delete),
        ),
        route(
            write.clone(),
            "/connections/{id}/test",
            Builder,
            post(connections::test),
        ),
        route(
            write.clone(),
            "/connections/{id}/oauth/start",
            Builder,
            post(connections::oauth_start),
        ),
        route(read.clone(), "/tables", Viewer, get(tables::list)),
        route(write.clone(), "/tables", Builder, post(tables::create)),
        route(read.clone(), "/tables/{name}", Operator, get(tables::show)),
        route(
            Method::DELETE,
            "/tables/{name}",
            Builder,
            delete(tables::delete),
        ),
        route(
            read.clone(),
            "/tables/{name}/csv",
            Operator,
            get(tables::export_csv),
        ),
        route(
            Method::PUT,
            "/tables/{name}/csv",
            Builder,
            put(tables::import_csv),
        ),
        route(read.clone(), "/jobs", Viewer, get(jobs::list)),
        route(
            write.clone(),
            "/jobs/rerun",
            Operator,
            post(jobs::rerun_many),
        ),
        route(read.clone(), "/jobs/{id}", Operator, get(jobs::show)),
        route(
            write.clone(),
            "/jobs/{id}/rerun",
            Operator,
            post(jobs::rerun),
        ),
        route(
            write.clone(),
            "/jobs/{id}/cancel",
            Operator,
            post(jobs::cancel),
        ),
        route(read.clone(), "/tokens", Viewer, get(tokens::list)),
        route(write.clone(), "/tokens", Viewer, post(tokens::create)),
        route(
            Method::DELETE,
            "/tokens/{id}",
            Viewer,
            delete(tokens::revoke),
        ),
        route(read, "/whoami", Viewer, get(tokens::whoami)),
    ]
}

/// The rules of the routes, by method and path under `/api/v1`.
type Rules = Arc<HashMap<(Method, &'static str), Role>>;

/// The `/api/v1` router: every route of [`api_routes`] behind the authorization layer.
pub fn api_router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    let mut rules = HashMap::new();
    for api_route in api_routes() {
        rules.insert((api_route.method.clone(), api_route.path), api_route.needs);
        router = router.route(api_route.path, api_route.handler);
    }
    let rules: Rules = Arc::new(rules);
    router.route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), rules),
        authorize,
    ))
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
    let Some(needs) = rules
        .get(&(request.method().clone(), path.as_str()))
        .copied()
    else {
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
    request.extensions_mut().insert(caller);
    next.run(request).await
}
