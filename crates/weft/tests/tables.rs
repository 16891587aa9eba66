//! Lookup tables on a real `weft serve`: made and filled from CSV over the API, read back as
//! CSV, changed by the tables connector's actions, and read by the `lookup` template function.

use reqwest::Method;
use serde_json::json;

use crate::support::server::{Backend, Server};

async fn put_csv(server: &Server, table: &str, csv: &str) -> (u16, serde_json::Value) {
    server
        .api(
            Method::PUT,
            &format!("/api/v1/tables/{table}/csv"),
            Some(csv.to_owned()),
        )
        .await
}

on_both_backends!(
    lookup_tables_are_filled_read_and_changed,
    |server: Server| async move {
        let (status, created) = server
            .api(
                Method::POST,
                "/api/v1/tables",
                Some(
                    json!({ "name": "rates", "columns": ["currency", "rate", "note"] }).to_string(),
                ),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let (status, imported) = put_csv(
            &server,
            "rates",
            "currency,rate\nEUR,1.08\nGBP,1.27\n\"JP,Y\",0.0067\n",
        )
        .await;
        assert_eq!(
            (status, imported["rows"].clone()),
            (200, json!(3)),
            "{imported}"
        );

        // A webhook that prices an order with `lookup` (CSV values are text), and a step that adds a currency.
        server
        .save_recipe("name: Price\ntrigger:\n  webhook: { path: price, mode: sync }\nsteps:\n  - id: answer\n    respond:\n      status: 200\n      body:\n        rate: \"{{ lookup('rates', currency=trigger.body.currency).rate }}\"\n        missing: \"{{ lookup('rates', currency='XXX') is none }}\"\n")
        .await;
        let answer = server
            .hook("/hooks/price", json!({ "currency": "GBP" }))
            .await;
        assert_eq!(answer, json!({ "rate": "1.27", "missing": true }));

        let changes = server
        .save_recipe("name: Change rates\ntrigger: { manual: {} }\nsteps:\n  - id: add\n    action: tables.add\n    input: { table: rates, row: { currency: CHF, rate: '1.13' } }\n  - id: raise\n    action: tables.update\n    input: { table: rates, where: { currency: EUR }, set: { rate: '1.10', note: raised } }\n  - id: merge\n    action: tables.upsert\n    input: { table: rates, key: currency, row: { currency: GBP, rate: '1.30' } }\n  - id: drop\n    action: tables.delete\n    input: { table: rates, where: { currency: 'JP,Y' } }\n  - id: find\n    action: tables.lookup\n    input: { table: rates, where: { currency: EUR } }\n")
        .await;
        let (_, accepted) = server
            .api(
                Method::POST,
                &format!("/api/v1/recipes/{}/run", changes["id"].as_str().unwrap()),
                Some("{}".to_owned()),
            )
            .await;
        let job = server
            .finished_job(accepted["job_id"].as_str().unwrap())
            .await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let output = |step: usize| job["steps"][step]["output"].clone();
        assert_eq!(output(0), json!({ "rows": 4 }));
        assert_eq!(output(1), json!({ "updated": 1 }));
        assert_eq!(output(2), json!({ "added": false }));
        assert_eq!(output(3), json!({ "deleted": 1 }));
        assert_eq!(
            output(4)["row"],
            json!({ "currency": "EUR", "rate": "1.10", "note": "raised" })
        );

        // The template reads the changed rows at once.
        let answer = server
            .hook("/hooks/price", json!({ "currency": "GBP" }))
            .await;
        assert_eq!(answer["rate"], "1.30");

        let exported = Server::client()
            .get(server.url("/api/v1/tables/rates/csv"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            exported,
            "currency,rate,note\nEUR,1.10,raised\nGBP,1.30,\nCHF,1.13,\n"
        );

        // Refusals: a bad name, an unknown column, a table that is not there.
        let (status, _) = server
            .api(
                Method::POST,
                "/api/v1/tables",
                Some(json!({ "name": "Bad Name", "columns": ["a"] }).to_string()),
            )
            .await;
        assert_eq!(status, 422);
        let (status, refused) = put_csv(&server, "rates", "currency,price\nEUR,1\n").await;
        assert_eq!(status, 422, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`price`")
        );
        let (status, _) = put_csv(&server, "nothing", "a\n1\n").await;
        assert_eq!(status, 404);
        let (status, _) = server
            .api(Method::DELETE, "/api/v1/tables/rates", None)
            .await;
        assert_eq!(status, 204);
        let answer = server
            .hook("/hooks/price", json!({ "currency": "GBP" }))
            .await;
        assert!(
            answer.to_string().contains("no lookup table named `rates`"),
            "{answer}"
        );
    }
);
