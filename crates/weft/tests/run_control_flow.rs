//! Control flow details: branch and loop failures, and their error handlers.

use serde_json::json;

use crate::support::{run, write_recipe};

#[test]
fn a_failure_inside_a_loop_fails_the_loop_and_names_the_inner_step() {
    let (_dir, path) = write_recipe(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: each\n    for_each: '{{ trigger.items }}'\n    steps:\n      - id: check\n        transform: 'if .item > 2 then error(\"too big: \\(.item)\") else .item end'\n",
    );
    let ran = run(&path, &json!({"items": [1, 2, 3, 4]}));
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["step"], "check");
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too big: 3")
    );
    assert_eq!(ran.step("each")["status"], "failed");
    // The iteration after the failure does not start.
    assert_eq!(ran.steps("check").len(), 3);
}

#[test]
fn an_error_handler_on_a_branch_step_catches_its_body() {
    let (_dir, path) = write_recipe(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: branch\n    if: 'true'\n    then:\n      - id: boom\n        transform: 'error(\"no\")'\n    on_error:\n      - id: recover\n        set: { failed: '{{ error.step }}' }\noutput: '{{ vars.failed }}'\n",
    );
    let ran = run(&path, &json!({}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step("branch")["status"], "handled");
    assert_eq!(ran.step("branch")["output"], json!({"branch": "then"}));
    assert_eq!(ran.step("boom")["status"], "failed");
    assert_eq!(ran.record["output"], "boom");
}

#[test]
fn inner_loops_see_the_outer_loops_item() {
    let (_dir, path) = write_recipe(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: orders\n    for_each: trigger.orders\n    as: order\n    steps:\n      - id: lines\n        for_each: order.lines\n        as: line\n        steps:\n          - id: pair\n            set: { pair: '{{ order.id }}-{{ line }}-{{ index }}' }\n          - id: by_jq\n            transform: '\"\\(.order.id)/\\(.line)\"'\noutput: '{{ steps.orders.output }}'\n",
    );
    let ran = run(
        &path,
        &json!({"orders": [{"id": "a", "lines": [1, 2]}, {"id": "b", "lines": [3]}]}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let pairs: Vec<_> = ran
        .steps("pair")
        .iter()
        .map(|step| step["output"]["pair"].clone())
        .collect();
    assert_eq!(pairs, vec![json!("a-1-0"), json!("a-2-1"), json!("b-3-0")]);
    let by_jq: Vec<_> = ran
        .steps("by_jq")
        .iter()
        .map(|step| step["output"].clone())
        .collect();
    assert_eq!(by_jq, vec![json!("a/1"), json!("a/2"), json!("b/3")]);
}

#[test]
fn a_masked_variable_is_scrubbed_wherever_it_went() {
    let (_dir, path) = write_recipe(
        "name: x\ntrigger: { manual: {} }\nvars: { api_key: '{{ trigger.key }}' }\nsteps:\n  - id: use\n    set: { header: 'Key {{ vars.api_key }}', later: '{{ trigger.other }}' }\n  - id: fetched\n    set: { status: 200 }\noutput: '{{ vars }}'\nmask: [vars.api_key, vars.later]\n",
    );
    let ran = run(&path, &json!({"key": "k-12345678", "other": "also-secret"}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    let printed = ran.step("use").to_string() + &ran.record["output"].to_string();
    assert!(
        !printed.contains("k-12345678") && !printed.contains("also-secret"),
        "{printed}"
    );
    assert_eq!(ran.step("use")["output"]["header"], "Key [masked]");
    assert_eq!(ran.step("fetched")["output"]["status"], 200);
}

#[test]
fn a_variable_set_by_one_iteration_survives_the_loop() {
    let (_dir, path) = write_recipe(
        "name: x\ntrigger: { manual: {} }\nvars: { found: none }\nsteps:\n  - id: each\n    for_each: trigger.items\n    steps:\n      - id: check\n        if: item == 'b'\n        then:\n          - id: remember\n            set: { found: '{{ item }}' }\noutput: '{{ vars.found }}'\n",
    );
    let ran = run(&path, &json!({"items": ["a", "b", "c"]}));
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.record["output"], "b");
}
