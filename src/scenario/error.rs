//! Scenario problems, each rendered as one line that names where it is.

use std::fmt;
use std::ops::Range;

/// Where a problem sits: a line/column in the file, or only a field path when the
/// problem has no span (e.g. a flag override).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Span { line: usize, col: usize },
    Field(String),
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Span { line, col } => write!(f, "{}:{line}:{col}: {}", self.file, self.message),
            Location::Field(field) => write!(f, "{}: {field}: {}", self.file, self.message),
            Location::File => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a scenario; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ScenarioError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems for one file, turning byte spans into 1-based line:col.
pub(crate) struct Problems<'a> {
    file: &'a str,
    src: &'a str,
    pub list: Vec<Problem>,
    /// What is allowed but likely not meant; the scenario still loads.
    pub warnings: Vec<Problem>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a str, src: &'a str) -> Self {
        Self { file, src, list: Vec::new(), warnings: Vec::new() }
    }

    pub fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let problem = self.problem(span, message.into());
        self.list.push(problem);
    }

    /// A warning at `span`: said by `validate` and before a run, never fatal.
    pub fn warn(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let problem = self.problem(span, format!("warning: {}", message.into()));
        self.warnings.push(problem);
    }

    fn problem(&self, span: Option<Range<usize>>, message: String) -> Problem {
        let location = match span {
            Some(span) => {
                let (line, col) = line_col(self.src, span.start);
                Location::Span { line, col }
            }
            None => Location::File,
        };
        Problem { file: self.file.to_string(), location, message }
    }

    pub fn field(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(Problem { file: self.file.to_string(), location: Location::Field(field.to_string()), message: message.into() });
    }

    /// The value and its warnings, or every problem; each in file order (sections are
    /// checked in key order, not file order).
    pub fn into_result<T>(mut self, value: T) -> Result<(T, Vec<Problem>), ScenarioError> {
        if !self.list.is_empty() {
            return Err(self.into_error());
        }
        in_file_order(&mut self.warnings);
        Ok((value, self.warnings))
    }

    /// The problems found so far as an error; call only when there are some.
    pub fn into_error(mut self) -> ScenarioError {
        debug_assert!(!self.list.is_empty());
        in_file_order(&mut self.list);
        ScenarioError { problems: self.list }
    }
}

/// Located problems first, by line and column; the others after, as they came.
fn in_file_order(list: &mut [Problem]) {
    list.sort_by_key(|p| match p.location {
        Location::Span { line, col } => (0, line, col),
        _ => (1, 0, 0),
    });
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_chars() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // 'é' is two bytes: the "=" after "bé " is the 4th character.
        assert_eq!(line_col(src, 10), (2, 4));
        assert_eq!(line_col(src, 999), (3, 1));
    }
}
