//! Property tests: no input, however malformed, makes the compiler panic or hang.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::compile_recipe;
use super::tests::TestCatalog;

const VALID: &str = include_str!("../../../weft/tests/recipes/every-step.yaml");

/// Words the compiler gives meaning to, so that random documents reach deep into it.
const WORDS: &[&str] = &[
    "name",
    "trigger",
    "steps",
    "id",
    "set",
    "if",
    "then",
    "else",
    "for_each",
    "as",
    "transform",
    "action",
    "http.request",
    "input",
    "call",
    "respond",
    "wait",
    "stop",
    "retry",
    "timeout",
    "on_error",
    "continue_on_error",
    "webhook",
    "schedule",
    "cron",
    "timezone",
    "poll",
    "manual",
    "mask",
    "output",
    "vars",
    "collect",
    "concurrency",
    "attempts",
    "1s",
    "{{ steps.a.output }}",
    "{{ trigger.x | upper }}",
    "{% for x in y %}",
    ".a | {b: 1}",
    "steps.*.output",
    "a",
    "b",
];

fn word() -> impl Strategy<Value = String> {
    prop::sample::select(WORDS).prop_map(str::to_owned)
}

fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        word().prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 200, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_text_gives_problems_or_a_recipe(text in "\\PC{0,400}") {
        let _ = compile_recipe(&text, &TestCatalog);
    }

    #[test]
    fn any_document_of_recipe_words_gives_problems_or_a_recipe(document in document()) {
        let _ = compile_recipe(&document.to_string(), &TestCatalog);
    }

    #[test]
    fn any_edit_of_a_valid_recipe_gives_problems_or_a_recipe(at in 0..VALID.len(), cut in 0usize..20, insert in "\\PC{0,8}") {
        let mut text = VALID.to_owned();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        if let Err(problems) = compile_recipe(&text, &TestCatalog) {
            prop_assert!(!problems.0.is_empty());
            for problem in &problems.0 {
                prop_assert!(problem.span.line >= 1 && problem.span.col >= 1);
            }
        }
    }
}
