//! Places in a recipe file and the problems found there.

use std::fmt;

/// A 1-based line and column (in characters) in a recipe file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(line: u32, col: u32) -> Self {
        Span { line, col }
    }

    /// The place `chars` characters further along the same line; for positions inside a
    /// one-line string value.
    pub fn shifted(self, chars: usize) -> Span {
        Span {
            line: self.line,
            col: self
                .col
                .saturating_add(u32::try_from(chars).unwrap_or(u32::MAX)),
        }
    }
}

/// One thing wrong with a recipe, at a place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub span: Span,
    pub message: String,
}

impl Problem {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
        }
    }

    /// `FILE:LINE:COL: message`, the form editors and CI logs understand.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        ProblemInFile {
            file,
            problem: self,
        }
    }
}

struct ProblemInFile<'a> {
    file: &'a str,
    problem: &'a Problem,
}

impl fmt::Display for ProblemInFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Span { line, col } = self.problem.span;
        write!(f, "{}:{line}:{col}: {}", self.file, self.problem.message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.span.line, self.span.col, self.message)
    }
}

/// Every problem found in a recipe, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the recipe has {} problem(s)", .0.len())]
pub struct Problems(pub Vec<Problem>);
