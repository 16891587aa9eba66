//! jq programs for `transform:` steps and poll triggers, compiled and run with jaq.
//!
//! jaq values are reference-counted without atomics, so a program runs start to end on one
//! thread: JSON goes in, JSON comes out. jaq has no fuel of its own; outputs are capped here
//! and the caller bounds the run time (see the engine).

use jaq_core::load::{self, Arena, File, Loader, lex, parse};
use jaq_core::{Ctx, Vars, compile, data};
use jaq_json::{Num, Val};
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

use crate::jq_direct::Direct;
use crate::text::shorten;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// jq's standard library, parsed once: parsing it anew for every program was most of the
/// time a recipe took to compile.
static PRELUDE: LazyLock<Vec<load::parse::Def<&'static str>>> = LazyLock::new(|| {
    jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .collect()
});

/// Most outputs one run may produce: `repeat(1)` stops here instead of filling memory.
pub const MAX_OUTPUTS: usize = 100_000;

/// A compiled jq program. Cheap to clone and shared between threads.
#[derive(Clone)]
pub struct JqProgram {
    source: Arc<str>,
    filter: Arc<Filter>,
    /// Finishes in time about proportional to its input: see [`crate::jq_bounds`].
    bounded: bool,
    /// The same program for the direct path, when it is of its subset: see
    /// [`crate::jq_direct`].
    direct: Option<Arc<Direct>>,
}

impl std::fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JqProgram({:?})", self.source)
    }
}

/// A problem in a jq program, at a byte offset of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JqSyntaxError {
    pub offset: usize,
    pub message: String,
}

/// A jq program that failed while it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JqRunError {
    pub message: String,
}

impl JqProgram {
    /// Compiles a program with jq's standard library. Every problem found is returned.
    pub fn compile(source: &str) -> Result<JqProgram, Vec<JqSyntaxError>> {
        let arena = Arena::default();
        let defs = PRELUDE.iter().cloned();
        let file = File {
            code: source,
            path: (),
        };
        let modules = Loader::new(defs)
            .load(&arena, file)
            .map_err(|errors| load_errors(source, errors))?;
        load::import(&modules, |_| {
            Err("importing data is not supported in recipes".to_owned())
        })
        .map_err(|errors| load_errors(source, errors))?;
        let funs = jaq_core::funs()
            .chain(jaq_std::funs().filter(|(name, _, _)| !FORBIDDEN.contains(name)))
            .chain(jaq_json::funs());
        let filter = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .flat_map(|(_, undefined)| undefined)
                    .map(|error| compile_error(source, error))
                    .collect::<Vec<_>>()
            })?;
        Ok(JqProgram {
            source: Arc::from(source),
            filter: Arc::new(filter),
            bounded: crate::jq_bounds::is_bounded(source),
            direct: Direct::compile(source).map(Arc::new),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the program cannot run long, recurse or grow without bound, so that it may
    /// run on the caller's thread without a deadline.
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// Runs the program on one input and returns every output, in order. The first error
    /// stops the run, as in jq.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, JqRunError> {
        if let Some(output) = self.direct.as_ref().and_then(|direct| direct.run(input)) {
            return Ok(vec![output]);
        }
        self.run_in_jaq(input)
    }

    /// Runs the program in jaq, never on the direct path.
    fn run_in_jaq(&self, input: &Value) -> Result<Vec<Value>, JqRunError> {
        let context = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = Vec::new();
        for output in self.filter.id.run((context, from_json(input))) {
            match output {
                Ok(value) => outputs.push(to_json(&value)),
                Err(exception) => return Err(run_error(exception)),
            }
            if outputs.len() > MAX_OUTPUTS {
                return Err(JqRunError {
                    message: format!(
                        "the program produced more than {MAX_OUTPUTS} outputs and was stopped"
                    ),
                });
            }
        }
        Ok(outputs)
    }

    /// Runs the program and expects exactly one output.
    pub fn run_one(&self, input: &Value) -> Result<Value, JqRunError> {
        let mut outputs = self.run(input)?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            0 => Err(JqRunError {
                message: "the program produced no output; it must produce exactly one (or set `collect: true`)".to_owned(),
            }),
            n => Err(JqRunError {
                message: format!("the program produced {n} outputs; it must produce exactly one (or set `collect: true`)"),
            }),
        }
    }
}

/// Natives a recipe may not call: `env` reads the server's environment, secrets and all.
/// (`halt` only ends the program, never the process: we never call `unwrap_valr`.)
const FORBIDDEN: &[&str] = &["env"];

fn run_error(exception: jaq_core::Exn<'_, Val>) -> JqRunError {
    let message = match exception.get_err() {
        Ok(error) => match error.into_val() {
            Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(&text).into_owned(),
            other => format!("{other} (not a string)"),
        },
        Err(_) => "the program stopped itself".to_owned(),
    };
    // jq quotes whole values in its messages; a record needs the gist, not the payload.
    JqRunError {
        message: shorten(&message, 300),
    }
}

fn offset_in(code: &str, part: &str) -> usize {
    let (start, at) = (code.as_ptr() as usize, part.as_ptr() as usize);
    if at >= start && at + part.len() <= start + code.len() {
        at - start
    } else {
        code.len()
    }
}

fn load_errors(code: &str, errors: load::Errors<&str, ()>) -> Vec<JqSyntaxError> {
    let mut found = Vec::new();
    for (_, error) in errors {
        match error {
            load::Error::Io(errors) => {
                found.extend(errors.into_iter().map(|(path, message)| JqSyntaxError {
                    offset: offset_in(code, path),
                    message: format!("cannot load {path}: {message}"),
                }))
            }
            load::Error::Lex(errors) => {
                found.extend(errors.into_iter().map(|error| lex_error(code, error)))
            }
            load::Error::Parse(errors) => {
                found.extend(errors.into_iter().map(|error| parse_error(code, error)))
            }
        }
    }
    found
}

fn lex_error(code: &str, (expected, found): lex::Error<&str>) -> JqSyntaxError {
    let what = found
        .chars()
        .next()
        .map_or("unexpected end of input".to_owned(), |c| {
            format!("unexpected character `{c}`")
        });
    if let lex::Expect::Delim(open) = expected {
        return JqSyntaxError {
            offset: offset_in(code, open),
            message: format!(
                "jq syntax error: `{}` is never closed",
                open.chars().next().unwrap_or('(')
            ),
        };
    }
    JqSyntaxError {
        offset: offset_in(code, found),
        message: format!("jq syntax error: expected {}, {what}", expected.as_str()),
    }
}

fn parse_error(code: &str, (expected, found): parse::Error<&str>) -> JqSyntaxError {
    let what = if found.is_empty() {
        "unexpected end of input".to_owned()
    } else {
        format!(
            "unexpected `{}`",
            found.chars().take(20).collect::<String>()
        )
    };
    JqSyntaxError {
        offset: offset_in(code, found),
        message: format!("jq syntax error: expected {}, {what}", expected.as_str()),
    }
}

fn compile_error(code: &str, (name, undefined): compile::Error<&str>) -> JqSyntaxError {
    let message = match (name, &undefined) {
        ("reduce" | "foreach", compile::Undefined::Filter(arity)) => {
            format!("jq: wrong number of arguments to {name} ({arity})")
        }
        (_, compile::Undefined::Filter(arity)) => format!("jq: unknown function `{name}/{arity}`"),
        (_, other) => format!("jq: undefined {} `{name}`", other.as_str()),
    };
    // Names of undefined functions may come from the prelude rather than the program text.
    let offset = match offset_in(code, name) {
        at if at < code.len() => at,
        _ => code.find(name).unwrap_or(code.len()),
    };
    JqSyntaxError { offset, message }
}

fn from_json(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(flag) => Val::Bool(*flag),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Val::Num(Num::from_integral(int)),
            (None, Some(uint)) => Val::Num(Num::from_integral(uint)),
            _ => Val::from(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => Val::from(text.clone()),
        Value::Array(items) => items.iter().map(from_json).collect(),
        Value::Object(map) => Val::obj(
            map.iter()
                .map(|(key, item)| (Val::from(key.clone()), from_json(item)))
                .collect(),
        ),
    }
}

fn to_json(value: &Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(flag) => Value::Bool(*flag),
        Val::Num(Num::Int(int)) => Value::from(*int as i64),
        Val::Num(Num::Float(float)) => {
            serde_json::Number::from_f64(*float).map_or(Value::Null, Value::Number)
        }
        Val::Num(other) => {
            let text = other.to_string();
            text.parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .unwrap_or_else(|_| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                })
        }
        Val::TStr(text) | Val::BStr(text) => {
            Value::String(String::from_utf8_lossy(text).into_owned())
        }
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Obj(map) => {
            let mut object = Map::with_capacity(map.len());
            for (key, item) in map.iter() {
                let key = match key {
                    Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(text).into_owned(),
                    other => other.to_string(),
                };
                object.insert(key, to_json(item));
            }
            Value::Object(object)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Programs of the direct path's subset, each of which must take it.
    const DIRECT: &[&str] = &[
        "{email: (.trigger.body.email | ascii_downcase), name: (.trigger.body.name | ascii_upcase), total: (.trigger.body.amount * 1.2), items: (.trigger.body.items | length)}",
        ".",
        ".a",
        ".a.b",
        ".arr[0]",
        ".arr[-1]",
        ".arr[7]",
        ".arr[-9]",
        ".[\"a b\"]",
        ".a?",
        ".\"s\"",
        "{a, b: .s}",
        "{\"k\": 1, k2: \"s\", k: 3}",
        "{(\"x\"): .n}",
        "[.a, .s, 1, null, true, false]",
        "[]",
        "{}",
        ".n + 1",
        ".n - 1",
        ".n * 2",
        ".n / 2",
        ".n / 0",
        ".n % 3",
        ".n % 0",
        ".f * 1.2",
        ".n * 1.5",
        ".f - .n",
        ".f / .f",
        ".f % 2",
        "-.n",
        "-.f",
        ".s + \"!\"",
        ".arr + [4]",
        ".obj + {z: 1, x: 9}",
        "null + .n",
        ".n + null",
        "1e3",
        "1.0",
        "-1",
        "9223372036854775807 + 1",
        ".n * 4611686018427387904",
        "-(-9223372036854775807 - 1)",
        ".n > 1",
        ".n >= 3",
        ".n < .f",
        ".n <= 2.5",
        ".s == \"Hello\"",
        ".n == 3.0",
        ".n != .f",
        "null < false",
        "false < true",
        "true < 0",
        "0 < \"\"",
        "\"a\" < \"b\"",
        "\"B\" < \"a\"",
        "0.0 == -0.0",
        ".arr == [1, 2, 3]",
        ".a and .b",
        ".a or .b",
        ".missing and .b",
        ".b or .n",
        ".missing // \"default\"",
        ".n // 0",
        "false // null // 7",
        ".s | ascii_downcase",
        ".s | ascii_upcase | length",
        ".arr | length",
        ".obj | length",
        "null | length",
        ".n | length",
        ".f | length",
        ".b | not",
        ".missing | not",
        "if .n > 1 then \"big\" elif .n == 1 then \"one\" else \"small\" end",
        "if .b then 1 end",
        ".s.x",
        ".arr.x",
        ".obj[0]",
        ".n | ascii_downcase",
        ".b | length",
        ".s - 1",
        ".s * 2",
        ".arr - [1]",
        "{a: 1} * {a: {b: 2}}",
        ".s / \"l\"",
        ".a.b.c.d",
        ".obj.x + .n * 2 - 1",
        "(.n | . * .) + (.f | -.)",
        ".arr[0] + .arr[1] * .arr[2]",
    ];

    /// Programs outside the subset: jaq alone runs them.
    const NOT_DIRECT: &[&str] = &[
        "\"\\(.s)\"",
        ".arr[]",
        ".a as $x | $x",
        ".n, .f",
        "empty",
        "[.arr[] | . + 1]",
        "{(.s): 1}",
        ".arr[.n]",
        ".arr[1:]",
        "tostring",
        "def f: 1; f",
        "@base64 \"x\"",
        "reduce .arr[] as $x (0; . + $x)",
        ".a |= 1",
        "keys",
        "100000000000000000000",
    ];

    fn inputs() -> Vec<Value> {
        let typical = json!({
            "n": 3, "f": 2.5, "s": "Hello", "arr": [1, 2, 3], "obj": {"x": 1}, "b": true,
            "a": {"b": 1}, "a b": 5,
            "trigger": {"body": {"email": "Ann.Smith@Example.COM", "name": "Ann Smith",
                                  "amount": 99.5, "items": [{"sku": "a"}, {"sku": "b"}]}}
        });
        let mut inputs = vec![typical.clone(), Value::Null, json!([1, 2]), json!("text")];
        for (field, value) in [
            ("n", json!(-4)),
            ("n", json!(0)),
            ("n", json!(9223372036854775807_i64)),
            ("n", json!(18446744073709551615_u64)),
            ("n", json!(-9223372036854775807_i64 - 1)),
            ("f", json!(1e300)),
            ("f", json!(-0.0)),
            ("s", json!("ÄÖü straße")),
            ("n", json!(2.0)),
            ("b", json!(null)),
            ("a", json!(false)),
            ("arr", json!([])),
            ("obj", json!({})),
            ("s", json!(null)),
            ("n", json!("3")),
            ("trigger", json!({"body": {"amount": 7}})),
        ] {
            let mut input = typical.clone();
            input[field] = value;
            inputs.push(input);
        }
        inputs
    }

    /// The direct path answers only what jaq answers, and exactly as jaq does: the same
    /// types of numbers, the same key order, the same results.
    #[test]
    fn the_direct_path_agrees_with_jaq() {
        let mut answered = 0;
        for source in DIRECT {
            let program = JqProgram::compile(source).expect(source);
            let direct = program
                .direct
                .as_ref()
                .unwrap_or_else(|| panic!("{source} should take the direct path"));
            for input in inputs() {
                let Some(output) = direct.run(&input) else {
                    continue;
                };
                answered += 1;
                let by_jaq = program.run_in_jaq(&input);
                assert_eq!(
                    by_jaq.as_ref().ok(),
                    Some(&vec![output.clone()]),
                    "{source} on {input}: direct {output}, jaq {by_jaq:?}"
                );
                // Same text too: an integer and a float of one value print differently.
                assert_eq!(
                    serde_json::to_string(&by_jaq.expect("jaq's output")[0]).ok(),
                    serde_json::to_string(&output).ok(),
                    "{source} on {input}"
                );
            }
        }
        assert!(
            answered > 1_000,
            "the direct path answered only {answered} runs"
        );
        for source in NOT_DIRECT {
            let program = JqProgram::compile(source).expect(source);
            assert!(program.direct.is_none(), "{source} is not of the subset");
        }
    }

    #[test]
    fn what_the_direct_path_leaves_runs_in_jaq_all_the_same() {
        let program = JqProgram::compile(".s | ascii_downcase").expect("compiles");
        assert!(program.direct.is_some());
        let error = program
            .run(&json!({"s": 7}))
            .expect_err("a number has no case");
        assert!(error.message.contains("7"), "{}", error.message);
        let program = JqProgram::compile(".n * 4611686018427387904").expect("compiles");
        let big = program.run_one(&json!({"n": 4})).expect("a big integer");
        assert_eq!(big.as_f64(), Some(18446744073709551616.0));
    }

    #[test]
    fn runs_a_program_on_json() {
        let program =
            JqProgram::compile("{email: (.trigger.body.email | ascii_downcase), total: (.n * 2)}")
                .unwrap();
        let out = program
            .run_one(&json!({"trigger": {"body": {"email": "A@B.C"}}, "n": 21}))
            .unwrap();
        assert_eq!(out, json!({"email": "a@b.c", "total": 42}));
    }

    #[test]
    fn collects_every_output_in_order() {
        let program = JqProgram::compile(".[] | . * 10").unwrap();
        assert_eq!(
            program.run(&json!([1, 2, 3])).unwrap(),
            vec![json!(10), json!(20), json!(30)]
        );
        assert!(
            program
                .run_one(&json!([1, 2]))
                .unwrap_err()
                .message
                .contains("2 outputs")
        );
    }

    #[test]
    fn syntax_errors_have_offsets() {
        let errors = JqProgram::compile(".a | {b: }").unwrap_err();
        assert!(!errors.is_empty());
        assert!(errors[0].offset >= 5, "{errors:?}");
        let unknown = JqProgram::compile(".a | nosuchfn").unwrap_err();
        assert_eq!(unknown[0].offset, 5);
        assert!(unknown[0].message.contains("nosuchfn"), "{unknown:?}");
    }

    #[test]
    fn runtime_errors_have_jq_messages() {
        let program = JqProgram::compile(".a + 1").unwrap();
        let error = program.run(&json!({"a": "text"})).unwrap_err();
        assert!(error.message.contains("cannot"), "{error}");
        let raised = JqProgram::compile("error(\"custom\")")
            .unwrap()
            .run(&json!(null))
            .unwrap_err();
        assert_eq!(raised.message, "custom");
    }

    #[test]
    fn endless_output_is_cut_off() {
        let error = JqProgram::compile("repeat(1)")
            .unwrap()
            .run(&json!(null))
            .unwrap_err();
        assert!(error.message.contains("stopped"), "{error}");
    }

    #[test]
    fn the_server_environment_is_out_of_reach() {
        assert!(JqProgram::compile("env").is_err());
        assert!(JqProgram::compile("$ENV").is_err());
    }
}
