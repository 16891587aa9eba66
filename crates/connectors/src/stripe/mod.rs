//! The `stripe` connector: customers and subscriptions through Stripe's API, with a secret
//! key; each call carries the step's idempotency key, which Stripe honours. Stripe's events
//! reach a recipe through a webhook trigger with `signature: { scheme: stripe, connection:
//! NAME }`. Stripe keeps card data; no action here takes or returns any.

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use crate::http::HttpConnector;

const API: &str = "https://api.stripe.com";

pub struct StripeConnector {
    http: Arc<HttpConnector>,
}

impl StripeConnector {
    pub fn new(http: Arc<HttpConnector>) -> StripeConnector {
        StripeConnector { http }
    }

    async fn request(
        &self,
        connection: &Connection,
        request: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let api = crate::http::bearer_connection(
            &connection.name,
            connection.text("base_url").unwrap_or(API),
            connection.text("secret_key").unwrap_or_default(),
        );
        let answer = self
            .http
            .call("request", Some(&api), request, context)
            .await?;
        Ok(answer["body"].clone())
    }
}

fn text<'a>(input: &'a Value, key: &str) -> Result<&'a str, ConnectorError> {
    input[key]
        .as_str()
        .filter(|text| !text.is_empty())
        .ok_or_else(|| ConnectorError::validation(format!("`{key}` is required, as text")))
}

/// An id that goes into a path: Stripe's ids are letters, digits and `_`.
fn id(input: &Value, key: &str) -> Result<String, ConnectorError> {
    let value = text(input, key)?;
    if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(value.to_owned())
    } else {
        Err(ConnectorError::validation(format!(
            "`{key}` is not a Stripe id"
        )))
    }
}

/// Form fields in Stripe's style: `metadata[key]`, `items[0][price]`.
fn form(fields: &[(&str, Option<&Value>)], metadata: Option<&Value>) -> Map<String, Value> {
    let mut form = Map::new();
    for (name, value) in fields {
        match value {
            Some(Value::String(text)) => {
                form.insert((*name).to_owned(), json!(text));
            }
            Some(Value::Number(number)) => {
                form.insert((*name).to_owned(), json!(number.to_string()));
            }
            _ => {}
        }
    }
    if let Some(Value::Object(metadata)) = metadata {
        for (key, value) in metadata {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            form.insert(format!("metadata[{key}]"), json!(text));
        }
    }
    form
}

#[async_trait]
impl Connector for StripeConnector {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn description(&self) -> &'static str {
        "Reads and creates Stripe customers and subscriptions; Stripe's events reach a webhook trigger with `signature: { scheme: stripe, connection: … }`. No card data passes through Weft."
    }

    fn needs_connection(&self) -> bool {
        true
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        let field = ConnectionField::new;
        vec![
            field(
                "secret_key",
                "A secret or restricted API key (sk_… or rk_…).",
                true,
                true,
            ),
            field(
                "signing_secret",
                "The webhook endpoint's signing secret (whsec_…), to check the events Stripe sends.",
                false,
                true,
            ),
            field(
                "base_url",
                "The API's address (default https://api.stripe.com).",
                false,
                false,
            ),
        ]
    }

    fn actions(&self) -> Vec<ActionSpec> {
        let object =
            json!({ "type": "object", "description": "The Stripe object, as Stripe gives it." });
        let list = json!({ "type": "object", "properties": { "data": { "type": "array" }, "has_more": { "type": "boolean" } } });
        let metadata =
            json!({ "type": "object", "description": "Your own keys and values, kept by Stripe." });
        let spec = |name, description, input: Value, output: &Value| ActionSpec {
            name,
            description,
            input_schema: input,
            output_schema: output.clone(),
        };
        vec![
            spec(
                "get_customer",
                "Reads a customer.",
                json!({ "type": "object", "additionalProperties": false, "properties": { "id": { "type": "string" } }, "required": ["id"] }),
                &object,
            ),
            spec(
                "create_customer",
                "Creates a customer.",
                json!({ "type": "object", "additionalProperties": false, "properties": { "email": { "type": "string" }, "name": { "type": "string" }, "description": { "type": "string" }, "metadata": metadata }, "required": ["email"] }),
                &object,
            ),
            spec(
                "get_subscription",
                "Reads a subscription.",
                json!({ "type": "object", "additionalProperties": false, "properties": { "id": { "type": "string" } }, "required": ["id"] }),
                &object,
            ),
            spec(
                "list_subscriptions",
                "Lists subscriptions, of a customer or all.",
                json!({ "type": "object", "additionalProperties": false, "properties": { "customer": { "type": "string" }, "status": { "type": "string" }, "limit": { "type": "integer" } } }),
                &list,
            ),
            spec(
                "create_subscription",
                "Subscribes a customer to a price.",
                json!({ "type": "object", "additionalProperties": false, "properties": { "customer": { "type": "string" }, "price": { "type": "string" }, "quantity": { "type": "integer" }, "metadata": metadata }, "required": ["customer", "price"] }),
                &object,
            ),
        ]
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        let context = CallContext::outside_jobs(std::time::Duration::from_secs(10));
        self.request(connection, json!({ "url": "/v1/balance" }), &context)
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let connection = connection.ok_or_else(|| {
            ConnectorError::validation("the stripe connector needs a `connection`")
        })?;
        let request = match action {
            "get_customer" => json!({ "url": format!("/v1/customers/{}", id(&input, "id")?) }),
            "create_customer" => {
                text(&input, "email")?;
                let fields = form(
                    &[
                        ("email", input.get("email")),
                        ("name", input.get("name")),
                        ("description", input.get("description")),
                    ],
                    input.get("metadata"),
                );
                json!({ "method": "POST", "url": "/v1/customers", "form": fields })
            }
            "get_subscription" => {
                json!({ "url": format!("/v1/subscriptions/{}", id(&input, "id")?) })
            }
            "list_subscriptions" => {
                let query = form(
                    &[
                        ("customer", input.get("customer")),
                        ("status", input.get("status")),
                        ("limit", input.get("limit")),
                    ],
                    None,
                );
                json!({ "url": "/v1/subscriptions", "query": query })
            }
            "create_subscription" => {
                text(&input, "customer")?;
                text(&input, "price")?;
                let fields = form(
                    &[
                        ("customer", input.get("customer")),
                        ("items[0][price]", input.get("price")),
                        ("items[0][quantity]", input.get("quantity")),
                    ],
                    input.get("metadata"),
                );
                json!({ "method": "POST", "url": "/v1/subscriptions", "form": fields })
            }
            other => {
                return Err(ConnectorError::validation(format!(
                    "no action `{other}` (the stripe connector has get_customer, create_customer, get_subscription, list_subscriptions and create_subscription)"
                )));
            }
        };
        self.request(connection, request, context).await
    }
}
