//! The recipe compiler: turns a located document into a typed [`Recipe`], collecting every
//! problem on the way instead of stopping at the first.

mod reader;
mod references;
mod steps;
mod trigger;

use std::collections::{BTreeSet, HashMap, HashSet};

use reader::MapReader;
pub use reader::closest;
use references::{Reference, ReferenceCheck};

use crate::jq::JqProgram;
use crate::location::{Problem, Problems, Span};
use crate::model::{MaskPath, OnFailure, Recipe, RecordLevel, Retention};
use crate::node::{Key, Node, NodeValue, parse_document};
use crate::template::{Expression, TemplateValue};

/// What the recipe compiler needs to know about connectors, without depending on them.
pub trait Catalog: Sync {
    /// Checks that `connector.action` exists; the error says what does.
    fn action(&self, connector: &str, action: &str) -> Result<ActionInfo, String>;
    /// Checks that a connector can feed a `subscribe` trigger.
    fn subscription(&self, connector: &str) -> Result<ActionInfo, String>;
}

/// What the compiler checks about an action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionInfo {
    pub needs_connection: bool,
    /// The input keys the action takes, when it takes no others.
    pub input_keys: Option<Vec<String>>,
    /// Input keys the action cannot do without.
    pub required_input: Vec<String>,
}

/// Deepest nesting of steps inside `if`, `for_each` and `on_error`.
pub const MAX_STEP_DEPTH: usize = 16;
/// Most steps a recipe may hold, nested ones included.
pub const MAX_STEPS: usize = 10_000;

const RECIPE_KEYS: &[&str] = &[
    "name",
    "description",
    "trigger",
    "vars",
    "steps",
    "output",
    "concurrency",
    "on_failure",
    "retention",
    "retry",
    "mask",
];

/// Stack for compiling one recipe: the YAML parser and the compiler recurse once per level of
/// nesting, and the callers' threads (async workers among them) may have small stacks.
const COMPILER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Parses and checks a recipe. On failure, every problem found, in file order.
pub fn compile_recipe(text: &str, catalog: &dyn Catalog) -> Result<Recipe, Problems> {
    std::thread::scope(|scope| {
        let compiling = std::thread::Builder::new()
            .name("recipe-compiler".to_owned())
            .stack_size(COMPILER_STACK_BYTES)
            .spawn_scoped(scope, || compile_on_this_thread(text, catalog));
        match compiling.map(|handle| handle.join()) {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Problems(vec![Problem::new(
                Span::new(1, 1),
                "the recipe compiler failed on this document; please report it",
            )])),
            Err(_) => compile_on_this_thread(text, catalog),
        }
    })
}

fn compile_on_this_thread(text: &str, catalog: &dyn Catalog) -> Result<Recipe, Problems> {
    let root = parse_document(text).map_err(|problem| Problems(vec![problem]))?;
    let mut compiler = Compiler::new(text, catalog);
    let recipe = compiler.recipe(&root);
    compiler.check_references();
    let mut problems = compiler.problems;
    if problems.is_empty() {
        if let Some(recipe) = recipe {
            return Ok(recipe);
        }
        problems.push(Problem::new(root.span, "the recipe could not be read"));
    }
    problems.sort();
    problems.dedup();
    Err(Problems(problems))
}

/// The compiler's state while it walks one document.
pub struct Compiler<'a> {
    /// The document's lines, for placing problems inside string values.
    lines: Vec<&'a str>,
    catalog: &'a dyn Catalog,
    problems: Vec<Problem>,
    /// Every step id seen, with where it was first defined.
    step_ids: HashMap<String, Span>,
    /// Step ids in the order they were defined.
    id_order: Vec<String>,
    /// Step ids that have run by the place being compiled.
    visible: HashSet<String>,
    step_count: usize,
    references: ReferenceCheck,
}

impl<'a> Compiler<'a> {
    fn new(source: &'a str, catalog: &'a dyn Catalog) -> Self {
        Compiler {
            lines: source.lines().collect(),
            catalog,
            problems: Vec::new(),
            step_ids: HashMap::new(),
            id_order: Vec::new(),
            visible: HashSet::new(),
            step_count: 0,
            references: ReferenceCheck::default(),
        }
    }

    pub fn problem(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push(Problem::new(span, message));
    }

    fn check_duplicate_keys(&mut self, entries: &[(Key, Node)]) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (key, _) in entries {
            if let Some(first) = seen.get(key.name.as_str()) {
                let message = format!(
                    "duplicate key `{}` (first at line {})",
                    key.name, first.line
                );
                self.problem(key.span, message);
            } else {
                seen.insert(&key.name, key.span);
            }
        }
    }

    fn recipe(&mut self, root: &Node) -> Option<Recipe> {
        let mut map = MapReader::open(self, root, "a recipe")?;
        let name = map
            .require(self, "name")
            .and_then(|node| self.string(node, "name"));
        if name.as_deref().is_some_and(|name| name.trim().is_empty()) {
            self.problem(map.span, "the recipe's name must not be empty");
        }
        let description = map
            .take("description")
            .and_then(|node| self.string(node, "description"));
        let trigger = map
            .require(self, "trigger")
            .and_then(|node| self.trigger(node));
        let vars = map
            .take("vars")
            .map(|node| self.vars(node))
            .unwrap_or_default();
        let steps = match map.require(self, "steps") {
            Some(node) => self.step_list(node, &Scope::top(), 0),
            None => Vec::new(),
        };
        let output = map
            .take("output")
            .map(|node| self.template(node, &Scope::after_all(), "output"));
        let concurrency = map
            .take("concurrency")
            .and_then(|node| self.integer(node, "concurrency", 1, 10_000))
            .map(|n| n as u32);
        let on_failure = map
            .take("on_failure")
            .and_then(|node| self.on_failure(node));
        let retention = map.take("retention").and_then(|node| self.retention(node));
        let retry = map.take("retry").and_then(|node| self.retry(node));
        let mut mask = map
            .take("mask")
            .map(|node| self.mask(node))
            .unwrap_or_default();
        map.finish(self, RECIPE_KEYS);
        let trigger = trigger?;
        mask.extend(default_masks(&trigger));
        Some(Recipe {
            name: name?,
            workspace: crate::DEFAULT_WORKSPACE.to_owned(),
            description,
            trigger,
            vars,
            steps,
            output,
            concurrency,
            on_failure,
            retention,
            retry,
            mask,
        })
    }

    fn vars(&mut self, node: &Node) -> Vec<(String, TemplateValue)> {
        let Some(mut map) = MapReader::open(self, node, "vars") else {
            return Vec::new();
        };
        let scope = Scope::vars();
        map.remaining()
            .into_iter()
            .map(|(key, value)| {
                self.check_identifier(key, "variable name");
                (key.name.clone(), self.template(value, &scope, "a variable"))
            })
            .collect()
    }

    fn check_identifier(&mut self, key: &Key, what: &str) {
        if !is_identifier(&key.name) {
            self.problem(
                key.span,
                format!("`{}` is not a valid {what}: use lower-case letters, digits and `_`, starting with a letter", key.name),
            );
        }
    }

    fn on_failure(&mut self, node: &Node) -> Option<OnFailure> {
        let mut map = MapReader::open(self, node, "on_failure")?;
        let notify = match map.take("notify") {
            Some(list) => self
                .list(list, "notify")
                .unwrap_or_default()
                .iter()
                .filter_map(|item| {
                    let address = self.string(item, "an address to notify")?;
                    if !address.contains('@') || address.contains(char::is_whitespace) {
                        self.problem(item.span, format!("`{address}` is not an email address"));
                    }
                    Some(address)
                })
                .collect(),
            None => Vec::new(),
        };
        let call = map.take("call").and_then(|node| {
            let name = self.string(node, "on_failure.call")?;
            if name.trim().is_empty() {
                self.problem(node.span, "on_failure.call needs the name of a recipe");
            }
            Some(name)
        });
        map.finish(self, &["notify", "call"]);
        Some(OnFailure { notify, call })
    }

    fn retention(&mut self, node: &Node) -> Option<Retention> {
        let mut map = MapReader::open(self, node, "retention")?;
        let keep = map
            .take("keep")
            .and_then(|node| self.duration(node, "retention.keep"));
        let record = match map.take("record") {
            Some(node) => {
                match self.choice(node, "retention.record", &["full", "masked", "metadata"])? {
                    "full" => RecordLevel::Full,
                    "metadata" => RecordLevel::Metadata,
                    _ => RecordLevel::Masked,
                }
            }
            None => RecordLevel::Masked,
        };
        map.finish(self, &["keep", "record"]);
        Some(Retention { keep, record })
    }

    fn mask(&mut self, node: &Node) -> Vec<MaskPath> {
        let Some(items) = self.list(node, "mask") else {
            return Vec::new();
        };
        let mut paths = Vec::new();
        for item in items {
            let Some(text) = self.string(item, "a mask path") else {
                continue;
            };
            let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
            let root_ok = matches!(
                segments[0].as_str(),
                "trigger" | "steps" | "vars" | "output"
            );
            if !root_ok || segments.iter().any(String::is_empty) {
                self.problem(
                    item.span,
                    format!("`{text}` is not a mask path: it starts with trigger, steps, vars or output and joins keys with `.`, as in `trigger.body.card_number` or `steps.*.output.token`"),
                );
                continue;
            }
            if segments[0] == "steps" {
                match segments.get(1) {
                    Some(id) if id != "*" => self.references.add(Reference::mask(id, item.span)),
                    Some(_) => {}
                    None => self.problem(
                        item.span,
                        "a mask path under `steps` names a step id or `*`",
                    ),
                }
            }
            paths.push(MaskPath { segments });
        }
        paths
    }

    /// Compiles a value that may hold templates, checking the names they use.
    fn template(&mut self, node: &Node, scope: &Scope, what: &str) -> TemplateValue {
        let mut strings = Vec::new();
        let value = self.template_value(node, &mut strings);
        for (span, text, variables) in strings {
            self.check_names(&variables, span, &text, scope, what);
        }
        value
    }

    /// Compiles the strings of a value; for each string with templates, notes where it is
    /// and the variables it reads.
    fn template_value(
        &mut self,
        node: &Node,
        strings: &mut Vec<(Span, String, BTreeSet<String>)>,
    ) -> TemplateValue {
        match &node.value {
            NodeValue::String(text) => match TemplateValue::compile_string(text) {
                Ok(value) => {
                    if !value.is_literal() {
                        strings.push((node.span, text.clone(), value.variables()));
                    }
                    value
                }
                Err(problem) => {
                    let span = self.locate(node.span, text, problem.offset);
                    self.problem(span, problem.message);
                    TemplateValue::Literal(serde_json::Value::Null)
                }
            },
            NodeValue::Seq(items) => {
                let items: Vec<TemplateValue> = items
                    .iter()
                    .map(|item| self.template_value(item, strings))
                    .collect();
                if items.iter().all(TemplateValue::is_literal) {
                    TemplateValue::Literal(node.to_json())
                } else {
                    TemplateValue::Array(items)
                }
            }
            NodeValue::Map(entries) => {
                self.check_duplicate_keys(entries);
                let entries: Vec<(String, TemplateValue)> = entries
                    .iter()
                    .map(|(key, value)| (key.name.clone(), self.template_value(value, strings)))
                    .collect();
                if entries.iter().all(|(_, value)| value.is_literal()) {
                    TemplateValue::Literal(node.to_json())
                } else {
                    TemplateValue::Object(entries)
                }
            }
            _ => TemplateValue::Literal(node.to_json()),
        }
    }

    /// Compiles a bare expression (`if:`, `for_each:`), with or without `{{ }}` around it.
    fn expression(&mut self, node: &Node, scope: &Scope, what: &str) -> Option<Expression> {
        let text = match &node.value {
            NodeValue::String(text) => text.clone(),
            NodeValue::Bool(_) | NodeValue::Number(_) | NodeValue::Null => {
                node.to_json().to_string()
            }
            _ => {
                self.problem(
                    node.span,
                    format!("{what} must be an expression, not {}", node.kind()),
                );
                return None;
            }
        };
        let (inner, offset) = strip_braces(&text);
        if inner.trim().is_empty() {
            self.problem(node.span, format!("{what} is empty"));
            return None;
        }
        match Expression::compile(inner) {
            Ok(expression) => {
                self.check_names(&expression.variables(), node.span, &text, scope, what);
                Some(expression)
            }
            Err(error) => {
                let span = self.locate(node.span, &text, offset + error.offset);
                self.problem(
                    span,
                    format!("expression syntax error in {what}: {}", error.message),
                );
                None
            }
        }
    }

    fn jq(&mut self, node: &Node, scope: &Scope, what: &str) -> Option<JqProgram> {
        let text = self.string(node, what)?;
        match JqProgram::compile(&text) {
            Ok(program) => {
                for id in references::jq_step_references(&text) {
                    self.references.add(Reference::step(
                        &id,
                        node.span,
                        scope.after_all || self.visible.contains(&id),
                    ));
                }
                Some(program)
            }
            Err(errors) => {
                for error in errors {
                    let span = self.locate(node.span, &text, error.offset);
                    self.problem(span, error.message.to_string());
                }
                None
            }
        }
    }

    /// Checks the names a template reads: the context's own, and steps that exist and have run.
    /// `text` is the string the names were read from, so that each problem points at its name.
    fn check_names(
        &mut self,
        variables: &BTreeSet<String>,
        span: Span,
        text: &str,
        scope: &Scope,
        what: &str,
    ) {
        for path in variables {
            let mut segments = path.split('.');
            let root = segments.next().unwrap_or_default();
            if root == "steps" {
                if let Some(id) = segments.next() {
                    let at = self.locate_name(span, text, &format!("steps.{id}"));
                    self.references.add(Reference::step(
                        id,
                        at,
                        scope.after_all || self.visible.contains(id),
                    ));
                }
                continue;
            }
            if !scope.allows(root) && !references::is_global(root) {
                let at = self.locate_name(span, text, root);
                self.problem(at, scope.unknown_name_message(root, what));
            }
        }
    }

    /// Where a name is used in a string value: its first use as a whole word.
    fn locate_name(&self, span: Span, text: &str, name: &str) -> Span {
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let found = text.match_indices(name).find(|(at, _)| {
            let before = text[..*at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            !before.is_some_and(|c| is_word(c) || c == '.') && !after.is_some_and(is_word)
        });
        match found {
            Some((at, _)) => self.locate(span, text, at),
            None => span,
        }
    }

    /// Where a byte offset of a string value is in the file. Exact when the string is written
    /// on one line, plain or quoted, or as a block; otherwise the start of the value.
    fn locate(&self, span: Span, text: &str, offset: usize) -> Span {
        let offset = offset.min(text.len());
        let line_of_offset = text[..offset].matches('\n').count();
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let column_chars = text[line_start..offset].chars().count();
        let lines = &self.lines;
        let text_line = text[line_start..].lines().next().unwrap_or_default();
        let line_index = span.line as usize - 1;
        if line_of_offset == 0
            && let Some(source_line) = lines.get(line_index)
        {
            let from: String = source_line.chars().skip(span.col as usize - 1).collect();
            if from.starts_with(text_line) {
                return span.shifted(column_chars);
            }
            if from[1.min(from.len())..].starts_with(text_line) {
                return span.shifted(column_chars + 1);
            }
        }
        // A block scalar (`|` or `>`) starts on the line after its indicator.
        for candidate in [line_index + 1 + line_of_offset, line_index + line_of_offset] {
            if let Some(source_line) = lines.get(candidate)
                && !text_line.is_empty()
                && let Some(at) = source_line.find(text_line)
            {
                let col = source_line[..at].chars().count() + column_chars + 1;
                return Span::new(candidate as u32 + 1, col as u32);
            }
        }
        span
    }

    fn check_references(&mut self) {
        let problems = self.references.resolve(&self.step_ids);
        self.problems.extend(problems);
    }
}

/// Fields masked whatever the recipe says: a webhook caller's credentials and signature are
/// secrets of the caller, and job history must not keep them.
fn default_masks(trigger: &crate::model::Trigger) -> Vec<MaskPath> {
    let crate::model::Trigger::Webhook(webhook) = trigger else {
        return Vec::new();
    };
    let mut headers = vec![
        "authorization".to_owned(),
        "cookie".to_owned(),
        "proxy-authorization".to_owned(),
    ];
    if let Some(signature) = &webhook.signature {
        headers.push(signature.scheme.header().to_owned());
    }
    headers
        .into_iter()
        .map(|header| MaskPath {
            segments: vec!["trigger".to_owned(), "headers".to_owned(), header],
        })
        .collect()
}

/// `{{ expr }}` → `expr`, with the offset of `expr` in the text.
fn strip_braces(text: &str) -> (&str, usize) {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        && !inner.contains("{{")
    {
        let start = text.find("{{").unwrap_or(0) + 2;
        return (inner, start);
    }
    (text, 0)
}

/// `[a-z][a-z0-9_]*`: step ids and variable names.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// What names a template may use at one place in a recipe.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Loop variables in force: the `as` names, plus `item` and `index`.
    pub loop_names: Vec<String>,
    pub in_error_handler: bool,
    pub with_cursor: bool,
    /// In a `vars:` value: only the trigger and the job exist yet.
    pub before_steps: bool,
    /// After every step: all ids visible.
    pub after_all: bool,
}

impl Scope {
    fn top() -> Scope {
        Scope {
            loop_names: Vec::new(),
            in_error_handler: false,
            with_cursor: false,
            before_steps: false,
            after_all: false,
        }
    }

    fn after_all() -> Scope {
        Scope {
            after_all: true,
            ..Scope::top()
        }
    }

    fn vars() -> Scope {
        Scope {
            before_steps: true,
            ..Scope::top()
        }
    }

    fn poll_input() -> Scope {
        Scope {
            with_cursor: true,
            before_steps: true,
            ..Scope::top()
        }
    }

    fn allows(&self, name: &str) -> bool {
        match name {
            "trigger" | "job" => true,
            "vars" | "steps" => !self.before_steps || name == "vars",
            "error" => self.in_error_handler,
            "cursor" => self.with_cursor,
            "item" | "index" => !self.loop_names.is_empty(),
            other => self.loop_names.iter().any(|loop_name| loop_name == other),
        }
    }

    fn unknown_name_message(&self, name: &str, what: &str) -> String {
        match name {
            "item" | "index" => format!("`{name}` is only set inside a for_each loop (in {what})"),
            "error" => format!("`error` is only set inside on_error steps (in {what})"),
            "cursor" => format!("`cursor` is only set in a poll trigger's input (in {what})"),
            "steps" => format!("no step has run yet where {what} is evaluated"),
            _ => {
                let mut known = vec!["trigger", "steps", "vars", "job"];
                if !self.loop_names.is_empty() {
                    known.extend(["item", "index"]);
                }
                let hint = match closest(name, &known) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => format!(" (a template can use {})", known.join(", ")),
                };
                format!("unknown name `{name}` in {what}{hint}")
            }
        }
    }
}

#[cfg(test)]
mod never_panics;
#[cfg(test)]
mod tests;
