//! Connectors made from OpenAPI 3 documents, without code: `weft connectors import-openapi`
//! turns each operation of a document into an action whose input schema has the operation's
//! path, query and header parameters and its JSON body. A call is an `http.request` on a
//! connection with the `http` connector's fields (base URL, auth, OAuth 2, limits).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::connection::Connection;
use crate::connector::{ActionSpec, CallContext, ConnectionField, Connector};
use crate::error::ConnectorError;
use crate::http::HttpConnector;

/// Deepest nesting of `$ref`s followed in a schema; deeper ones are left open.
const MOST_REF_DEPTH: usize = 16;

/// A connector as imported: what `weft connectors import-openapi` writes to a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Definition {
    pub name: String,
    pub description: String,
    /// The document's first server, used when a connection sets no `base_url`.
    pub base_url: Option<String>,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Operation {
    /// The action's name: the operation id in snake case, or the method and path.
    pub action: String,
    pub description: String,
    pub method: String,
    pub path: String,
    pub parameters: Vec<Parameter>,
    pub has_body: bool,
    pub input_schema: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Parameter {
    pub name: String,
    /// `path`, `query` or `header`.
    pub location: String,
}

/// Reads an OpenAPI 3 document (as JSON). Every problem found is returned.
pub fn import(document: &Value, name: &str) -> Result<Definition, Vec<String>> {
    let mut problems = Vec::new();
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        problems.push(format!(
            "`{name}` is not a connector name: lower-case letters, digits and `_`, starting with a letter"
        ));
    }
    let version = document["openapi"].as_str().unwrap_or_default();
    if !version.starts_with('3') {
        problems.push(format!(
            "this is not an OpenAPI 3 document (`openapi` is `{version}`)"
        ));
    }
    let Some(paths) = document["paths"].as_object() else {
        problems.push("the document has no `paths`".to_owned());
        return Err(problems);
    };
    let mut operations: Vec<Operation> = Vec::new();
    for (path, item) in paths {
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            match read_operation(document, path, method, operation, &shared) {
                Ok(operation) => {
                    if operations
                        .iter()
                        .any(|known| known.action == operation.action)
                    {
                        problems.push(format!(
                            "two operations make the action `{}`",
                            operation.action
                        ));
                    }
                    operations.push(operation);
                }
                Err(problem) => {
                    problems.push(format!("{} {path}: {problem}", method.to_uppercase()))
                }
            }
        }
    }
    if operations.is_empty() {
        problems.push("the document has no operations".to_owned());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Definition {
        name: name.to_owned(),
        description: document["info"]["title"]
            .as_str()
            .map(|title| format!("{title} (imported from its OpenAPI document)."))
            .unwrap_or_else(|| "An API imported from its OpenAPI document.".to_owned()),
        base_url: document["servers"][0]["url"].as_str().map(str::to_owned),
        operations,
    })
}

fn read_operation(
    document: &Value,
    path: &str,
    method: &str,
    operation: &Value,
    shared: &[Value],
) -> Result<Operation, String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut parameters = Vec::new();
    let own = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for parameter in shared.iter().chain(own.iter()) {
        let parameter = resolve(document, parameter, 0);
        let name = parameter["name"]
            .as_str()
            .ok_or("a parameter has no name")?
            .to_owned();
        let location = parameter["in"].as_str().unwrap_or_default().to_owned();
        if !["path", "query", "header"].contains(&location.as_str()) {
            continue;
        }
        let mut schema = resolve(document, &parameter["schema"], 0);
        if let Some(description) = parameter["description"].as_str() {
            schema["description"] = json!(description);
        }
        if location == "path" || parameter["required"] == true {
            required.push(json!(name));
        }
        // An operation's own parameter overrides a shared one of the same name.
        parameters.retain(|known: &Parameter| known.name != name);
        properties.insert(name.clone(), schema);
        parameters.push(Parameter { name, location });
    }
    let body = &operation["requestBody"];
    let body = resolve(document, body, 0);
    let has_body = !body.is_null();
    if has_body {
        let schema = resolve(document, &body["content"]["application/json"]["schema"], 0);
        properties.insert(
            "body".to_owned(),
            if schema.is_null() { json!({}) } else { schema },
        );
        if body["required"] == true {
            required.push(json!("body"));
        }
    }
    let action = match operation["operationId"].as_str() {
        Some(id) => snake_case(id),
        None => snake_case(&format!("{method} {path}")),
    };
    Ok(Operation {
        description: operation["summary"]
            .as_str()
            .or(operation["description"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{} {path}", method.to_uppercase())),
        method: method.to_uppercase(),
        path: path.to_owned(),
        parameters,
        has_body,
        input_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": properties,
            "required": required,
        }),
        action,
    })
}

/// A value with its local `$ref`s (`#/components/…`) replaced by what they point at.
fn resolve(document: &Value, value: &Value, depth: usize) -> Value {
    if depth > MOST_REF_DEPTH {
        return json!({});
    }
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let pointer = target.trim_start_matches('#');
                return match document.pointer(pointer) {
                    Some(found) => resolve(document, found, depth + 1),
                    None => json!({ "description": format!("unresolved reference {target}") }),
                };
            }
            Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), resolve(document, value, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| resolve(document, item, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `listPets` and `GET /pets/{id}` become `list_pets` and `get_pets_id`.
fn snake_case(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// A connector made from a [`Definition`], calling through the `http` connector.
pub struct OpenApiConnector {
    definition: Definition,
    http: Arc<HttpConnector>,
    /// The trait's names and descriptions are `&'static str`: those of an imported API are
    /// made once, when the process loads it, and live as long as the process.
    name: &'static str,
    description: &'static str,
    actions: Vec<ActionSpec>,
}

impl OpenApiConnector {
    pub fn new(definition: Definition, http: Arc<HttpConnector>) -> OpenApiConnector {
        let name: &'static str = Box::leak(definition.name.clone().into_boxed_str());
        let description: &'static str = Box::leak(definition.description.clone().into_boxed_str());
        let output = http
            .actions()
            .into_iter()
            .next()
            .map(|spec| spec.output_schema)
            .unwrap_or_default();
        let actions = definition
            .operations
            .iter()
            .map(|operation| ActionSpec {
                name: Box::leak(operation.action.clone().into_boxed_str()),
                description: Box::leak(
                    format!(
                        "{} ({} {})",
                        operation.description, operation.method, operation.path
                    )
                    .into_boxed_str(),
                ),
                input_schema: operation.input_schema.clone(),
                output_schema: output.clone(),
            })
            .collect();
        OpenApiConnector {
            definition,
            http,
            name,
            description,
            actions,
        }
    }

    /// The `http.request` input of one call.
    fn request(&self, operation: &Operation, input: &Value) -> Result<Value, ConnectorError> {
        let given = input
            .as_object()
            .ok_or_else(|| ConnectorError::validation("the input must be an object"))?;
        let mut path = operation.path.clone();
        let mut query = Map::new();
        let mut headers = Map::new();
        for parameter in &operation.parameters {
            let Some(value) = given.get(&parameter.name).filter(|value| !value.is_null()) else {
                if parameter.location == "path" {
                    return Err(ConnectorError::validation(format!(
                        "`{}` is required (a part of the path)",
                        parameter.name
                    )));
                }
                continue;
            };
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            match parameter.location.as_str() {
                "path" => {
                    let encoded = percent_encoding::utf8_percent_encode(
                        &text,
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string();
                    path = path.replace(&format!("{{{}}}", parameter.name), &encoded);
                }
                "query" => {
                    query.insert(parameter.name.clone(), json!(text));
                }
                _ => {
                    headers.insert(parameter.name.clone(), json!(text));
                }
            }
        }
        let mut request = json!({
            "method": operation.method,
            "url": path,
            "query": query,
            "headers": headers,
        });
        if operation.has_body
            && let Some(body) = given.get("body")
        {
            request["body"] = body.clone();
        }
        Ok(request)
    }
}

#[async_trait]
impl Connector for OpenApiConnector {
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        self.description
    }

    fn needs_connection(&self) -> bool {
        self.definition.base_url.is_none()
    }

    fn connection_fields(&self) -> Vec<ConnectionField> {
        self.http.connection_fields()
    }

    fn actions(&self) -> Vec<ActionSpec> {
        self.actions.clone()
    }

    fn check_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        self.http.check_connection(&self.with_base_url(connection))
    }

    async fn test_connection(&self, connection: &Connection) -> Result<(), ConnectorError> {
        self.http
            .test_connection(&self.with_base_url(connection))
            .await
    }

    async fn call(
        &self,
        action: &str,
        connection: Option<&Connection>,
        input: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectorError> {
        let operation = self
            .definition
            .operations
            .iter()
            .find(|operation| operation.action == action)
            .ok_or_else(|| {
                ConnectorError::validation(format!(
                    "the {} connector has no action `{action}`",
                    self.name
                ))
            })?;
        let request = self.request(operation, &input)?;
        let connection = match connection {
            Some(connection) => self.with_base_url(connection),
            None => {
                Connection::new(self.name, self.name, Map::new()).with_base_url(&self.definition)
            }
        };
        self.http
            .call("request", Some(&connection), request, context)
            .await
    }
}

impl OpenApiConnector {
    /// A connection with the document's server as its base URL when it sets none.
    fn with_base_url(&self, connection: &Connection) -> Connection {
        connection.clone().with_base_url(&self.definition)
    }
}

trait WithBaseUrl {
    fn with_base_url(self, definition: &Definition) -> Self;
}

impl WithBaseUrl for Connection {
    fn with_base_url(mut self, definition: &Definition) -> Connection {
        if self.text("base_url").is_none()
            && let Some(base) = &definition.base_url
        {
            self.fields.insert("base_url".to_owned(), json!(base));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_snake_case() {
        assert_eq!(snake_case("listPets"), "list_pets");
        assert_eq!(snake_case("get /pets/{petId}"), "get_pets_pet_id");
        assert_eq!(snake_case("HTTPStatus"), "httpstatus");
    }

    #[test]
    fn operations_become_actions_with_their_parameters_and_body() {
        let document = json!({
            "openapi": "3.0.3",
            "info": { "title": "Pets" },
            "servers": [{ "url": "https://pets.example.com/v1" }],
            "components": {
                "schemas": { "Pet": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] } },
                "parameters": { "Limit": { "name": "limit", "in": "query", "schema": { "type": "integer" } } }
            },
            "paths": {
                "/pets/{petId}": {
                    "parameters": [{ "name": "petId", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "get": { "operationId": "showPetById", "summary": "One pet" },
                    "put": { "operationId": "updatePet", "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } } } } }
                },
                "/pets": { "get": { "parameters": [{ "$ref": "#/components/parameters/Limit" }] } }
            }
        });
        let definition = import(&document, "pets").unwrap();
        let actions: Vec<&str> = definition
            .operations
            .iter()
            .map(|op| op.action.as_str())
            .collect();
        // In the document's order.
        assert_eq!(actions, vec!["show_pet_by_id", "update_pet", "get_pets"]);
        let update = &definition.operations[1];
        assert_eq!(update.input_schema["required"], json!(["petId", "body"]));
        assert_eq!(
            update.input_schema["properties"]["body"]["required"],
            json!(["name"])
        );
        assert_eq!(
            definition.operations[2].input_schema["properties"]["limit"]["type"],
            "integer"
        );
        assert_eq!(
            definition.base_url.as_deref(),
            Some("https://pets.example.com/v1")
        );
        assert!(
            import(&json!({ "openapi": "2.0", "paths": {} }), "Bad Name")
                .unwrap_err()
                .len()
                >= 3
        );
    }
}
