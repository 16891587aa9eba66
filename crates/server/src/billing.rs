//! Billing: the endpoint a billing provider that speaks Stripe's webhooks posts its events to
//! (`POST /billing/stripe`, signed with `--billing-webhook-secret`), and `GET /api/v1/billing`.
//!
//! A subscription's events set the workspace's plan (its price stands for one in the plans
//! file) and status; `canceled` starts the workspace's termination grace, as its owner closing
//! it would. Invoices and payments are mirrored field by field: each object is read into a
//! type that has no place for a card or a bank account, and the event itself is never kept.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_recipe::model::SignatureScheme;
use weft_store::{BillingInvoice, BillingPayment, BillingSubscription};

use crate::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;

/// The metadata key that names a subscription's workspace, set when the subscription is made
/// (for Stripe Checkout: `subscription_data.metadata.weft_workspace`).
pub const WORKSPACE_KEY: &str = "weft_workspace";

/// Subscription statuses under which the subscription's plan applies.
const PAID_STATUSES: [&str; 3] = ["trialing", "active", "past_due"];

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

/// The fields of a subscription Weft keeps or reads.
#[derive(Deserialize)]
struct Subscription {
    id: String,
    #[serde(default)]
    customer: Option<Value>,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    items: Option<Items>,
}

#[derive(Deserialize)]
struct Items {
    #[serde(default)]
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    price: Option<Price>,
    #[serde(default)]
    current_period_start: Option<i64>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
    #[serde(default)]
    lookup_key: Option<String>,
}

/// The fields of an invoice Weft keeps or reads.
#[derive(Deserialize)]
struct Invoice {
    id: String,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    status: Option<String>,
    currency: String,
    #[serde(default)]
    amount_due: i64,
    #[serde(default)]
    amount_paid: i64,
    created: i64,
    #[serde(default)]
    due_date: Option<i64>,
    #[serde(default)]
    period_start: Option<i64>,
    #[serde(default)]
    period_end: Option<i64>,
    #[serde(default)]
    hosted_invoice_url: Option<String>,
    #[serde(default)]
    status_transitions: Option<StatusTransitions>,
    #[serde(default)]
    subscription: Option<Value>,
    #[serde(default)]
    customer: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    /// Newer API versions name the subscription here.
    #[serde(default)]
    parent: Option<Value>,
}

#[derive(Deserialize)]
struct StatusTransitions {
    #[serde(default)]
    paid_at: Option<i64>,
}

/// The fields of a charge or a payment intent Weft keeps or reads.
#[derive(Deserialize)]
struct Payment {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    created: i64,
    #[serde(default)]
    invoice: Option<Value>,
    #[serde(default)]
    customer: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// An object's id, whether the provider sent the id or the object expanded.
fn id_of(value: &Option<Value>) -> Option<String> {
    match value.as_ref()? {
        Value::String(id) => Some(id.clone()),
        Value::Object(object) => object.get("id")?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

fn named_workspace(metadata: &Option<Value>) -> Option<String> {
    metadata
        .as_ref()?
        .get(WORKSPACE_KEY)?
        .as_str()
        .map(str::to_owned)
}

/// `POST /billing/stripe`: takes one signed event.
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(secret) = state.settings.billing_webhook_secret.as_ref() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "billing_off",
            "billing is not set up on this server (--billing-webhook-secret)",
        ));
    };
    crate::hooks::verify_signature(
        &SignatureScheme::Stripe,
        secret.expose().as_bytes(),
        &headers,
        &body,
    )?;
    let event: Event = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!("not an event of the billing provider: {error}"))
    })?;
    let store = state.runtime.store();
    if !store.take_billing_event(&event.id, &event.kind).await? {
        return Ok(Json(
            json!({ "received": true, "event": event.id, "applied": "duplicate" }),
        ));
    }
    let applied = match apply(&state, &event).await {
        Ok(applied) => applied,
        Err(error) => {
            // Taken again when the provider redelivers it.
            store.forget_billing_event(&event.id).await?;
            return Err(error);
        }
    };
    tracing::info!(event = %event.id, kind = %event.kind, applied, "billing event taken");
    Ok(Json(
        json!({ "received": true, "event": event.id, "applied": applied }),
    ))
}

async fn apply(state: &AppState, event: &Event) -> Result<&'static str, ApiError> {
    let at = time(event.created).unwrap_or_else(Utc::now);
    let object = &event.data.object;
    let unreadable = |what: &str, error: serde_json::Error| {
        ApiError::bad_request(format!("the event's {what} is not readable: {error}"))
    };
    match event.kind.as_str() {
        kind if kind.starts_with("customer.subscription.") => {
            let subscription: Subscription = serde_json::from_value(object.clone())
                .map_err(|error| unreadable("subscription", error))?;
            apply_subscription(state, subscription, kind, at).await?;
            Ok("subscription")
        }
        kind if kind.starts_with("invoice.") && !kind.starts_with("invoice.upcoming") => {
            let invoice: Invoice = serde_json::from_value(object.clone())
                .map_err(|error| unreadable("invoice", error))?;
            apply_invoice(state, invoice, at).await?;
            Ok("invoice")
        }
        kind if kind.starts_with("charge.") || kind.starts_with("payment_intent.") => {
            if kind.starts_with("charge.dispute") {
                return Ok("ignored");
            }
            let payment: Payment = serde_json::from_value(object.clone())
                .map_err(|error| unreadable("payment", error))?;
            apply_payment(state, payment, at).await?;
            Ok("payment")
        }
        _ => Ok("ignored"),
    }
}

/// The workspace an object belongs to: the one its metadata names, else the one its
/// subscription or customer is known by. Unknown: refused, so that the provider sends it again
/// (a subscription's first event may come after its invoice's).
async fn workspace_for(
    state: &AppState,
    named: Option<String>,
    subscription: Option<&str>,
    customer: Option<&str>,
) -> Result<String, ApiError> {
    let store = state.runtime.store();
    let found = match named {
        Some(named) => Some(named),
        None => store.billing_workspace(subscription, customer).await?,
    };
    match found {
        Some(workspace) if store.workspace_name(&workspace).await?.is_some() => Ok(workspace),
        Some(workspace) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workspace",
            format!("no workspace `{workspace}` on this platform"),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!(
                "the event names no workspace (metadata `{WORKSPACE_KEY}`) and its subscription and customer are not known yet"
            ),
        )),
    }
}

async fn apply_subscription(
    state: &AppState,
    subscription: Subscription,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let customer = id_of(&subscription.customer);
    let workspace = workspace_for(
        state,
        named_workspace(&subscription.metadata),
        Some(&subscription.id),
        customer.as_deref(),
    )
    .await?;
    let item = subscription
        .items
        .as_ref()
        .and_then(|items| items.data.first());
    let price = item.and_then(|item| item.price.as_ref());
    let plans = state.runtime.plans();
    let plan = price.and_then(|price| {
        plans.for_price(&price.id).or_else(|| {
            price
                .lookup_key
                .as_deref()
                .and_then(|key| plans.for_price(key))
        })
    });
    let status = if kind == "customer.subscription.deleted" {
        "canceled".to_owned()
    } else {
        subscription.status.clone()
    };
    let record = BillingSubscription {
        workspace_id: workspace.clone(),
        subscription_id: subscription.id.clone(),
        customer_id: customer,
        price_id: price.map(|price| price.id.clone()),
        plan: plan.map(|plan| plan.name.clone()),
        status: status.clone(),
        period_start: subscription
            .current_period_start
            .or(item.and_then(|item| item.current_period_start))
            .and_then(time),
        period_end: subscription
            .current_period_end
            .or(item.and_then(|item| item.current_period_end))
            .and_then(time),
        cancel_at_period_end: subscription.cancel_at_period_end,
        event_at: at,
    };
    let store = state.runtime.store();
    let status_was = store
        .subscription_of(&workspace)
        .await?
        .map(|subscription| subscription.status);
    if !store.save_subscription(&record).await? {
        // A later event was taken first: this one is out of date.
        return Ok(());
    }
    if PAID_STATUSES.contains(&status.as_str()) {
        match plan {
            Some(plan) => {
                store
                    .set_workspace_plan(&workspace, Some(&plan.name), "billing")
                    .await?
            }
            None => tracing::warn!(
                %workspace,
                price = ?record.price_id,
                "a subscription's price stands for no plan of the plans file; the workspace keeps its plan"
            ),
        }
    } else {
        store
            .set_workspace_plan(&workspace, None, "billing")
            .await?;
    }
    if status == "canceled" && store.workspace_close_due(&workspace).await?.is_none() {
        let grace = chrono::Duration::from_std(state.settings.workspace_close_grace)
            .unwrap_or(chrono::Duration::days(30));
        store
            .set_workspace_close(&workspace, Some(Utc::now() + grace))
            .await?;
        tracing::info!(%workspace, "the subscription was canceled: the workspace closes after its grace period");
    }
    // A paid subscription after a cancellation keeps the workspace its cancellation was
    // closing. One closed by its owner while paying stays closing.
    if PAID_STATUSES.contains(&status.as_str())
        && status_was.as_deref() == Some("canceled")
        && store.workspace_close_due(&workspace).await?.is_some()
    {
        store.set_workspace_close(&workspace, None).await?;
        tracing::info!(%workspace, "a new subscription reopened the workspace its cancellation was closing; its recipes stay disabled");
    }
    // The new plan's limits and holds apply within a round of metering.
    state.runtime.refresh_plans().await?;
    Ok(())
}

async fn apply_invoice(
    state: &AppState,
    invoice: Invoice,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let parent_subscription = invoice
        .parent
        .as_ref()
        .and_then(|parent| parent.get("subscription_details"));
    let subscription = id_of(&invoice.subscription).or_else(|| {
        parent_subscription
            .and_then(|details| details.get("subscription"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let named = named_workspace(&invoice.metadata).or_else(|| {
        named_workspace(
            &parent_subscription
                .and_then(|details| details.get("metadata"))
                .cloned(),
        )
    });
    let customer = id_of(&invoice.customer);
    let workspace =
        workspace_for(state, named, subscription.as_deref(), customer.as_deref()).await?;
    let record = BillingInvoice {
        id: invoice.id,
        workspace_id: workspace,
        subscription_id: subscription,
        number: invoice.number,
        status: invoice.status.unwrap_or_else(|| "draft".to_owned()),
        currency: invoice.currency,
        amount_due: invoice.amount_due,
        amount_paid: invoice.amount_paid,
        created_at: time(invoice.created).unwrap_or(at),
        due_at: invoice.due_date.and_then(time),
        paid_at: invoice
            .status_transitions
            .and_then(|transitions| transitions.paid_at)
            .and_then(time),
        period_start: invoice.period_start.and_then(time),
        period_end: invoice.period_end.and_then(time),
        hosted_invoice_url: invoice.hosted_invoice_url,
        event_at: at,
    };
    state.runtime.store().save_invoice(&record).await?;
    Ok(())
}

async fn apply_payment(
    state: &AppState,
    payment: Payment,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let invoice = id_of(&payment.invoice);
    let customer = id_of(&payment.customer);
    let store = state.runtime.store();
    // A payment of an invoice belongs where the invoice does.
    let by_invoice = match &invoice {
        Some(invoice) => store.invoice_workspace(invoice).await?,
        None => None,
    };
    let named = named_workspace(&payment.metadata).or(by_invoice);
    let workspace = workspace_for(state, named, None, customer.as_deref()).await?;
    let record = BillingPayment {
        id: payment.id,
        workspace_id: workspace,
        invoice_id: invoice,
        status: payment.status,
        currency: payment.currency,
        amount: payment.amount,
        created_at: time(payment.created).unwrap_or(at),
        event_at: at,
    };
    store.save_payment(&record).await?;
    Ok(())
}

/// `GET /api/v1/billing`: the workspace's plan, subscription, invoices and payments.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(caller): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let store = state.runtime.store();
    let workspace = &caller.workspace_id;
    Ok(Json(json!({
        "workspace_id": workspace,
        "plan": state.runtime.plan_of(workspace),
        "subscription": store.subscription_of(workspace).await?,
        "invoices": store.invoices_of(workspace).await?,
        "payments": store.payments_of(workspace).await?,
    })))
}
