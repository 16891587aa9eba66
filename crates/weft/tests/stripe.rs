//! The stripe connector against a stand-in for Stripe's API: customers and subscriptions
//! created and read, form-encoded, with idempotency keys; Stripe's refusals as connector
//! errors that do not show the key.

use serde_json::json;

use crate::support::stripe_server::{SECRET_KEY, StripeServer};
use crate::support::{Ran, run_with, write_recipe};

fn run_steps(stripe: &StripeServer, key: &str, steps: &str) -> Ran {
    let (folder, recipe) = write_recipe(&format!(
        "name: Billing\ntrigger: {{ manual: {{}} }}\nsteps:\n{steps}"
    ));
    let connections = folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!(
            "billing:\n  connector: stripe\n  secret_key: {key}\n  base_url: {}\n",
            stripe.base
        ),
    )
    .unwrap();
    run_with(
        &recipe,
        &json!({}),
        &["--connections", connections.to_str().unwrap()],
    )
}

#[test]
fn customers_and_subscriptions_are_created_and_read() {
    let stripe = StripeServer::start();
    let ran = run_steps(
        &stripe,
        SECRET_KEY,
        "  - id: customer\n    action: stripe.create_customer\n    connection: billing\n    input: { email: ann@example.com, name: Ann, metadata: { crm_id: 42 } }\n  - id: subscribe\n    action: stripe.create_subscription\n    connection: billing\n    input: { customer: '{{ steps.customer.output.id }}', price: price_pro, quantity: 3 }\n  - id: read\n    action: stripe.get_customer\n    connection: billing\n    input: { id: '{{ steps.customer.output.id }}' }\n  - id: list\n    action: stripe.list_subscriptions\n    connection: billing\n    input: { customer: '{{ steps.customer.output.id }}' }\n",
    );
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    assert_eq!(ran.step("read")["output"]["email"], "ann@example.com");
    assert_eq!(
        ran.step("read")["output"]["metadata"],
        json!({ "crm_id": "42" })
    );
    let subscriptions = &ran.step("list")["output"]["data"];
    assert_eq!(subscriptions.as_array().unwrap().len(), 1);
    assert_eq!(
        subscriptions[0]["items"]["data"][0]["price"]["id"],
        "price_pro"
    );
    assert_eq!(subscriptions[0]["items"]["data"][0]["quantity"], 3);
}

#[test]
fn stripes_refusals_are_connector_errors_without_the_key() {
    let stripe = StripeServer::start();
    let step = "  - id: read\n    action: stripe.get_customer\n    connection: billing\n    input: { id: cus_404 }\n";
    let ran = run_steps(&stripe, SECRET_KEY, step);
    assert_eq!(ran.record["error"]["kind"], "connector", "{:#}", ran.record);
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No such customer"),
        "{:#}",
        ran.record
    );
    let ran = run_steps(&stripe, "sk_test_wrong_0091", step);
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{:#}",
        ran.record
    );
    assert!(!(ran.record.to_string() + &ran.stderr).contains("sk_test_wrong_0091"));
    let ran = run_steps(
        &stripe,
        SECRET_KEY,
        &step.replace("cus_404", "../v1/balance"),
    );
    assert_eq!(
        ran.record["error"]["kind"], "validation",
        "{:#}",
        ran.record
    );
}
