//! `weft run` when things go wrong: clear errors with kinds, limits that cut runaway work off,
//! and exit codes 1 (job failed) and 2 (invalid input).

use serde_json::json;

use crate::support::{recipe, run, weft, write_recipe};

#[test]
fn an_expression_error_names_the_step_and_the_expression() {
    let ran = run(&recipe("expression-error.yaml"), &json!({"count": 1}));
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["status"], "failed");
    assert_eq!(ran.step_ids(), ["first", "broken"]);
    let error = &ran.record["error"];
    assert_eq!(error["step"], "broken");
    assert_eq!(error["kind"], "expression");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("step `broken`"), "{message}");
    assert!(message.contains("trigger.count + 'text'"), "{message}");
    assert_eq!(ran.step("broken")["status"], "failed");
    assert_eq!(ran.step("broken")["error"], *error);
}

#[test]
fn on_error_handles_a_failure_and_continue_on_error_records_it() {
    let ran = run(
        &recipe("errors-handled.yaml"),
        &json!({"text": "not a number"}),
    );
    assert_eq!(ran.code, 0, "{:#}", ran.record);
    assert_eq!(ran.step_ids(), ["parse", "fallback", "optional", "after"]);
    assert_eq!(ran.step("parse")["status"], "handled");
    assert_eq!(ran.step("parse")["error"]["kind"], "expression");
    assert_eq!(ran.step("optional")["status"], "failed");
    assert!(ran.step("optional")["output"].is_null());
    assert_eq!(
        ran.step("after")["output"],
        json!({"optional_output": null})
    );
    let output = &ran.record["output"];
    assert_eq!(output["failed_step"], "parse");
    assert_eq!(output["kind"], "expression");
    assert_eq!(output["attempts"], 1);
    assert!(
        output["why"].as_str().unwrap().contains("step `parse`"),
        "{output}"
    );
}

#[test]
fn a_jq_program_that_never_ends_is_cut_off_at_the_timeout() {
    let started = std::time::Instant::now();
    let ran = run(&recipe("jq-forever.yaml"), &json!({}));
    assert_eq!(ran.code, 1, "{:#}", ran.record);
    assert_eq!(ran.record["error"]["kind"], "timeout");
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last(range(infinite))")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_template_that_loops_too_long_runs_out_of_fuel() {
    let ran = run(&recipe("template-forever.yaml"), &json!({}));
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "expression");
    assert!(
        ran.record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ran too long"),
        "{:#}",
        ran.record
    );
}

#[test]
fn a_loop_over_too_many_items_is_refused_with_the_limit() {
    let ran = run(&recipe("big-loop.yaml"), &json!({"n": 100000}));
    assert_eq!(ran.code, 1);
    assert_eq!(ran.record["error"]["kind"], "validation");
    let message = ran.record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("100000 items") && message.contains("limit of 10000"),
        "{message}"
    );
    let small = run(&recipe("big-loop.yaml"), &json!({"n": 3}));
    assert_eq!(small.code, 0);
    assert_eq!(small.steps("touch").len(), 3);
}

#[test]
fn a_recipe_that_calls_itself_stops_at_the_depth_limit() {
    let ran = run(&recipe("call-loop.yaml"), &json!({}));
    assert_eq!(ran.code, 1);
    let message = ran.record["error"]["message"].as_str().unwrap();
    assert!(message.contains("calls nest deeper than 8"), "{message}");
}

#[test]
fn an_invalid_recipe_exits_2_with_located_problems() {
    let (_dir, path) =
        write_recipe("name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    sett: {}\n");
    let output = weft().arg("run").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:4:5: a step needs one kind", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:5:5: unknown key `sett`", path.display())),
        "{stderr}"
    );
}

#[test]
fn an_event_that_is_not_json_exits_2() {
    let output = weft()
        .arg("run")
        .arg(recipe("stop.yaml"))
        .arg("--event")
        .arg("{nope")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));
}

#[test]
fn the_event_can_come_from_a_file_or_standard_input() {
    let (dir, _) = write_recipe("");
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"quantity": 5}"#).unwrap();
    let from_file = weft()
        .arg("run")
        .arg(recipe("stop.yaml"))
        .arg("--event")
        .arg(&event)
        .output()
        .unwrap();
    assert_eq!(from_file.status.code(), Some(0));

    use std::io::Write;
    let mut child = weft()
        .arg("run")
        .arg(recipe("stop.yaml"))
        .arg("--event")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"quantity": 0}"#)
        .unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert_eq!(from_stdin.status.code(), Some(1));
}

#[test]
fn a_jq_program_that_recurses_without_end_fails_its_step_not_the_process() {
    let ran = run(&recipe("jq-recursion.yaml"), &json!({}));
    assert_eq!(ran.code, 0, "{:#}\n{}", ran.record, ran.stderr);
    assert_eq!(ran.step("deep")["status"], "handled");
    assert_eq!(ran.step("deep")["error"]["kind"], "expression");
    assert!(
        ran.record["output"]
            .as_str()
            .unwrap()
            .contains("recursed too deeply"),
        "{:#}",
        ran.record
    );
}
