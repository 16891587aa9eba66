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
