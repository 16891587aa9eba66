//! The recipe document as a tree of located nodes. YAML and JSON both parse into it; the
//! compiler then walks it and reports every problem at its line and column in one pass, which
//! a derived serde deserializer (it stops at the first error) cannot do.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{DefaultMessageFormatter, MessageFormatter, Spanned};
use std::fmt;

use crate::location::{Problem, Span};

/// Largest recipe file accepted, in bytes.
pub const MAX_RECIPE_BYTES: usize = 2 * 1024 * 1024;
/// Deepest nesting of YAML collections accepted.
pub const MAX_NESTING: usize = 64;
/// Most values (scalars and collections) in one recipe document.
pub const MAX_NODES: usize = 200_000;

/// A value in the document with the place it was written.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: NodeValue,
}

#[derive(Debug, Clone)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its place.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

impl Node {
    /// What kind of value this is, for messages such as "expected a list, found text".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Number(_) => "a number",
            NodeValue::String(_) => "text",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// The plain JSON value of this node, places dropped.
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(flag) => Value::Bool(*flag),
            NodeValue::Number(number) => Value::Number(number.clone()),
            NodeValue::String(text) => Value::String(text.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.name.clone(), value.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Parses recipe text, YAML or JSON, into a located tree. A syntax error is one problem: the
/// parser cannot go on past it. The parser recurses once per level of nesting: call this on
/// a thread with a large stack, as `compile_recipe` does.
pub(crate) fn parse_document(text: &str) -> Result<Node, Problem> {
    if text.len() > MAX_RECIPE_BYTES {
        return Err(Problem::new(
            Span::new(1, 1),
            format!(
                "the recipe is {} bytes, more than the limit of {} bytes",
                text.len(),
                MAX_RECIPE_BYTES
            ),
        ));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: MAX_NESTING, max_nodes: MAX_NODES },
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: 100_000 },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        with_snippet: false,
    };
    let root: Option<Spanned<NodeValue>> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|error| syntax_problem(&error))?;
    match root {
        Some(root) => Ok(located(root)),
        None => Ok(Node {
            span: Span::new(1, 1),
            value: NodeValue::Null,
        }),
    }
}

fn syntax_problem(error: &serde_saphyr::Error) -> Problem {
    let span = error
        .location()
        .map(|location| span_of(&location))
        .unwrap_or(Span::new(1, 1));
    let message = match error.without_snippet() {
        serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => {
            "the recipe's YAML aliases expand to too much data".to_owned()
        }
        other => DefaultMessageFormatter.format_message(other).to_string(),
    };
    Problem::new(span, message)
}

fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { .. } => {
            format!("the recipe nests deeper than the limit of {MAX_NESTING} levels")
        }
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            format!("the recipe has more than the limit of {MAX_NODES} values")
        }
        BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
            "the recipe uses too many YAML anchors or aliases".to_owned()
        }
        other => format!("the recipe is beyond a limit of the YAML parser ({other:?})"),
    }
}

fn span_of(location: &serde_saphyr::Location) -> Span {
    let line = u32::try_from(location.line()).unwrap_or(u32::MAX).max(1);
    let col = u32::try_from(location.column()).unwrap_or(u32::MAX).max(1);
    Span::new(line, col)
}

fn located(spanned: Spanned<NodeValue>) -> Node {
    Node {
        span: span_of(&spanned.referenced),
        value: spanned.value,
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Number(number.into()))
    }

    fn visit_u64<E>(self, number: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Number(number.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<NodeValue, E> {
        Number::from_f64(number)
            .map(NodeValue::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E>(self, text: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::String(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<NodeValue, E> {
        Ok(NodeValue::String(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<NodeValue>>()? {
            items.push(located(item));
        }
        Ok(NodeValue::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<Spanned<String>, Spanned<NodeValue>>()? {
            let key = Key {
                span: span_of(&key.referenced),
                name: key.value,
            };
            entries.push((key, located(value)));
        }
        Ok(NodeValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_knows_its_line_and_column() {
        let root = parse_document("name: x\nsteps:\n  - id: a\n    set: { v: 1 }\n").unwrap();
        let NodeValue::Map(entries) = &root.value else {
            panic!("root is not a mapping")
        };
        assert_eq!(entries[1].0.name, "steps");
        assert_eq!(entries[1].0.span, Span::new(2, 1));
        let NodeValue::Seq(steps) = &entries[1].1.value else {
            panic!("steps is not a list")
        };
        let NodeValue::Map(step) = &steps[0].value else {
            panic!("a step is not a mapping")
        };
        assert_eq!(step[1].0.name, "set");
        assert_eq!(step[1].0.span, Span::new(4, 5));
    }

    #[test]
    fn json_parses_into_the_same_tree() {
        let root = parse_document("{\"name\": \"x\",\n \"n\": 2.5}").unwrap();
        assert_eq!(root.to_json(), serde_json::json!({"name": "x", "n": 2.5}));
    }

    #[test]
    fn yes_and_no_stay_text() {
        let root = parse_document("a: yes\nb: true\n").unwrap();
        assert_eq!(root.to_json(), serde_json::json!({"a": "yes", "b": true}));
    }

    #[test]
    fn a_syntax_error_has_a_place() {
        let problem = parse_document("name: x\nsteps: [\n").unwrap_err();
        assert!(problem.span.line >= 2, "{problem}");
    }

    #[test]
    fn too_deep_a_document_is_refused_with_the_limit() {
        let text = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        let parse = move || parse_document(&text).unwrap_err();
        let problem = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(parse)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            problem.message,
            "the recipe nests deeper than the limit of 64 levels"
        );
    }

    #[test]
    fn an_oversized_document_is_refused_with_the_limit() {
        let text = "a".repeat(MAX_RECIPE_BYTES + 1);
        let problem = parse_document(&text).unwrap_err();
        assert!(problem.message.contains("limit"), "{problem}");
    }
}
