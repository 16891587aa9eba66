//! Which jq programs are *bounded*: programs that finish, without deep recursion, in time and
//! memory about proportional to their input. Those run inline, on the job's own thread; any
//! other program runs where a deadline can stop it (a thread or a worker process).
//!
//! The test is syntactic and conservative: a bounded program has no iteration of its own
//! (`.[]`, `..`, `range`, `recurse`, `reduce`, `foreach`, `limit`, `while`...), no definitions,
//! variables, labels or assignments, and calls only the functions of [`LINEAR_CALLS`], each
//! of which makes one pass over its input (`map` and `select` included: the iteration is
//! theirs, over the input's own elements). With no way to iterate over anything but the
//! input, to bind a value for later, or to call itself, such a program's work is bounded by
//! its length times its input's size. String repetition (`"ab" * 3`) is the one operator that
//! can grow a value beyond that; it is allowed once, with a small literal factor.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::ops::Math;
use jaq_core::path::Part;

/// Functions a bounded program may call, with their number of arguments: each returns a
/// value in one pass over its input, and runs its arguments at most once an element.
const LINEAR_CALLS: &[(&str, usize)] = &[
    ("null", 0),
    ("true", 0),
    ("false", 0),
    ("empty", 0),
    ("error", 0),
    ("error", 1),
    ("not", 0),
    ("length", 0),
    ("utf8bytelength", 0),
    ("type", 0),
    ("keys", 0),
    ("keys_unsorted", 0),
    ("has", 1),
    ("contains", 1),
    ("add", 0),
    ("any", 0),
    ("all", 0),
    ("any", 1),
    ("all", 1),
    ("join", 1),
    ("ascii_downcase", 0),
    ("ascii_upcase", 0),
    ("trim", 0),
    ("ltrim", 0),
    ("rtrim", 0),
    ("ltrimstr", 1),
    ("rtrimstr", 1),
    ("startswith", 1),
    ("endswith", 1),
    ("split", 1),
    ("explode", 0),
    ("implode", 0),
    ("tostring", 0),
    ("tonumber", 0),
    ("tojson", 0),
    ("map", 1),
    ("map_values", 1),
    ("select", 1),
    ("values", 0),
    ("nulls", 0),
    ("booleans", 0),
    ("numbers", 0),
    ("strings", 0),
    ("arrays", 0),
    ("objects", 0),
    ("iterables", 0),
    ("scalars", 0),
    ("to_entries", 0),
    ("from_entries", 0),
    ("with_entries", 1),
    ("sort", 0),
    ("sort_by", 1),
    ("group_by", 1),
    ("unique", 0),
    ("unique_by", 1),
    ("min", 0),
    ("max", 0),
    ("min_by", 1),
    ("max_by", 1),
    ("reverse", 0),
    ("first", 0),
    ("last", 0),
    ("floor", 0),
    ("ceil", 0),
    ("round", 0),
    ("fabs", 0),
    ("abs", 0),
    ("sqrt", 0),
    ("isnan", 0),
    ("isinfinite", 0),
    ("isnormal", 0),
    ("now", 0),
    ("todate", 0),
    ("fromdate", 0),
    ("todateiso8601", 0),
    ("fromdateiso8601", 0),
    ("mktime", 0),
    ("gmtime", 0),
    ("strftime", 1),
    ("strptime", 1),
];

/// Largest literal factor a string may be repeated by in a bounded program.
const MAX_REPEAT: f64 = 100.0;

/// True when `source` parses as a bounded program (see the module's description).
pub fn is_bounded(source: &str) -> bool {
    match jaq_core::load::parse(source, |parser| parser.term()) {
        Some(term) => Walk::default().term(&term),
        None => false,
    }
}

#[derive(Default)]
struct Walk {
    /// Multiplications by an integer literal seen so far: string repetition, possibly.
    repetitions: usize,
}

impl Walk {
    fn term(&mut self, term: &Term<&str>) -> bool {
        match term {
            Term::Id | Term::Num(_) => true,
            Term::Str(_, parts) => parts.iter().all(|part| match part {
                StrPart::Term(inner) => self.term(inner),
                _ => true,
            }),
            Term::Arr(inner) => inner.as_deref().is_none_or(|inner| self.term(inner)),
            Term::Obj(pairs) => pairs.iter().all(|(key, value)| {
                self.term(key) && value.as_ref().is_none_or(|value| self.term(value))
            }),
            Term::Neg(inner) => self.term(inner),
            Term::BinOp(left, op, right) => {
                self.operator(left, op, right) && self.term(left) && self.term(right)
            }
            Term::TryCatch(body, catch) => {
                self.term(body) && catch.as_deref().is_none_or(|catch| self.term(catch))
            }
            Term::IfThenElse(branches, otherwise) => {
                branches
                    .iter()
                    .all(|(condition, then)| self.term(condition) && self.term(then))
                    && otherwise
                        .as_deref()
                        .is_none_or(|otherwise| self.term(otherwise))
            }
            Term::Call(name, args) => {
                LINEAR_CALLS.contains(&(*name, args.len())) && args.iter().all(|arg| self.term(arg))
            }
            Term::Path(base, path) => {
                self.term(base)
                    && path.0.iter().all(|(part, _)| match part {
                        Part::Index(index) => self.term(index),
                        // `.[]`: iteration; a slice `.[a:b]` is one value.
                        Part::Range(None, None) => false,
                        Part::Range(from, to) => {
                            from.as_ref().is_none_or(|from| self.term(from))
                                && to.as_ref().is_none_or(|to| self.term(to))
                        }
                    })
            }
            Term::Recurse
            | Term::Label(..)
            | Term::Break(_)
            | Term::Fold(..)
            | Term::Def(..)
            | Term::Var(_) => false,
        }
    }

    fn operator(&mut self, left: &Term<&str>, op: &BinaryOp<&str>, right: &Term<&str>) -> bool {
        match op {
            BinaryOp::Pipe(None)
            | BinaryOp::Comma
            | BinaryOp::Alt
            | BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Cmp(_) => true,
            BinaryOp::Math(Math::Mul) => self.multiplication(left, right),
            BinaryOp::Math(_) => true,
            // `as` bindings, assignments and updates.
            _ => false,
        }
    }

    /// A product with a literal on one side: a fraction cannot repeat a string, a small
    /// integer may, once.
    fn multiplication(&mut self, left: &Term<&str>, right: &Term<&str>) -> bool {
        let literal = [left, right].into_iter().find_map(|side| match side {
            Term::Num(text) => Some(*text),
            _ => None,
        });
        let Some(text) = literal else { return false };
        let is_integer = !text.contains(['.', 'e', 'E']);
        if !is_integer {
            return true;
        }
        self.repetitions += 1;
        text.parse::<f64>()
            .is_ok_and(|factor| factor.abs() <= MAX_REPEAT)
            && self.repetitions <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::is_bounded;

    #[test]
    fn straight_line_programs_are_bounded() {
        for program in [
            "{email: (.trigger.body.email | ascii_downcase), name: (.trigger.body.name | ascii_upcase), total: (.trigger.body.amount * 1.2), items: (.trigger.body.items | length)}",
            ".a.b[0]",
            "[.a, .b] | join(\", \")",
            ".items | map({sku, qty: (.qty // 1)}) | sort_by(.sku)",
            "if .x > 1 then \"big\" else \"small\" end",
            "\"Hello, \\(.name)!\"",
            ".price * 100",
            "try .a catch \"none\"",
            ".items[1:3]",
            "{(.key): .value}",
            "null, true, false",
        ] {
            assert!(is_bounded(program), "{program} should be bounded");
        }
    }

    #[test]
    fn iteration_recursion_and_bindings_are_not() {
        for program in [
            ".[]",
            ".items[] | .sku",
            "..",
            "[range(1000000000)]",
            "def f: f; f",
            "recurse(.)",
            "reduce .[] as $x (0; . + $x)",
            ". as $x | $x",
            "repeat(1)",
            "[limit(10; repeat(1))]",
            ".a = 1",
            ".a |= . + 1",
            "label $out | 1",
            "$__loc__",
            ".name * .count",
            ".name * 1000",
            "(.name * 100) * 100",
            "test(\"a+\")",
            "env",
            "input",
            "not a program (",
        ] {
            assert!(!is_bounded(program), "{program} should not be bounded");
        }
    }
}
