//! Compiler tests: each problem a person can make, found at its place.

use super::*;

pub struct TestCatalog;

impl Catalog for TestCatalog {
    fn action(&self, connector: &str, action: &str) -> Result<ActionInfo, String> {
        match (connector, action) {
            ("http", "request") => Ok(ActionInfo {
                needs_connection: false,
                input_keys: Some(
                    [
                        "method",
                        "url",
                        "headers",
                        "query",
                        "body",
                        "timeout",
                        "fail_on_status",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                required_input: vec!["url".to_owned()],
            }),
            ("slack", "post_message") => Ok(ActionInfo {
                needs_connection: true,
                ..ActionInfo::default()
            }),
            ("http" | "slack", _) => Err(format!(
                "the {connector} connector has no action `{action}`"
            )),
            _ => Err(format!("no connector named `{connector}`")),
        }
    }

    fn subscription(&self, connector: &str) -> Result<ActionInfo, String> {
        match connector {
            "amqp" => Ok(ActionInfo {
                needs_connection: true,
                ..ActionInfo::default()
            }),
            _ => Err(format!("no connector named `{connector}` can subscribe")),
        }
    }
}

fn problems(text: &str) -> Vec<String> {
    match compile_recipe(text, &TestCatalog) {
        Ok(_) => Vec::new(),
        Err(Problems(found)) => found.iter().map(ToString::to_string).collect(),
    }
}

fn assert_problem(text: &str, expected: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|problem| problem.contains(expected)),
        "expected a problem containing {expected:?}, found {found:#?}"
    );
}

const VALID: &str = r##"
name: New order
trigger:
  webhook: { path: orders/new, mode: sync }
vars: { region: eu }
steps:
  - id: normalise
    transform: '{email: (.trigger.body.email | ascii_downcase), total: (.trigger.body.amount * 1.2)}'
  - id: big
    if: steps.normalise.output.total > 100
    then:
      - id: notify
        action: slack.post_message
        connection: team_slack
        input: { channel: "#sales", text: "Big order from {{ steps.normalise.output.email }}" }
    else: []
  - id: each
    for_each: "{{ trigger.body.lines }}"
    as: line
    concurrency: 4
    steps:
      - id: price
        set: { price: "{{ line.price * index }}" }
  - id: fetch
    action: http.request
    input: { url: "https://example.com/{{ vars.region }}" }
    retry: { attempts: 3, backoff: exponential, delay: 1s, max_delay: 1m }
    timeout: 30s
    on_error:
      - id: log_it
        set: { failure: "{{ error.message }}" }
  - id: answer
    respond: { status: 200, body: { ok: true } }
  - id: pause
    wait: 10s
  - id: done
    stop: { status: succeeded, reason: "all good" }
output: "{{ steps.normalise.output }}"
mask: [trigger.body.card_number, steps.*.output.token]
"##;

#[test]
fn a_valid_recipe_compiles() {
    assert_eq!(problems(VALID), Vec::<String>::new());
    let recipe = compile_recipe(VALID, &TestCatalog).unwrap();
    assert_eq!(recipe.name, "New order");
    assert_eq!(recipe.all_steps().len(), 10);
}

#[test]
fn unknown_keys_are_reported_where_they_are() {
    let text =
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: 1 }\n    timout: 5s\n";
    assert_eq!(
        problems(text),
        vec!["6:5: unknown key `timout` in a step; did you mean `timeout`?"]
    );
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let text = r#"name: 5
trigger: { manual: {}, webhook: { path: a } }
steps:
  - id: Bad-Id
    set: { v: 1 }
  - id: a
    wait: soon
  - id: a
    set: {}
"#;
    let found = problems(text);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("1:7: name must be text")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("2:24:") && p.contains("both `manual` and `webhook`")),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|p| p.contains("unknown key")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("4:9:") && p.contains("not a valid step id")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("7:11:") && p.contains("invalid duration `soon`")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("8:9:") && p.contains("duplicate step id `a`")),
        "{found:#?}"
    );
}

#[test]
fn missing_required_keys_and_wrong_types() {
    assert_problem(
        "trigger: { manual: {} }\nsteps: []\n",
        "missing the required key `name`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\n",
        "missing the required key `steps`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps: {}\n",
        "steps must be a list, not a mapping",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - set: {a: 1}\n",
        "missing the required key `id`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n",
        "a step needs one kind",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: {a: 1}\n    wait: 1s\n",
        "both `set` and `wait`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: {a: 1}\n    continue_on_error: maybe\n",
        "continue_on_error must be true or false",
    );
}

#[test]
fn duplicate_keys_are_problems() {
    assert_problem(
        "name: x\nname: y\ntrigger: { manual: {} }\nsteps: []\n",
        "2:1: duplicate key `name`",
    );
}

#[test]
fn cron_and_timezone_are_checked() {
    assert_problem(
        "name: x\ntrigger: { schedule: { cron: '* * *' } }\nsteps: []\n",
        "it has 3 fields",
    );
    assert_problem(
        "name: x\ntrigger: { schedule: { cron: '61 * * * *' } }\nsteps: []\n",
        "not a valid cron expression",
    );
    assert_problem(
        "name: x\ntrigger: { schedule: { cron: '0 9 * * 1-5', timezone: Mars/Base } }\nsteps: []\n",
        "`Mars/Base` is not an IANA time zone",
    );
    assert_eq!(
        problems(
            "name: x\ntrigger: { schedule: { cron: '0 9 * * 1-5', timezone: Europe/Paris } }\nsteps: []\n"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        problems("name: x\ntrigger: { schedule: { cron: '30 0 9 * * MON' } }\nsteps: []\n"),
        Vec::<String>::new()
    );
}

#[test]
fn template_syntax_errors_point_at_the_character() {
    let text = "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: \"hello {{ trigger. }}\" }\n";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("5:"), "{found:#?}");
    assert!(found[0].contains("template syntax error"), "{found:#?}");
    let col: u32 = found[0].split(':').nth(1).unwrap().parse().unwrap();
    assert!(
        col > 20,
        "the column {col} should point inside the template"
    );
}

#[test]
fn jq_syntax_errors_are_located() {
    let text = "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    transform: '.a | {b: }'\n";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("5:") && found[0].contains("jq syntax error"),
        "{found:#?}"
    );
}

#[test]
fn references_to_unknown_or_later_steps() {
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ steps.nope.output }}' }\n",
        "no step with id `nope`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ steps.b.output }}' }\n  - id: b\n    set: { w: 1 }\n",
        "step `b` (line 6) has not run yet here",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    transform: '.steps.b.output'\n  - id: b\n    set: { w: 1 }\n",
        "step `b` (line 6) has not run yet here",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ steps.a.output }}' }\n",
        "step `a` (line 4) has not run yet here",
    );
    // A later step reads one inside an earlier branch: allowed, it may have run.
    assert_eq!(
        problems(
            "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    if: true\n    then:\n      - id: inner\n        set: {v: 1}\n  - id: b\n    set: { w: '{{ steps.inner.output }}' }\n"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_names_and_names_out_of_place() {
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ trigerr.body }}' }\n",
        "unknown name `trigerr` in step `a`; did you mean `trigger`?",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ item }}' }\n",
        "`item` is only set inside a for_each loop",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: { v: '{{ error.message }}' }\n",
        "`error` is only set inside on_error steps",
    );
}

#[test]
fn unknown_connector_actions_and_missing_connections() {
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: http.fetch\n",
        "5:13: the http connector has no action `fetch`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: nope.fetch\n",
        "no connector named `nope`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: slack.post_message\n",
        "`slack.post_message` needs a `connection`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: request\n",
        "write `connector.action`",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: http.request\n    input: { url: /x, header: {} }\n",
        "6:23: `http.request` has no input `header`; did you mean `headers`?",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    action: http.request\n    input: { method: GET }\n",
        "6:12: `http.request` needs the input `url`",
    );
}

#[test]
fn deep_nesting_is_refused_with_a_limit() {
    let mut text = String::from("name: x\ntrigger: { manual: {} }\nsteps:\n");
    let mut indent = String::from("  ");
    for level in 0..30 {
        text.push_str(&format!(
            "{indent}- id: s{level}\n{indent}  if: true\n{indent}  then:\n"
        ));
        indent.push_str("    ");
    }
    text.push_str(&format!("{indent}- id: last\n{indent}  stop: {{}}\n"));
    let found = problems(&text);
    assert!(!found.is_empty());
    assert!(
        found.iter().any(|p| p.contains("deeper than")),
        "{found:#?}"
    );
}

#[test]
fn json_recipes_compile_too() {
    let text = r#"{"name": "j", "trigger": {"manual": {}}, "steps": [{"id": "a", "set": {"v": "{{ trigger.x }}"}}], "extra": 1}"#;
    assert_eq!(
        problems(text),
        vec![
            "1:99: unknown key `extra` in a recipe (known keys: name, description, trigger, vars, steps, output, concurrency, on_failure, retention, retry, mask)"
        ]
    );
}

#[test]
fn retry_and_timeout_belong_on_steps_that_do_one_thing() {
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    for_each: '[1]'\n    timeout: 1s\n    steps:\n      - id: b\n        set: {v: 1}\n",
        "6:5: `timeout` applies to steps that do one thing",
    );
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    if: true\n    retry: { attempts: 2 }\n    then: []\n",
        "6:5: `retry` applies to steps that do one thing",
    );
}

#[test]
fn an_invalid_input_schema_is_a_problem() {
    assert_problem(
        "name: x\ntrigger:\n  manual:\n    input_schema: { type: 5 }\nsteps: []\n",
        "4:19: input_schema is not a valid JSON Schema",
    );
}

#[test]
fn two_kinds_in_one_step_are_one_problem() {
    let found = problems(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    set: {v: 1}\n    action: http.request\n",
    );
    assert_eq!(
        found,
        vec!["6:5: a step has one kind, but this one has both `set` and `action`"]
    );
}

#[test]
fn the_else_branch_cannot_read_the_then_branch() {
    assert_problem(
        "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    if: true\n    then:\n      - id: yes_branch\n        set: {v: 1}\n    else:\n      - id: no_branch\n        set: { w: '{{ steps.yes_branch.output }}' }\n",
        "step `yes_branch` (line 7) has not run yet here",
    );
    // An error handler may read what ran inside its step.
    assert_eq!(
        problems(
            "name: x\ntrigger: { manual: {} }\nsteps:\n  - id: a\n    if: true\n    then:\n      - id: inner\n        set: {v: 1}\n    on_error:\n      - id: h\n        set: { w: '{{ steps.inner.output }} {{ steps.a.output }}' }\n"
        ),
        Vec::<String>::new()
    );
}

#[test]
fn a_schedule_fires_in_its_time_zone() {
    let recipe = compile_recipe(
        "name: x\ntrigger: { schedule: { cron: '0 9 * * *', timezone: Europe/Paris } }\nsteps: []\n",
        &TestCatalog,
    )
    .unwrap();
    let crate::model::Trigger::Schedule(schedule) = &recipe.trigger else {
        panic!("not a schedule")
    };
    let winter: chrono::DateTime<chrono::Utc> = "2026-01-10T12:00:00Z".parse().unwrap();
    assert_eq!(
        schedule.next_after(winter).unwrap().to_rfc3339(),
        "2026-01-11T08:00:00+00:00"
    );
    let summer: chrono::DateTime<chrono::Utc> = "2026-07-10T12:00:00Z".parse().unwrap();
    assert_eq!(
        schedule.next_after(summer).unwrap().to_rfc3339(),
        "2026-07-11T07:00:00+00:00"
    );
}
