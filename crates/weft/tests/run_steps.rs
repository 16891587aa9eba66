//! `weft run` through every step kind that needs no network.

use serde_json::json;

use crate::support::{recipe, run};

#[test]
fn every_step_kind_runs_and_is_recorded_in_order() {
    let event = json!({"email": "Ann@Example.COM", "lines": [{"sku": "a", "price": 70}, {"sku": "b", "price": 50}]});
    let ran = run(&recipe("every-step.yaml"), &event);
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    assert_eq!(ran.record["status"], "succeeded");
    assert_eq!(
        ran.step_ids(),
        [
            "normalise",
            "big",
            "tag_big",
            "lines",
            "priced",
            "line_total",
            "priced",
            "line_total",
            "names",
            "answer",
            "pause"
        ]
    );
    assert_eq!(
        ran.step("normalise")["output"],
        json!({"email": "ann@example.com", "total": 120})
    );
    assert_eq!(ran.step("big")["output"], json!({"branch": "then"}));
    assert_eq!(ran.step("names")["output"], json!(["a", "b"]));
    let indexes: Vec<_> = ran
        .steps("line_total")
        .iter()
        .map(|step| step["index"].clone())
        .collect();
    assert_eq!(indexes, vec![json!(0), json!(1)]);
    assert_eq!(
        ran.step("answer")["output"],
        json!({"status": 201, "headers": {"x-order": "ann@example.com"}, "body": {"accepted": true, "size": "big"}})
    );
    assert!(ran.step("pause")["output"]["waited_ms"].as_u64() >= Some(50));
    for step in ran.record["steps"].as_array().unwrap() {
        assert_eq!(step["attempts"], 1);
        assert_eq!(step["status"], "succeeded");
        // As times, not as text: RFC 3339 fractions vary in length (`.1Z`, `.10004Z`).
        let time =
            |key: &str| chrono::DateTime::parse_from_rfc3339(step[key].as_str().unwrap()).unwrap();
        assert!(time("started_at") <= time("finished_at"), "{step}");
    }
    assert_eq!(
        ran.record["output"],
        json!({
            "greeting": "Hello, ann@example.com",
            "size": "big",
            "totals": [{"sku": "a", "at": 0, "total": 140}, {"sku": "b", "at": 1, "total": 100}],
            "skus": ["a", "b"],
            "last_line": 1,
            "job_recipe": "Every step",
        })
    );
    assert_eq!(ran.record["trigger"], event);
    assert!(ran.record["error"].is_null());
}

#[test]
fn the_else_branch_runs_when_the_condition_is_false() {
    let ran = run(
        &recipe("every-step.yaml"),
        &json!({"email": "b@c.d", "lines": [{"sku": "a", "price": 1}]}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("big")["output"], json!({"branch": "else"}));
    assert!(ran.steps("tag_big").is_empty());
    assert_eq!(ran.record["output"]["size"], "small");
}

#[test]
fn concurrent_loop_results_keep_input_order() {
    let items: Vec<u64> = (1..=12).collect();
    let ran = run(&recipe("loop-concurrent.yaml"), &json!({"items": items}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let squares: Vec<u64> = items.iter().map(|n| n * n).collect();
    assert_eq!(ran.record["output"], json!(squares));
    let indexes: Vec<u64> = ran
        .steps("square")
        .iter()
        .map(|step| step["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (0..12).collect::<Vec<_>>());
}

#[test]
fn stop_ends_the_job_as_failed_or_succeeded() {
    let failed = run(&recipe("stop.yaml"), &json!({"quantity": 0}));
    assert_eq!(failed.code, 1);
    assert_eq!(failed.record["status"], "failed");
    assert_eq!(
        failed.record["error"],
        json!({"step": "reject", "message": "quantity must be positive, got 0", "kind": "stopped"})
    );
    assert!(failed.steps("after").is_empty());

    let early = run(&recipe("stop.yaml"), &json!({"quantity": 1}));
    assert_eq!(early.code, 0);
    assert_eq!(early.record["status"], "succeeded");
    assert!(early.steps("after").is_empty());
    assert_eq!(
        early.step("done")["output"],
        json!({"status": "succeeded", "reason": "nothing more to do"})
    );

    let full = run(&recipe("stop.yaml"), &json!({"quantity": 5}));
    assert_eq!(full.record["output"], json!({"reached": true}));
}

#[test]
fn call_runs_a_recipe_found_by_name_in_the_same_folder() {
    let ran = run(&recipe("call-parent.yaml"), &json!({"amount": 100}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("quote")["input"], json!({"amount": 100}));
    assert_eq!(ran.record["output"], json!({"gross": 120.0}));
}

#[test]
fn a_called_recipe_checks_its_input_schema() {
    let ran = run(&recipe("call-parent.yaml"), &json!({"amount": -5}));
    assert_eq!(ran.code, 1);
    let error = &ran.record["error"];
    assert_eq!(error["step"], "quote");
    assert_eq!(error["kind"], "validation");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("recipe `Price quote` failed") && message.contains("input_schema"),
        "{message}"
    );
}

#[test]
fn masked_fields_never_reach_the_record_even_where_copied() {
    let card = "4111111111111111";
    let ran = run(
        &recipe("masked.yaml"),
        &json!({"body": {"card_number": card, "name": "Ann"}}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let printed = ran.record.to_string();
    assert!(!printed.contains(card), "{printed}");
    assert!(!printed.contains("tok_"), "{printed}");
    assert_eq!(ran.record["trigger"]["body"]["card_number"], "[masked]");
    assert_eq!(
        ran.step("receipt")["output"]["text"],
        "charged card [masked]"
    );
    assert_eq!(ran.record["output"]["name"], "Ann");
}

#[test]
fn the_examples_that_need_no_network_run_to_success() {
    for name in [
        "hello",
        "loop-lines",
        "stop-and-respond",
        "call-parent",
        "call-child",
    ] {
        let examples = crate::support::examples();
        let output = crate::support::weft()
            .arg("run")
            .arg(examples.join(format!("{name}.yaml")))
            .arg("--event")
            .arg(examples.join(format!("events/{name}.json")))
            .output()
            .unwrap();
        let ran = crate::support::ran(output);
        assert_eq!(ran.code, 0, "{name}: {:#}\n{}", ran.record, ran.stderr);
        assert_eq!(ran.record["status"], "succeeded", "{name}");
    }
}

#[test]
fn a_recipe_can_be_written_in_json() {
    let ran = run(&recipe("json-recipe.json"), &json!({"n": 21}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.record["output"], "21 doubled is 42");
    let (_dir, broken) = crate::support::write_recipe(
        "{\"name\": \"x\", \"trigger\": {\"manual\": {}},\n \"steps\": [{\"id\": \"a\", \"sett\": {}}]}",
    );
    let output = crate::support::weft()
        .arg("validate")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(":2:24: unknown key `sett` in a step"),
        "{stderr}"
    );
}
