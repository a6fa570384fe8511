//! Compiler diagnostics: a message, the source span it is about, and a rendering in the style of
//! rustc (file:line:column, the line, a caret under the span).

use std::fmt::Write;

/// A byte range of the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// One error, with an optional hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The 1-based line and column (in characters) where the span starts.
    pub fn line_column(&self, source: &str) -> (usize, usize) {
        let start = self.span.start.min(source.len());
        let before = &source[..floor_char_boundary(source, start)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Renders the diagnostic against `source`, naming `file`.
    pub fn render(&self, file: &str, source: &str) -> String {
        let (line, column) = self.line_column(source);
        let text = source.lines().nth(line - 1).unwrap_or("");
        let gutter = line.to_string().len();
        let start = floor_char_boundary(source, self.span.start.min(source.len()));
        let end = floor_char_boundary(source, self.span.end.min(source.len()));
        let line_end = start + source[start..].find('\n').unwrap_or(source.len() - start);
        let width = source[start..end.min(line_end)].chars().count().max(1);
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = writeln!(out, "{:gutter$}--> {file}:{line}:{column}", "");
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {text}");
        let pad: String = text
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{:gutter$} | {pad}{}", "", "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{:gutter$} = help: {help}", "");
        }
        out
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Every error found, in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut sorted = self.0.clone();
        sorted.sort_by_key(|d| d.span.start);
        let mut out: String = sorted
            .iter()
            .map(|d| d.render(file, source) + "\n")
            .collect();
        let n = sorted.len();
        let _ = writeln!(
            out,
            "error: could not compile {file} due to {n} error{}",
            if n == 1 { "" } else { "s" }
        );
        out
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            writeln!(f, "{} (bytes {}..{})", d.message, d.span.start, d.span.end)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_span_with_line_and_column() {
        let source = "let a = 1;\nlet b = oops + 1;\n";
        let d = Diagnostic::new(Span::new(19, 23), "unknown name `oops`").help("declare it first");
        assert_eq!(d.line_column(source), (2, 9));
        let text = d.render("p.tally", source);
        assert_eq!(
            text,
            "error: unknown name `oops`\n --> p.tally:2:9\n  |\n2 | let b = oops + 1;\n  |         ^^^^\n  = help: declare it first\n"
        );
    }
}
