//! Checks that every `steps.<id>` a recipe reads names a step that exists and has run by then.
//! References are collected while compiling and resolved at the end, when every id is known.

use std::collections::{HashMap, HashSet};

use crate::location::{Problem, Span};

pub struct Reference {
    id: String,
    span: Span,
    /// Whether the step has run where it is read, if it exists.
    has_run: bool,
}

impl Reference {
    pub fn step(id: &str, span: Span, has_run: bool) -> Reference {
        Reference {
            id: id.to_owned(),
            span,
            has_run,
        }
    }

    /// A mask path may name any step.
    pub fn mask(id: &str, span: Span) -> Reference {
        Reference::step(id, span, true)
    }
}

#[derive(Default)]
pub struct ReferenceCheck {
    references: Vec<Reference>,
}

impl ReferenceCheck {
    pub fn add(&mut self, reference: Reference) {
        self.references.push(reference);
    }

    pub fn resolve(&mut self, ids: &HashMap<String, Span>) -> Vec<Problem> {
        let mut problems = Vec::new();
        for reference in self.references.drain(..) {
            let Some(defined) = ids.get(&reference.id) else {
                let known: Vec<&str> = ids.keys().map(String::as_str).collect();
                let hint = match super::closest(&reference.id, &known) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => String::new(),
                };
                problems.push(Problem::new(
                    reference.span,
                    format!("no step with id `{}` in this recipe{hint}", reference.id),
                ));
                continue;
            };
            if !reference.has_run {
                problems.push(Problem::new(
                    reference.span,
                    format!(
                        "step `{}` (line {}) has not run yet here: a step can only read steps before it",
                        reference.id, defined.line
                    ),
                ));
            }
        }
        problems
    }
}

/// Names that templates may use besides the context: minijinja's functions and ours.
pub fn is_global(name: &str) -> bool {
    thread_local! {
        static GLOBALS: HashSet<String> = crate::template::global_names().into_iter().collect();
    }
    GLOBALS.with(|globals| globals.contains(name))
}

/// The step ids a jq program reads as `.steps.<id>` or `.steps["<id>"]`. Strings and comments
/// are skipped; ids reached in other ways (`.steps | .[$x]`) cannot be known before it runs.
pub fn jq_step_references(program: &str) -> Vec<String> {
    let bytes = program.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(bytes, i),
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'.' if program[i + 1..].starts_with("steps")
                && !is_ident_byte(bytes.get(i + 6).copied()) =>
            {
                let preceded_by_ident = i > 0 && is_ident_byte(Some(bytes[i - 1]));
                let after = i + 6;
                if !preceded_by_ident && let Some(id) = id_after(program, after) {
                    found.push(id);
                }
                i = after;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn is_ident_byte(byte: Option<u8>) -> bool {
    byte.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    i
}

/// The id in `.<id>` or `["<id>"]` right after `.steps`.
fn id_after(program: &str, at: usize) -> Option<String> {
    let rest = program[at..].trim_start();
    if let Some(rest) = rest.strip_prefix('.') {
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        return (!id.is_empty()).then_some(id);
    }
    let rest = rest.strip_prefix('[')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_step_ids_read_by_jq() {
        let found = jq_step_references(
            r#"{a: .steps.first.output, b: .steps["second"].output, c: "x.steps.nope", d: .mysteps.no} # .steps.comment"#,
        );
        assert_eq!(found, vec!["first".to_owned(), "second".to_owned()]);
    }
}
