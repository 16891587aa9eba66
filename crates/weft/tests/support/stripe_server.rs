//! A stand-in for Stripe's API: customers and subscriptions, form-encoded as Stripe takes
//! them, with the secret key checked and idempotency keys honoured.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SECRET_KEY: &str = "sk_test_51weft";

#[derive(Default)]
struct Account {
    customers: HashMap<String, Value>,
    subscriptions: Vec<Value>,
    /// The answer given to each idempotency key.
    answered: HashMap<String, Value>,
    /// Every form posted, for the test to read.
    forms: Vec<HashMap<String, String>>,
}

type Shared = Arc<Mutex<Account>>;

pub struct StripeServer {
    pub base: String,
}

impl StripeServer {
    pub fn start() -> StripeServer {
        let routes = Router::new()
            .route("/v1/customers", post(create_customer))
            .route("/v1/customers/{id}", get(get_customer))
            .route(
                "/v1/subscriptions",
                post(create_subscription).get(list_subscriptions),
            )
            .route("/forms", get(forms))
            .with_state(Shared::default());
        StripeServer {
            base: super::serve_routes(routes),
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "type": "invalid_request_error", "message": message } })),
    )
        .into_response()
}

/// Stripe's answer to a wrong key, when the key is wrong.
fn refusal(headers: &HeaderMap) -> Option<Response> {
    let expected = format!("Bearer {SECRET_KEY}");
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    (given != Some(expected.as_str()))
        .then(|| error(StatusCode::UNAUTHORIZED, "Invalid API Key provided"))
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn metadata(form: &HashMap<String, String>) -> Value {
    let mut metadata = serde_json::Map::new();
    for (key, value) in form {
        if let Some(name) = key
            .strip_prefix("metadata[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            metadata.insert(name.to_owned(), json!(value));
        }
    }
    Value::Object(metadata)
}

async fn create_customer(
    State(account): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let mut account = account.lock().expect("the account lock");
    account.forms.push(form.clone());
    let key = idempotency_key(&headers);
    if let Some(answer) = key.as_ref().and_then(|key| account.answered.get(key)) {
        return axum::Json(answer.clone()).into_response();
    }
    let id = format!("cus_{}", account.customers.len() + 1);
    let customer = json!({ "id": id, "object": "customer", "email": form.get("email"), "name": form.get("name"), "metadata": metadata(&form) });
    account.customers.insert(id, customer.clone());
    if let Some(key) = key {
        account.answered.insert(key, customer.clone());
    }
    axum::Json(customer).into_response()
}

async fn get_customer(
    State(account): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    match account.lock().expect("the account lock").customers.get(&id) {
        Some(customer) => axum::Json(customer.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("No such customer: '{id}'")),
    }
}

async fn create_subscription(
    State(account): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let mut account = account.lock().expect("the account lock");
    account.forms.push(form.clone());
    let customer = form.get("customer").cloned().unwrap_or_default();
    if !account.customers.contains_key(&customer) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("No such customer: '{customer}'"),
        );
    }
    let subscription = json!({
        "id": format!("sub_{}", account.subscriptions.len() + 1),
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "items": { "data": [{ "price": { "id": form.get("items[0][price]") }, "quantity": form.get("items[0][quantity]").and_then(|q| q.parse::<i64>().ok()).unwrap_or(1) }] },
    });
    account.subscriptions.push(subscription.clone());
    axum::Json(subscription).into_response()
}

async fn list_subscriptions(
    State(account): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let account = account.lock().expect("the account lock");
    let data: Vec<&Value> = account
        .subscriptions
        .iter()
        .filter(|subscription| {
            query
                .get("customer")
                .is_none_or(|customer| subscription["customer"] == customer.as_str())
        })
        .collect();
    axum::Json(json!({ "object": "list", "data": data, "has_more": false })).into_response()
}

async fn forms(State(account): State<Shared>) -> Response {
    axum::Json(json!(account.lock().expect("the account lock").forms)).into_response()
}
