//! The direct path for the jq programs recipes write most: field mappings.
//!
//! `{email: (.trigger.body.email | ascii_downcase), total: (.body.amount * 1.2)}` needs no
//! iteration, and jaq runs it at some 10 µs a call, most of it spent converting the input to
//! its own values and building its iterators. A program made only of the forms below is also
//! compiled into a small tree that is evaluated on the JSON input itself, in a microsecond or
//! two: paths with literal keys, literals, object and array construction, arithmetic,
//! comparisons, `and`, `or`, `//`, `if`, `not`, `length`, `ascii_downcase` and
//! `ascii_upcase`.
//!
//! The direct path gives jaq's answer or none: every operation follows jaq's own rules
//! (numbers stay integers or become floats exactly as jaq's do), and whatever it does not
//! model (an error, an empty result, a big integer, a type it leaves alone) makes it step
//! aside, and the program runs in jaq. A test runs both on a corpus of programs and inputs.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::{Cmp, Math};
use jaq_core::path::{Opt, Part};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// A compiled program of the direct subset.
#[derive(Debug)]
pub(crate) enum Direct {
    Identity,
    Literal(Value),
    Path(Box<Direct>, Vec<Key>),
    Object(Vec<(String, Direct)>),
    Array(Vec<Direct>),
    Pipe(Box<Direct>, Box<Direct>),
    Math(Box<Direct>, Math, Box<Direct>),
    Negate(Box<Direct>),
    Compare(Box<Direct>, Cmp, Box<Direct>),
    And(Box<Direct>, Box<Direct>),
    Or(Box<Direct>, Box<Direct>),
    Alternative(Box<Direct>, Box<Direct>),
    If(Vec<(Direct, Direct)>, Box<Direct>),
    Call(Builtin),
}

#[derive(Debug)]
pub(crate) enum Key {
    Field(String),
    Index(i64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Builtin {
    Length,
    Not,
    AsciiDowncase,
    AsciiUpcase,
}

impl Direct {
    /// The direct form of `source`, when the whole program is of the direct subset.
    pub(crate) fn compile(source: &str) -> Option<Direct> {
        let term = jaq_core::load::parse(source, |parser| parser.term())?;
        from_term(&term)
    }

    /// The program's one output, or `None` when jaq must answer instead.
    pub(crate) fn run(&self, input: &Value) -> Option<Value> {
        self.eval(input).map(Out::into_owned)
    }

    fn eval<'a>(&'a self, input: &'a Value) -> Option<Out<'a>> {
        Some(match self {
            Direct::Identity => Out::Borrowed(input),
            Direct::Literal(value) => Out::Borrowed(value),
            Direct::Path(base, keys) => {
                let mut at = Out::Borrowed(input);
                if !matches!(**base, Direct::Identity) {
                    at = base.eval(input)?;
                }
                for key in keys {
                    at = at.index(key)?;
                }
                at
            }
            Direct::Object(fields) => {
                let mut object = Map::with_capacity(fields.len());
                for (key, value) in fields {
                    object.insert(key.clone(), value.eval(input)?.into_owned());
                }
                Out::Owned(Value::Object(object))
            }
            Direct::Array(items) => Out::Owned(Value::Array(
                items
                    .iter()
                    .map(|item| item.eval(input).map(Out::into_owned))
                    .collect::<Option<_>>()?,
            )),
            Direct::Pipe(first, then) => match first.eval(input)? {
                Out::Borrowed(value) => then.eval(value)?,
                Out::Owned(value) => Out::Owned(then.eval(&value)?.into_owned()),
            },
            Direct::Math(left, op, right) => {
                // jq evaluates the right side first; with one output each, only errors could
                // tell, and an error hands the program to jaq anyway.
                let right = right.eval(input)?;
                let left = left.eval(input)?;
                Out::Owned(math(left, *op, right)?)
            }
            Direct::Negate(inner) => Out::Owned(negate(inner.eval(input)?.get())?),
            Direct::Compare(left, op, right) => {
                let right = right.eval(input)?;
                let left = left.eval(input)?;
                Out::Owned(Value::Bool(compare(left.get(), *op, right.get())?))
            }
            Direct::And(left, right) => {
                let holds = truthy(left.eval(input)?.get()) && truthy(right.eval(input)?.get());
                Out::Owned(Value::Bool(holds))
            }
            Direct::Or(left, right) => {
                let holds = truthy(left.eval(input)?.get()) || truthy(right.eval(input)?.get());
                Out::Owned(Value::Bool(holds))
            }
            Direct::Alternative(first, otherwise) => {
                let first = first.eval(input)?;
                if truthy(first.get()) {
                    first
                } else {
                    otherwise.eval(input)?
                }
            }
            Direct::If(branches, otherwise) => {
                for (condition, then) in branches {
                    if truthy(condition.eval(input)?.get()) {
                        return then.eval(input);
                    }
                }
                otherwise.eval(input)?
            }
            Direct::Call(builtin) => Out::Owned(call(*builtin, input)?),
        })
    }
}

static NULL: Value = Value::Null;

/// A value computed from the input: borrowed where it is a part of it, so that a path costs
/// no copy until it is placed in the output.
enum Out<'a> {
    Borrowed(&'a Value),
    Owned(Value),
}

impl<'a> Out<'a> {
    fn get(&self) -> &Value {
        match self {
            Out::Borrowed(value) => value,
            Out::Owned(value) => value,
        }
    }

    fn into_owned(self) -> Value {
        match self {
            Out::Borrowed(value) => value.clone(),
            Out::Owned(value) => value,
        }
    }

    /// `.key` or `.[n]`: `null` for what is missing, as jq; `None` where jq fails.
    fn index(self, key: &Key) -> Option<Out<'a>> {
        let found = |value: Option<&Value>| value.cloned().unwrap_or(Value::Null);
        match self {
            Out::Borrowed(value) => Some(match (value, key) {
                (Value::Null, _) => Out::Borrowed(&NULL),
                (Value::Object(map), Key::Field(name)) => {
                    map.get(name).map_or(Out::Borrowed(&NULL), Out::Borrowed)
                }
                (Value::Array(items), Key::Index(at)) => {
                    element(items, *at).map_or(Out::Borrowed(&NULL), Out::Borrowed)
                }
                _ => return None,
            }),
            Out::Owned(value) => Some(Out::Owned(match (&value, key) {
                (Value::Null, _) => Value::Null,
                (Value::Object(map), Key::Field(name)) => found(map.get(name)),
                (Value::Array(items), Key::Index(at)) => found(element(items, *at)),
                _ => return None,
            })),
        }
    }
}

/// `.[n]`, counting from the end for a negative `n`.
fn element(items: &[Value], at: i64) -> Option<&Value> {
    let at = if at < 0 {
        i64::try_from(items.len()).ok()? + at
    } else {
        at
    };
    usize::try_from(at).ok().and_then(|at| items.get(at))
}

fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// A number as jaq holds it: an integer that fits a machine word, or a float. Integers
/// beyond that (jaq's big integers) are left to jaq.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(value: &Value) -> Option<Num> {
        let Value::Number(number) = value else {
            return None;
        };
        if let Some(int) = number.as_i64() {
            Some(Num::Int(int))
        } else if number.is_u64() {
            None
        } else {
            number.as_f64().map(Num::Float)
        }
    }

    fn float(self) -> f64 {
        match self {
            Num::Int(int) => int as f64,
            Num::Float(float) => float,
        }
    }

    /// As jaq writes it out: an integer, or a float (`null` for NaN and infinities).
    fn value(self) -> Value {
        match self {
            Num::Int(int) => Value::from(int),
            Num::Float(float) => Number::from_f64(float).map_or(Value::Null, Value::Number),
        }
    }
}

fn math(left: Out<'_>, op: Math, right: Out<'_>) -> Option<Value> {
    if let (Some(l), Some(r)) = (Num::of(left.get()), Num::of(right.get())) {
        return arithmetic(l, op, r).map(Num::value);
    }
    if !matches!(op, Math::Add) {
        return None;
    }
    // `+` on anything else: null is neutral; strings and arrays join; objects merge.
    match (left.into_owned(), right.into_owned()) {
        (Value::Null, other) | (other, Value::Null) => Some(other),
        (Value::String(mut l), Value::String(r)) => {
            l.push_str(&r);
            Some(Value::String(l))
        }
        (Value::Array(mut l), Value::Array(r)) => {
            l.extend(r);
            Some(Value::Array(l))
        }
        (Value::Object(mut l), Value::Object(r)) => {
            l.extend(r);
            Some(Value::Object(l))
        }
        _ => None,
    }
}

/// jaq's rules: integers stay integers while they fit, `/` always gives a float, and a
/// float on either side makes a float.
fn arithmetic(l: Num, op: Math, r: Num) -> Option<Num> {
    use Num::{Float, Int};
    Some(match (l, op, r) {
        (Int(x), Math::Add, Int(y)) => Int(x.checked_add(y)?),
        (Int(x), Math::Sub, Int(y)) => Int(x.checked_sub(y)?),
        (Int(x), Math::Mul, Int(y)) => Int(x.checked_mul(y)?),
        (Int(_), Math::Rem, Int(0)) => return None,
        (Int(x), Math::Rem, Int(y)) => Int(x.checked_rem(y).unwrap_or(0)),
        (l, Math::Add, r) => Float(l.float() + r.float()),
        (l, Math::Sub, r) => Float(l.float() - r.float()),
        (l, Math::Mul, r) => Float(l.float() * r.float()),
        (l, Math::Div, r) => Float(l.float() / r.float()),
        (l, Math::Rem, r) => Float(l.float() % r.float()),
    })
}

fn negate(value: &Value) -> Option<Value> {
    Some(match Num::of(value)? {
        Num::Int(int) => Value::from(int.checked_neg()?),
        Num::Float(float) => Num::Float(-float).value(),
    })
}

/// jq's order of scalars: null, false, true, numbers, strings. Arrays and objects are left
/// to jaq.
fn compare(left: &Value, op: Cmp, right: &Value) -> Option<bool> {
    let order = order(left, right)?;
    Some(match op {
        Cmp::Lt => order == Ordering::Less,
        Cmp::Le => order != Ordering::Greater,
        Cmp::Gt => order == Ordering::Greater,
        Cmp::Ge => order != Ordering::Less,
        Cmp::Eq => order == Ordering::Equal,
        Cmp::Ne => order != Ordering::Equal,
    })
}

fn order(left: &Value, right: &Value) -> Option<Ordering> {
    fn rank(value: &Value) -> Option<u8> {
        match value {
            Value::Null => Some(0),
            Value::Bool(_) => Some(1),
            Value::Number(_) => Some(2),
            Value::String(_) => Some(3),
            Value::Array(_) | Value::Object(_) => None,
        }
    }
    let (l, r) = (rank(left)?, rank(right)?);
    if l != r {
        return Some(l.cmp(&r));
    }
    match (left, right) {
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Number(_), Value::Number(_)) => match (Num::of(left)?, Num::of(right)?) {
            (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
            (x, y) => {
                let (x, y) = (x.float(), y.float());
                if x.is_nan() || y.is_nan() {
                    return None;
                }
                if x == 0.0 && y == 0.0 {
                    return Some(Ordering::Equal);
                }
                x.partial_cmp(&y)
            }
        },
        _ => Some(Ordering::Equal),
    }
}

fn call(builtin: Builtin, input: &Value) -> Option<Value> {
    Some(match (builtin, input) {
        (Builtin::Not, value) => Value::Bool(!truthy(value)),
        (Builtin::Length, Value::Null) => Value::from(0),
        (Builtin::Length, Value::String(text)) => Value::from(text.chars().count()),
        (Builtin::Length, Value::Array(items)) => Value::from(items.len()),
        (Builtin::Length, Value::Object(map)) => Value::from(map.len()),
        (Builtin::Length, number @ Value::Number(_)) => match Num::of(number)? {
            Num::Int(int) => Value::from(int.checked_abs()?),
            Num::Float(float) => Num::Float(float.abs()).value(),
        },
        (Builtin::AsciiDowncase, Value::String(text)) => Value::String(text.to_ascii_lowercase()),
        (Builtin::AsciiUpcase, Value::String(text)) => Value::String(text.to_ascii_uppercase()),
        _ => return None,
    })
}

/// The direct form of a parsed term, or `None` when any part of it is outside the subset.
fn from_term(term: &Term<&str>) -> Option<Direct> {
    let boxed = |term: &Term<&str>| from_term(term).map(Box::new);
    Some(match term {
        Term::Id => Direct::Identity,
        Term::Num(text) => Direct::Literal(number_literal(text)?),
        Term::Str(None, parts) => Direct::Literal(Value::String(plain_string(parts)?)),
        Term::Arr(None) => Direct::Literal(Value::Array(Vec::new())),
        Term::Arr(Some(items)) => {
            let mut elements = Vec::new();
            comma_list(items, &mut elements)?;
            Direct::Array(elements)
        }
        Term::Obj(entries) => Direct::Object(
            entries
                .iter()
                .map(|(key, value)| {
                    let Term::Str(None, parts) = key else {
                        return None;
                    };
                    let key = plain_string(parts)?;
                    let value = match value {
                        Some(value) => from_term(value)?,
                        // `{a}` is `{a: .a}`.
                        None => {
                            Direct::Path(Box::new(Direct::Identity), vec![Key::Field(key.clone())])
                        }
                    };
                    Some((key, value))
                })
                .collect::<Option<_>>()?,
        ),
        Term::Neg(inner) => Direct::Negate(boxed(inner)?),
        Term::Path(base, path) => Direct::Path(
            boxed(base)?,
            path.0
                .iter()
                .map(
                    |(part, _optional @ (Opt::Essential | Opt::Optional))| match part {
                        // An optional part that fails gives no output: the run goes to jaq.
                        Part::Index(index) => literal_key(index),
                        Part::Range(..) => None,
                    },
                )
                .collect::<Option<_>>()?,
        ),
        // `f?` with one output is `f`; its error, none, goes to jaq.
        Term::TryCatch(body, None) => from_term(body)?,
        Term::IfThenElse(branches, otherwise) => Direct::If(
            branches
                .iter()
                .map(|(condition, then)| Some((from_term(condition)?, from_term(then)?)))
                .collect::<Option<_>>()?,
            // `if c then t end` is `if c then t else . end`.
            otherwise
                .as_deref()
                .map_or(Some(Box::new(Direct::Identity)), boxed)?,
        ),
        Term::Call(name, args) if args.is_empty() => match *name {
            "null" => Direct::Literal(Value::Null),
            "true" => Direct::Literal(Value::Bool(true)),
            "false" => Direct::Literal(Value::Bool(false)),
            "length" => Direct::Call(Builtin::Length),
            "not" => Direct::Call(Builtin::Not),
            "ascii_downcase" => Direct::Call(Builtin::AsciiDowncase),
            "ascii_upcase" => Direct::Call(Builtin::AsciiUpcase),
            _ => return None,
        },
        Term::BinOp(left, op, right) => {
            let (l, r) = (boxed(left)?, boxed(right)?);
            match op {
                BinaryOp::Pipe(None) => Direct::Pipe(l, r),
                BinaryOp::Math(op) => Direct::Math(l, *op, r),
                BinaryOp::Cmp(op) => Direct::Compare(l, *op, r),
                BinaryOp::And => Direct::And(l, r),
                BinaryOp::Or => Direct::Or(l, r),
                BinaryOp::Alt => Direct::Alternative(l, r),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The elements of `[a, b, c]`.
fn comma_list(term: &Term<&str>, elements: &mut Vec<Direct>) -> Option<()> {
    match term {
        Term::BinOp(left, BinaryOp::Comma, right) => {
            comma_list(left, elements)?;
            comma_list(right, elements)
        }
        other => {
            elements.push(from_term(other)?);
            Some(())
        }
    }
}

/// A number literal as jaq reads it: an integer when it is one, else a float.
fn number_literal(text: &str) -> Option<Value> {
    if let Ok(int) = text.parse::<i64>() {
        return Some(Value::from(int));
    }
    // An integer too big for a machine word is a big integer in jaq.
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let float = text.parse::<f64>().ok()?;
    Number::from_f64(float).map(Value::Number)
}

/// A string without interpolation or format.
fn plain_string(parts: &[StrPart<&str, Term<&str>>]) -> Option<String> {
    let mut text = String::new();
    for part in parts {
        match part {
            StrPart::Str(piece) => text.push_str(piece),
            StrPart::Char(char) => text.push(*char),
            StrPart::Term(_) => return None,
        }
    }
    Some(text)
}

/// `.name`, `."name"`, `.[0]`: keys known before the program runs.
fn literal_key(index: &Term<&str>) -> Option<Key> {
    match index {
        Term::Str(None, parts) => plain_string(parts).map(Key::Field),
        Term::Num(text) => text.parse::<i64>().ok().map(Key::Index),
        Term::Neg(inner) => match &**inner {
            Term::Num(text) => text.parse::<i64>().ok().map(|at| Key::Index(-at)),
            _ => None,
        },
        _ => None,
    }
}
