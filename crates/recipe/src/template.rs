//! Templates and expressions in recipe values, evaluated with minijinja.
//!
//! A string that is exactly one `{{ expression }}` keeps the expression's JSON type; a string
//! with text around its templates renders to text. Values are compiled once, when the recipe
//! is, and evaluated many times against a job's context.

use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value as MjValue};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use crate::filters;
use crate::text::shorten;

/// Instructions one evaluation may run before it is cut off: a template that loops forever
/// stops here with a clear error.
pub const TEMPLATE_FUEL: u64 = 2_000_000;
/// Largest number of values one evaluation may produce: stops results that grow without bound.
pub const MAX_RESULT_NODES: usize = 1_000_000;
/// Largest text one evaluation may produce, in bytes.
pub const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;

/// The one template environment, shared by every recipe: filters and limits are the same for
/// all, and compiled expressions can then live as long as the recipe that holds them.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(build_environment);

fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_formatter(|out, _state, value| {
        out.write_str(&text_of(value)).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::WriteFailure,
                "cannot write the output",
            )
        })
    });
    // It would print the whole context, secrets and all, into a record.
    env.remove_global("debug");
    filters::register(&mut env);
    env
}

/// Names a template can use without their being recipe data.
pub fn global_names() -> BTreeSet<String> {
    ENVIRONMENT
        .globals()
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// How a value reads inside text: strings as they are, null as nothing, lists and objects as
/// JSON, so that `"total: {{ order }}"` shows JSON rather than a Python-like form.
pub fn text_of(value: &MjValue) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => String::new(),
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => match to_json(value) {
            Ok(Value::String(text)) => text,
            Ok(json) => json.to_string(),
            Err(_) => value.to_string(),
        },
    }
}

/// An error from evaluating a template or expression. The message names the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (in `{expression}`)")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

impl EvalError {
    fn new(expression: &str, error: &minijinja::Error) -> Self {
        EvalError {
            expression: shorten(expression, QUOTED_CHARS),
            message: describe(error),
        }
    }
}

/// The message of a minijinja error without its "(in <expression>:1)" suffix.
pub fn describe(error: &minijinja::Error) -> String {
    let detail = error.detail().map(str::to_owned);
    let message = match error.kind() {
        minijinja::ErrorKind::OutOfFuel => "the expression ran too long and was stopped (a template may run at most 2,000,000 instructions)".to_owned(),
        minijinja::ErrorKind::UnknownFilter => format!("unknown filter{}", detail.map(|d| format!(": {d}")).unwrap_or_default()),
        minijinja::ErrorKind::UnknownFunction => format!("unknown function{}", detail.map(|d| format!(": {d}")).unwrap_or_default()),
        kind => match detail {
            Some(detail) => format!("{kind}: {detail}"),
            None => kind.to_string(),
        },
    };
    let mut message = message;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// How much of an expression a message quotes.
const QUOTED_CHARS: usize = 120;

/// A compiled expression: `if:` conditions, `for_each:` lists and `{{ }}` contents.
#[derive(Clone)]
pub struct Expression {
    source: Arc<str>,
    compiled: Arc<minijinja::Expression<'static, 'static>>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

/// A syntax error in a template, at a byte offset of the text that was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl Expression {
    /// Compiles a bare expression such as `steps.a.output.total > 100`.
    pub fn compile(source: &str) -> Result<Expression, SyntaxError> {
        let compiled = ENVIRONMENT
            .compile_expression_owned(source.to_owned())
            .map_err(|error| syntax_error(&error))?;
        Ok(Expression {
            source: Arc::from(source),
            compiled: Arc::new(compiled),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a minijinja value, for callers that go on computing with it.
    pub fn eval_raw(&self, context: &MjValue) -> Result<MjValue, EvalError> {
        self.compiled
            .eval(context.clone())
            .map_err(|error| EvalError::new(&self.source, &error))
    }

    /// Evaluates to JSON. Undefined is null.
    pub fn eval(&self, context: &MjValue) -> Result<Value, EvalError> {
        let value = self.eval_raw(context)?;
        to_json(&value).map_err(|message| EvalError {
            expression: shorten(&self.source, QUOTED_CHARS),
            message,
        })
    }

    /// Truthiness as templates see it: empty, zero, false, null and undefined are false.
    pub fn is_true(&self, context: &MjValue) -> Result<bool, EvalError> {
        Ok(self.eval_raw(context)?.is_true())
    }

    /// The variables this expression reads, as dotted paths: `steps.a.output`.
    pub fn variables(&self) -> BTreeSet<String> {
        self.compiled
            .undeclared_variables(true)
            .into_iter()
            .collect()
    }
}

fn syntax_error(error: &minijinja::Error) -> SyntaxError {
    SyntaxError {
        offset: error.range().map(|range| range.start).unwrap_or(0),
        message: error
            .detail()
            .map(str::to_owned)
            .unwrap_or_else(|| error.kind().to_string()),
    }
}

/// A recipe value that may hold templates, compiled.
#[derive(Debug, Clone)]
pub enum TemplateValue {
    /// Holds no template: used as it is.
    Literal(Value),
    /// Exactly one `{{ expression }}`: keeps the expression's type.
    Expression(Expression),
    /// Text with `{{ }}` parts: renders to text.
    Text(Vec<TextPart>),
    /// Text with `{% %}` blocks: rendered by the full template engine.
    Block(Arc<str>),
    Array(Vec<TemplateValue>),
    Object(Vec<(String, TemplateValue)>),
}

#[derive(Debug, Clone)]
pub enum TextPart {
    Text(String),
    Expression(Expression),
}

/// A template that failed to compile, with where in its string the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// Byte offset in the string value.
    pub offset: usize,
    pub message: String,
}

impl TemplateValue {
    /// Compiles every string in a JSON value. Problems are reported with the path of the
    /// string they are in, so the caller can place them.
    pub fn compile_string(text: &str) -> Result<TemplateValue, TemplateProblem> {
        if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
            return Ok(TemplateValue::Literal(Value::String(text.to_owned())));
        }
        if text.contains("{%") || text.contains("{#") {
            return compile_block(text);
        }
        let parts = split_text(text)?;
        if let [Segment::Expression { source, offset }] = parts.as_slice()
            && text.trim().len() == text.len()
        {
            return compile_part(source, *offset).map(TemplateValue::Expression);
        }
        let mut compiled = Vec::with_capacity(parts.len());
        for part in parts {
            compiled.push(match part {
                Segment::Text(text) => TextPart::Text(text),
                Segment::Expression { source, offset } => {
                    TextPart::Expression(compile_part(&source, offset)?)
                }
            });
        }
        Ok(TemplateValue::Text(compiled))
    }

    /// True when evaluating gives the value as it is written.
    pub fn is_literal(&self) -> bool {
        matches!(self, TemplateValue::Literal(_))
    }

    /// Evaluates every template in the value against a context.
    pub fn render(&self, context: &MjValue) -> Result<Value, EvalError> {
        match self {
            TemplateValue::Literal(value) => Ok(value.clone()),
            TemplateValue::Expression(expression) => expression.eval(context),
            TemplateValue::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        TextPart::Text(text) => out.push_str(text),
                        TextPart::Expression(expression) => {
                            out.push_str(&text_of(&expression.eval_raw(context)?))
                        }
                    }
                    if out.len() > MAX_RESULT_BYTES {
                        return Err(EvalError {
                            expression: shorten(&parts_source(parts), QUOTED_CHARS),
                            message: format!(
                                "the text grew past the limit of {MAX_RESULT_BYTES} bytes"
                            ),
                        });
                    }
                }
                Ok(Value::String(out))
            }
            TemplateValue::Block(source) => ENVIRONMENT
                .render_str(source, context.clone())
                .map(Value::String)
                .map_err(|error| EvalError::new(source, &error)),
            TemplateValue::Array(items) => items
                .iter()
                .map(|item| item.render(context))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            TemplateValue::Object(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.clone(), value.render(context)?);
                }
                Ok(Value::Object(map))
            }
        }
    }

    /// The variables every template in this value reads, as dotted paths.
    pub fn variables(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        self.collect_variables(&mut found);
        found
    }

    fn collect_variables(&self, found: &mut BTreeSet<String>) {
        match self {
            TemplateValue::Literal(_) => {}
            TemplateValue::Expression(expression) => found.extend(expression.variables()),
            TemplateValue::Text(parts) => {
                for part in parts {
                    if let TextPart::Expression(expression) = part {
                        found.extend(expression.variables());
                    }
                }
            }
            TemplateValue::Block(source) => {
                if let Ok(template) = ENVIRONMENT.template_from_str(source) {
                    found.extend(template.undeclared_variables(true));
                }
            }
            TemplateValue::Array(items) => {
                items.iter().for_each(|item| item.collect_variables(found))
            }
            TemplateValue::Object(entries) => entries
                .iter()
                .for_each(|(_, value)| value.collect_variables(found)),
        }
    }
}

fn parts_source(parts: &[TextPart]) -> String {
    parts
        .iter()
        .map(|part| match part {
            TextPart::Text(text) => text.clone(),
            TextPart::Expression(expression) => format!("{{{{ {} }}}}", expression.source()),
        })
        .collect()
}

fn compile_part(source: &str, offset: usize) -> Result<Expression, TemplateProblem> {
    Expression::compile(source).map_err(|error| TemplateProblem {
        offset: offset + error.offset,
        message: format!("template syntax error: {}", error.message),
    })
}

fn compile_block(text: &str) -> Result<TemplateValue, TemplateProblem> {
    match ENVIRONMENT.template_from_str(text) {
        Ok(_) => Ok(TemplateValue::Block(Arc::from(text))),
        Err(error) => {
            let problem = syntax_error(&error);
            Err(TemplateProblem {
                offset: problem.offset,
                message: format!("template syntax error: {}", problem.message),
            })
        }
    }
}

enum Segment {
    Text(String),
    Expression { source: String, offset: usize },
}

/// Splits text into literal parts and `{{ }}` expressions. A `}}` inside a quoted string of
/// an expression does not end it.
fn split_text(text: &str) -> Result<Vec<Segment>, TemplateProblem> {
    let mut segments = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("{{") {
        let open = rest + found;
        if open > rest {
            segments.push(Segment::Text(text[rest..open].to_owned()));
        }
        let mut inner_start = open + 2;
        if text[inner_start..].starts_with(['-', '+']) {
            inner_start += 1;
        }
        let close = find_close(text, inner_start).ok_or_else(|| TemplateProblem {
            offset: open,
            message: "template syntax error: `{{` is never closed by `}}`".to_owned(),
        })?;
        let mut inner_end = close;
        if text[..inner_end].ends_with(['-', '+']) && inner_end > inner_start {
            inner_end -= 1;
        }
        let source = &text[inner_start..inner_end];
        if source.trim().is_empty() {
            return Err(TemplateProblem {
                offset: open,
                message: "template syntax error: `{{ }}` holds no expression".to_owned(),
            });
        }
        segments.push(Segment::Expression {
            source: source.to_owned(),
            offset: inner_start,
        });
        rest = close + 2;
    }
    if rest < text.len() {
        segments.push(Segment::Text(text[rest..].to_owned()));
    }
    Ok(segments)
}

fn find_close(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let byte = bytes[i];
        match quote {
            Some(_) if byte == b'\\' => i += 1,
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None if byte == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// Converts a template value to JSON, refusing results too large to hold: a cheap expression
/// such as `[1] * 10**9` builds a lazy list that would otherwise fill memory here.
pub fn to_json(value: &MjValue) -> Result<Value, String> {
    let mut budget = Budget {
        nodes: MAX_RESULT_NODES,
        bytes: MAX_RESULT_BYTES,
    };
    convert(value, &mut budget, 0)
}

struct Budget {
    nodes: usize,
    bytes: usize,
}

const MAX_RESULT_DEPTH: usize = 128;

fn convert(value: &MjValue, budget: &mut Budget, depth: usize) -> Result<Value, String> {
    if budget.nodes == 0 {
        return Err(format!(
            "the result has more than {MAX_RESULT_NODES} values"
        ));
    }
    budget.nodes -= 1;
    if depth > MAX_RESULT_DEPTH {
        return Err(format!(
            "the result nests deeper than {MAX_RESULT_DEPTH} levels"
        ));
    }
    Ok(match value.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(value.is_true()),
        ValueKind::Number => serde_json::to_value(value)
            .map_err(|error| format!("a number does not fit JSON: {error}"))?,
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            budget.bytes = budget
                .bytes
                .checked_sub(text.len())
                .ok_or_else(|| format!("the result is larger than {MAX_RESULT_BYTES} bytes"))?;
            Value::String(text.to_owned())
        }
        ValueKind::Bytes => Value::String(
            String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned(),
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in value.try_iter().map_err(|error| describe(&error))? {
                items.push(convert(&item, budget, depth + 1)?);
            }
            Value::Array(items)
        }
        ValueKind::Map => {
            let mut map = Map::new();
            for key in value.try_iter().map_err(|error| describe(&error))? {
                let item = value.get_item(&key).map_err(|error| describe(&error))?;
                let key = match key.as_str() {
                    Some(text) => text.to_owned(),
                    None => key.to_string(),
                };
                map.insert(key, convert(&item, budget, depth + 1)?);
            }
            Value::Object(map)
        }
        ValueKind::Plain | ValueKind::Invalid => Value::String(value.to_string()),
        _ => Value::String(value.to_string()),
    })
}

/// Converts JSON to a template value once, so that many evaluations can share it.
pub fn from_json(value: &Value) -> MjValue {
    MjValue::from(minijinja::value::Serde(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(text: &str, context: Value) -> Result<Value, EvalError> {
        TemplateValue::compile_string(text)
            .unwrap()
            .render(&from_json(&context))
    }

    #[test]
    fn a_lone_expression_keeps_its_type() {
        let context = json!({"trigger": {"n": 2, "items": [1, 2], "ok": true}});
        assert_eq!(render("{{ trigger.n * 2 }}", context.clone()), Ok(json!(4)));
        assert_eq!(
            render("{{ trigger.items }}", context.clone()),
            Ok(json!([1, 2]))
        );
        assert_eq!(render("{{ trigger.ok }}", context.clone()), Ok(json!(true)));
        assert_eq!(
            render("{{ trigger }}", context),
            Ok(json!({"n": 2, "items": [1, 2], "ok": true}))
        );
    }

    #[test]
    fn text_around_an_expression_makes_text_with_json_inside() {
        let context = json!({"trigger": {"n": 2, "tags": ["a"], "none": null, "yes": true}});
        assert_eq!(
            render("n={{ trigger.n }}", context.clone()),
            Ok(json!("n=2"))
        );
        assert_eq!(
            render("{{ trigger.tags }}!", context.clone()),
            Ok(json!("[\"a\"]!"))
        );
        assert_eq!(
            render("[{{ trigger.none }}] {{ trigger.yes }}", context),
            Ok(json!("[] true"))
        );
    }

    #[test]
    fn missing_fields_are_null_not_errors() {
        assert_eq!(
            render("{{ trigger.nope.deeper }}", json!({"trigger": {}})),
            Ok(Value::Null)
        );
        assert_eq!(
            render("{{ steps.later.output }}", json!({})),
            Ok(Value::Null)
        );
    }

    #[test]
    fn blocks_render_as_text() {
        let out = render(
            "{% for x in trigger.xs %}{{ x }},{% endfor %}",
            json!({"trigger": {"xs": [1, 2]}}),
        );
        assert_eq!(out, Ok(json!("1,2,")));
    }

    #[test]
    fn syntax_errors_point_into_the_string() {
        let problem = TemplateValue::compile_string("hello {{ trigger. }}").unwrap_err();
        assert!(problem.offset >= 9, "{problem:?}");
        assert!(problem.message.contains("syntax error"), "{problem:?}");
        let unclosed = TemplateValue::compile_string("hello {{ trigger").unwrap_err();
        assert_eq!(unclosed.offset, 6);
    }

    #[test]
    fn a_runaway_template_is_stopped() {
        let error = render(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            json!({}),
        )
        .unwrap_err();
        assert!(error.message.contains("too long"), "{error}");
        let lazy = render("{{ [1] * 100000000 }}", json!({})).unwrap_err();
        assert!(lazy.message.contains("more than"), "{lazy}");
    }

    #[test]
    fn variables_are_listed_as_paths() {
        let compiled =
            TemplateValue::compile_string("{{ steps.a.output.x }} and {{ trigger.body }}").unwrap();
        let found = compiled.variables();
        assert!(found.contains("steps.a.output.x"), "{found:?}");
        assert!(found.contains("trigger.body"), "{found:?}");
    }
}
