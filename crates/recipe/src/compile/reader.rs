//! Reading typed values out of located nodes, one problem per wrong value, none fatal.

use std::time::Duration;

use crate::compile::Compiler;
use crate::duration::parse_duration;
use crate::location::Span;
use crate::node::{Key, Node, NodeValue};

/// The keys of one mapping as they are read. Keys nobody asked for are reported by `finish`.
pub struct MapReader<'n> {
    pub span: Span,
    /// What the mapping is, for messages: "a step", "the trigger".
    what: &'static str,
    entries: &'n [(Key, Node)],
    taken: Vec<bool>,
}

impl<'n> MapReader<'n> {
    /// Starts reading a mapping; reports and returns `None` when the node is not one.
    pub fn open(
        compiler: &mut Compiler,
        node: &'n Node,
        what: &'static str,
    ) -> Option<MapReader<'n>> {
        match &node.value {
            NodeValue::Map(entries) => {
                compiler.check_duplicate_keys(entries);
                Some(MapReader {
                    span: node.span,
                    what,
                    entries,
                    taken: vec![false; entries.len()],
                })
            }
            _ => {
                compiler.problem(
                    node.span,
                    format!("{what} must be a mapping, not {}", node.kind()),
                );
                None
            }
        }
    }

    /// Which of the given keys are present, in the order they are written.
    pub fn present<'k>(&self, keys: &[&'k str]) -> Vec<&'k str> {
        self.entries
            .iter()
            .filter_map(|(key, _)| keys.iter().find(|k| **k == key.name).copied())
            .collect()
    }

    /// The value of a key, marked as read.
    pub fn take(&mut self, key: &str) -> Option<&'n Node> {
        self.take_entry(key).map(|(_, node)| node)
    }

    pub fn take_entry(&mut self, key: &str) -> Option<(&'n Key, &'n Node)> {
        let index = self.entries.iter().position(|(k, _)| k.name == key)?;
        self.taken[index] = true;
        let (key, node) = &self.entries[index];
        Some((key, node))
    }

    /// The value of a key that must be there.
    pub fn require(&mut self, compiler: &mut Compiler, key: &str) -> Option<&'n Node> {
        let found = self.take(key);
        if found.is_none() {
            compiler.problem(
                self.span,
                format!("{} is missing the required key `{key}`", self.what),
            );
        }
        found
    }

    /// Every key not yet read, in order.
    pub fn remaining(&mut self) -> Vec<(&'n Key, &'n Node)> {
        let mut rest = Vec::new();
        for (index, (key, node)) in self.entries.iter().enumerate() {
            if !self.taken[index] {
                self.taken[index] = true;
                rest.push((key, node));
            }
        }
        rest
    }

    /// Reports every key that was not read as unknown, naming the known ones.
    pub fn finish(self, compiler: &mut Compiler, known: &[&str]) {
        for (index, (key, _)) in self.entries.iter().enumerate() {
            if self.taken[index] {
                continue;
            }
            let hint = match closest(&key.name, known) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => format!(" (known keys: {})", known.join(", ")),
            };
            compiler.problem(
                key.span,
                format!("unknown key `{}` in {}{hint}", key.name, self.what),
            );
        }
    }
}

/// The known word nearest to a misspelt one, if it is near enough to be the likely intent.
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2 && *distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

impl Compiler<'_> {
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            NodeValue::String(text) => Some(text.clone()),
            _ => {
                self.problem(
                    node.span,
                    format!("{what} must be text, not {}", node.kind()),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(flag) => Some(*flag),
            _ => {
                self.problem(
                    node.span,
                    format!("{what} must be true or false, not {}", node.kind()),
                );
                None
            }
        }
    }

    /// A whole number within bounds.
    pub fn integer(&mut self, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
        let number = match &node.value {
            NodeValue::Number(number) => number.as_u64(),
            _ => None,
        };
        match number {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(
                    node.span,
                    format!("{what} must be a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match &node.value {
            NodeValue::String(text) => text.as_str(),
            _ => {
                self.problem(
                    node.span,
                    format!(
                        "{what} must be a duration such as `10s`, not {}",
                        node.kind()
                    ),
                );
                return None;
            }
        };
        match parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.problem(node.span, format!("{what}: {message}"));
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<'c>(&mut self, node: &Node, what: &str, choices: &[&'c str]) -> Option<&'c str> {
        let text = self.string(node, what)?;
        let found = choices.iter().find(|choice| **choice == text).copied();
        if found.is_none() {
            self.problem(
                node.span,
                format!("{what} must be one of {}, not `{text}`", choices.join(", ")),
            );
        }
        found
    }

    pub fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            NodeValue::Seq(items) => Some(items),
            _ => {
                self.problem(
                    node.span,
                    format!("{what} must be a list, not {}", node.kind()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_a_near_key_only() {
        assert_eq!(closest("timout", &["timeout", "retry"]), Some("timeout"));
        assert_eq!(closest("colour", &["timeout", "retry"]), None);
    }
}
