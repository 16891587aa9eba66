//! Talking to a running server: `weft recipe`, `weft apply` and `weft job`.

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::Value;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "WEFT_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// An API token (`weft admin create-token`).
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// A client of the server's API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::Client::builder()
                .build()
                .context("cannot start an HTTP client")?,
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    /// Calls the API; an error answer becomes an error with the server's message (and, for an
    /// invalid recipe, every problem with its line and column).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Value> {
        let text = self.call_for_text(method, path, body).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Calls the API for an answer that is not JSON (a CSV export), as text.
    pub async fn call_for_text(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<String> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let error = &value["error"];
        let mut message = error["message"]
            .as_str()
            .unwrap_or(status.as_str())
            .to_owned();
        if let Some(problems) = error["problems"].as_array() {
            for problem in problems {
                message.push_str(&format!(
                    "\n  {}:{}: {}",
                    problem["line"],
                    problem["column"],
                    problem["message"].as_str().unwrap_or_default()
                ));
            }
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }

    /// Every recipe on the server, with its source.
    pub async fn recipes_with_sources(&self) -> anyhow::Result<Vec<Value>> {
        let listed = self.call(Method::GET, "/recipes", None).await?;
        let mut recipes = Vec::new();
        for recipe in listed["recipes"].as_array().cloned().unwrap_or_default() {
            let id = recipe["id"].as_str().unwrap_or_default();
            recipes.push(
                self.call(Method::GET, &format!("/recipes/{id}"), None)
                    .await?,
            );
        }
        Ok(recipes)
    }

    /// The id of a recipe named by id or by name.
    pub async fn recipe_id(&self, id_or_name: &str) -> anyhow::Result<String> {
        let listed = self.call(Method::GET, "/recipes", None).await?;
        listed["recipes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|recipe| recipe["id"] == id_or_name || recipe["name"] == id_or_name)
            .and_then(|recipe| recipe["id"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                anyhow::anyhow!("no recipe with the id or name `{id_or_name}` on the server")
            })
    }
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
