//! Connectors made from OpenAPI documents: imported with `weft connectors import-openapi`,
//! listed, checked in recipes, and called against the stand-in API.

use serde_json::{Value, json};

use crate::support::http_server::TestServer;
use crate::support::{ran, weft, write_recipe};

const DOCUMENT: &str = r##"openapi: 3.0.3
info: { title: Echo API }
servers: [{ url: "https://echo.example.com" }]
components:
  schemas:
    Item:
      type: object
      properties: { name: { type: string } }
      required: [name]
paths:
  /echo/{item}:
    parameters:
      - { name: item, in: path, required: true, schema: { type: string } }
    get:
      operationId: getItem
      summary: Reads an item
      parameters:
        - { name: verbose, in: query, schema: { type: boolean } }
        - { name: X-Trace, in: header, schema: { type: string } }
    post:
      operationId: saveItem
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Item" }
"##;

/// Imports the document into a fresh folder of connectors; returns the folder.
fn imported() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let document = folder.path().join("echo.yaml");
    std::fs::write(&document, DOCUMENT).unwrap();
    let connectors = folder.path().join("connectors");
    let output = weft()
        .args(["connectors", "import-openapi"])
        .arg(&document)
        .args(["--name", "echo_api", "--into"])
        .arg(&connectors)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("2 action(s) (get_item, save_item)"), "{said}");
    folder
}

#[test]
fn an_imported_api_is_a_connector_with_an_action_per_operation() {
    let folder = imported();
    let connectors = folder.path().join("connectors");
    let shown = weft()
        .args(["connectors", "show", "echo_api", "--json"])
        .env("WEFT_CONNECTORS_DIR", &connectors)
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let save = shown["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|action| action["name"] == "save_item")
        .unwrap();
    assert_eq!(save["input_schema"]["required"], json!(["item", "body"]));
    assert_eq!(
        save["input_schema"]["properties"]["body"]["required"],
        json!(["name"])
    );

    // Each call goes to the operation's method and path, with its query, header and body.
    let api = TestServer::start();
    let (recipe_folder, recipe) = write_recipe(
        "name: Use the echo API\ntrigger: { manual: {} }\nsteps:\n  - id: read\n    action: echo_api.get_item\n    connection: echo\n    input: { item: 'a b/c', verbose: true, X-Trace: t-1 }\n  - id: save\n    action: echo_api.save_item\n    connection: echo\n    input: { item: '42', body: { name: Ann } }\n",
    );
    let connections = recipe_folder.path().join("connections.yaml");
    std::fs::write(
        &connections,
        format!("echo:\n  connector: echo_api\n  base_url: {}\n", api.base),
    )
    .unwrap();
    let run = ran(weft()
        .arg("run")
        .arg(&recipe)
        .args(["--allow-private-network", "--connections"])
        .arg(&connections)
        .env("WEFT_CONNECTORS_DIR", &connectors)
        .output()
        .unwrap());
    assert_eq!(run.code, 0, "{:#}\n{}", run.record, run.stderr);
    let read = &run.step("read")["output"]["body"];
    assert_eq!(read["method"], "GET");
    assert_eq!(read["path"], "/echo/a%20b%2Fc");
    assert_eq!(read["query"], json!([["verbose", "true"]]));
    assert_eq!(read["headers"]["x-trace"], "t-1");
    let save = &run.step("save")["output"]["body"];
    assert_eq!(
        (save["method"].as_str(), save["path"].as_str()),
        (Some("POST"), Some("/echo/42"))
    );
    assert_eq!(save["body"], json!({ "name": "Ann" }));

    // A call without its path parameter is found when the recipe is checked.
    let (_bad_folder, bad) = write_recipe(
        "name: Missing\ntrigger: { manual: {} }\nsteps:\n  - id: read\n    action: echo_api.get_item\n    input: { verbose: true }\n",
    );
    let checked = weft()
        .arg("validate")
        .arg(&bad)
        .env("WEFT_CONNECTORS_DIR", &connectors)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("item"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn a_document_that_is_not_openapi_3_is_refused_with_reasons() {
    let folder = tempfile::tempdir().unwrap();
    let document = folder.path().join("old.json");
    std::fs::write(&document, r#"{"swagger": "2.0", "paths": {}}"#).unwrap();
    let output = weft()
        .args(["connectors", "import-openapi"])
        .arg(&document)
        .args(["--name", "Old API", "--into"])
        .arg(folder.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("not an OpenAPI 3 document") && said.contains("not a connector name"),
        "{said}"
    );
    std::fs::write(folder.path().join("echo.yaml"), DOCUMENT).unwrap();
    let taken = weft()
        .args(["connectors", "import-openapi"])
        .arg(folder.path().join("echo.yaml"))
        .args(["--name", "http", "--into"])
        .arg(folder.path().join("connectors"))
        .output()
        .unwrap();
    assert!(!taken.status.success());
    let said = String::from_utf8_lossy(&taken.stderr);
    assert!(said.contains("exists already"), "{said}");
}
