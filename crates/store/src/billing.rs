//! Billing records: a workspace's subscription at the billing provider (Stripe or one that
//! speaks its webhooks), and mirrors of its invoices and payments. Only ids, amounts, statuses,
//! dates and the hosted invoice's address are kept: the types below have no field for a card
//! or a bank account, so none can be stored.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::Store;
use crate::db::{Backend, Result, on_pool};

/// A workspace's subscription as the provider last reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingSubscription {
    pub workspace_id: String,
    pub subscription_id: String,
    pub customer_id: Option<String>,
    pub price_id: Option<String>,
    /// The Weft plan the price stands for, when one does.
    pub plan: Option<String>,
    /// `trialing`, `active`, `past_due`, `canceled`, or another of the provider's.
    pub status: String,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// When the provider made the event this comes from: older events change nothing.
    pub event_at: DateTime<Utc>,
}

/// An invoice, mirrored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingInvoice {
    pub id: String,
    pub workspace_id: String,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    /// In the currency's smallest unit (cents), as the provider gives it.
    pub amount_due: i64,
    pub amount_paid: i64,
    pub created_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub hosted_invoice_url: Option<String>,
    pub event_at: DateTime<Utc>,
}

/// A payment (a charge or a payment intent), mirrored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BillingPayment {
    pub id: String,
    pub workspace_id: String,
    pub invoice_id: Option<String>,
    pub status: String,
    pub currency: String,
    pub amount: i64,
    pub created_at: DateTime<Utc>,
    pub event_at: DateTime<Utc>,
}

impl Store {
    /// Notes a provider's event as taken; false when it was taken before (a redelivery).
    pub async fn take_billing_event(&self, id: &str, kind: &str) -> Result<bool> {
        let sql = "INSERT INTO billing_events (id, kind, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
        let taken = on_pool!(self, pool => sqlx::query(sql).bind(id).bind(kind).bind(Utc::now())
            .execute(pool).await?.rows_affected());
        Ok(taken > 0)
    }

    /// Forgets that an event was taken, so that a redelivery is taken again: for an event
    /// whose handling failed.
    pub async fn forget_billing_event(&self, id: &str) -> Result<()> {
        let sql = "DELETE FROM billing_events WHERE id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Keeps a workspace's subscription, unless what is kept comes from a later event; true
    /// when it was kept.
    pub async fn save_subscription(&self, subscription: &BillingSubscription) -> Result<bool> {
        let sql = "INSERT INTO billing_subscriptions (workspace_id, subscription_id, customer_id, price_id, plan, status, \
                   period_start, period_end, cancel_at_period_end, event_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                   ON CONFLICT (workspace_id) DO UPDATE SET subscription_id = excluded.subscription_id, \
                   customer_id = excluded.customer_id, price_id = excluded.price_id, plan = excluded.plan, \
                   status = excluded.status, period_start = excluded.period_start, period_end = excluded.period_end, \
                   cancel_at_period_end = excluded.cancel_at_period_end, event_at = excluded.event_at, \
                   updated_at = excluded.updated_at WHERE billing_subscriptions.event_at <= excluded.event_at";
        let s = subscription;
        let kept = on_pool!(self, pool => sqlx::query(sql).bind(&s.workspace_id).bind(&s.subscription_id)
            .bind(&s.customer_id).bind(&s.price_id).bind(&s.plan).bind(&s.status).bind(s.period_start)
            .bind(s.period_end).bind(s.cancel_at_period_end).bind(s.event_at).bind(Utc::now())
            .execute(pool).await?.rows_affected());
        Ok(kept > 0)
    }

    /// A workspace's subscription, if it has one.
    pub async fn subscription_of(&self, workspace_id: &str) -> Result<Option<BillingSubscription>> {
        let sql = "SELECT workspace_id, subscription_id, customer_id, price_id, plan, status, period_start, period_end, \
                   cancel_at_period_end, event_at FROM billing_subscriptions WHERE workspace_id = $1";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_optional(pool).await?
            .map(|row| subscription_from(&row)).transpose())
    }

    /// The workspace a subscription or a customer of the provider belongs to, if known.
    pub async fn billing_workspace(
        &self,
        subscription_id: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Option<String>> {
        let sql = "SELECT workspace_id FROM billing_subscriptions WHERE subscription_id = $1 OR customer_id = $2 \
                   ORDER BY CASE WHEN subscription_id = $1 THEN 0 ELSE 1 END LIMIT 1";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(subscription_id).bind(customer_id)
            .fetch_optional(pool).await.map_err(Into::into))
    }

    /// Keeps an invoice, unless what is kept of it comes from a later event.
    pub async fn save_invoice(&self, invoice: &BillingInvoice) -> Result<()> {
        let sql = "INSERT INTO billing_invoices (id, workspace_id, subscription_id, number, status, currency, amount_due, \
                   amount_paid, created_at, due_at, paid_at, period_start, period_end, hosted_invoice_url, event_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                   ON CONFLICT (id) DO UPDATE SET number = excluded.number, status = excluded.status, \
                   amount_due = excluded.amount_due, amount_paid = excluded.amount_paid, due_at = excluded.due_at, \
                   paid_at = excluded.paid_at, hosted_invoice_url = excluded.hosted_invoice_url, event_at = excluded.event_at \
                   WHERE billing_invoices.event_at <= excluded.event_at";
        let i = invoice;
        on_pool!(self, pool => sqlx::query(sql).bind(&i.id).bind(&i.workspace_id).bind(&i.subscription_id)
            .bind(&i.number).bind(&i.status).bind(&i.currency).bind(i.amount_due).bind(i.amount_paid)
            .bind(i.created_at).bind(i.due_at).bind(i.paid_at).bind(i.period_start).bind(i.period_end)
            .bind(&i.hosted_invoice_url).bind(i.event_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A workspace's invoices, newest first.
    pub async fn invoices_of(&self, workspace_id: &str) -> Result<Vec<BillingInvoice>> {
        let sql = "SELECT id, workspace_id, subscription_id, number, status, currency, amount_due, amount_paid, created_at, \
                   due_at, paid_at, period_start, period_end, hosted_invoice_url, event_at FROM billing_invoices \
                   WHERE workspace_id = $1 ORDER BY created_at DESC";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?
            .iter().map(invoice_from).collect())
    }

    /// The workspace an invoice belongs to, if it is mirrored.
    pub async fn invoice_workspace(&self, invoice_id: &str) -> Result<Option<String>> {
        let sql = "SELECT workspace_id FROM billing_invoices WHERE id = $1";
        on_pool!(self, pool => sqlx::query_scalar(sql).bind(invoice_id).fetch_optional(pool)
            .await.map_err(Into::into))
    }

    /// Keeps a payment, unless what is kept of it comes from a later event.
    pub async fn save_payment(&self, payment: &BillingPayment) -> Result<()> {
        let sql = "INSERT INTO billing_payments (id, workspace_id, invoice_id, status, currency, amount, created_at, event_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                   amount = excluded.amount, invoice_id = COALESCE(excluded.invoice_id, billing_payments.invoice_id), \
                   event_at = excluded.event_at WHERE billing_payments.event_at <= excluded.event_at";
        let p = payment;
        on_pool!(self, pool => sqlx::query(sql).bind(&p.id).bind(&p.workspace_id).bind(&p.invoice_id)
            .bind(&p.status).bind(&p.currency).bind(p.amount).bind(p.created_at).bind(p.event_at)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A workspace's payments, newest first.
    pub async fn payments_of(&self, workspace_id: &str) -> Result<Vec<BillingPayment>> {
        let sql = "SELECT id, workspace_id, invoice_id, status, currency, amount, created_at, event_at FROM billing_payments \
                   WHERE workspace_id = $1 ORDER BY created_at DESC";
        on_pool!(self, pool => sqlx::query(sql).bind(workspace_id).fetch_all(pool).await?
            .iter().map(payment_from).collect())
    }
}

fn subscription_from<R: Row>(row: &R) -> Result<BillingSubscription>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(BillingSubscription {
        workspace_id: row.try_get(0)?,
        subscription_id: row.try_get(1)?,
        customer_id: row.try_get(2)?,
        price_id: row.try_get(3)?,
        plan: row.try_get(4)?,
        status: row.try_get(5)?,
        period_start: row.try_get(6)?,
        period_end: row.try_get(7)?,
        cancel_at_period_end: row.try_get(8)?,
        event_at: row.try_get(9)?,
    })
}

fn invoice_from<R: Row>(row: &R) -> Result<BillingInvoice>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(BillingInvoice {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        subscription_id: row.try_get(2)?,
        number: row.try_get(3)?,
        status: row.try_get(4)?,
        currency: row.try_get(5)?,
        amount_due: row.try_get(6)?,
        amount_paid: row.try_get(7)?,
        created_at: row.try_get(8)?,
        due_at: row.try_get(9)?,
        paid_at: row.try_get(10)?,
        period_start: row.try_get(11)?,
        period_end: row.try_get(12)?,
        hosted_invoice_url: row.try_get(13)?,
        event_at: row.try_get(14)?,
    })
}

fn payment_from<R: Row>(row: &R) -> Result<BillingPayment>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(BillingPayment {
        id: row.try_get(0)?,
        workspace_id: row.try_get(1)?,
        invoice_id: row.try_get(2)?,
        status: row.try_get(3)?,
        currency: row.try_get(4)?,
        amount: row.try_get(5)?,
        created_at: row.try_get(6)?,
        event_at: row.try_get(7)?,
    })
}
