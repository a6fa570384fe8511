//! Tokens of a Tally program.

use super::diag::{Diagnostic, Span};

/// Largest program source the compiler reads.
pub const MAX_SOURCE: usize = 256 << 10;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Int(i128),
    /// A decimal literal: its digits as an integer and the number of digits after the point.
    Decimal {
        digits: i128,
        scale: u32,
    },
    Sym(&'static str),
    /// A string literal on one line (printable ASCII, no escapes): `receiver "…";`.
    Str(String),
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Longest string literal.
pub const MAX_STRING: usize = 128;

const SYMBOLS: [&str; 27] = [
    "..=", "..", "==", "!=", "<=", ">=", "&&", "||", "->", "+", "-", "*", "/", "<", ">", "=", "!",
    "(", ")", "[", "]", "{", "}", ",", ";", ":", "%",
];

/// Splits `source` into tokens; `//` comments run to the end of the line.
pub fn lex(source: &str) -> Result<Vec<Token>, Diagnostic> {
    if source.len() > MAX_SOURCE {
        return Err(Diagnostic::new(
            Span::new(0, 0),
            format!(
                "the program is {} bytes, more than the limit of {MAX_SOURCE}",
                source.len()
            ),
        ));
    }
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if source[i..].starts_with("//") {
            i += source[i..].find('\n').unwrap_or(source.len() - i);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(source[start..i].to_string()),
                span: Span::new(start, i),
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                i += 1;
            }
            let whole = &source[start..i];
            // A point followed by a digit makes a decimal; `0..4` is a range.
            let decimal = i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit();
            let (text, scale) = if decimal {
                i += 1;
                let frac_start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                (
                    format!("{whole}{}", &source[frac_start..i]),
                    (i - frac_start) as u32,
                )
            } else {
                (whole.to_string(), 0)
            };
            let span = Span::new(start, i);
            let digits: i128 = text
                .replace('_', "")
                .parse()
                .ok()
                .filter(|v: &i128| *v < 1i128 << 120)
                .ok_or_else(|| Diagnostic::new(span, "number too large (the limit is 2^120)"))?;
            out.push(Token {
                tok: if decimal {
                    Tok::Decimal { digits, scale }
                } else {
                    Tok::Int(digits)
                },
                span,
            });
        } else if c == b'"' {
            let start = i;
            let len = bytes[i + 1..]
                .iter()
                .take_while(|&&b| b != b'"' && (b' '..=b'~').contains(&b))
                .count();
            let end = i + 1 + len;
            if bytes.get(end) != Some(&b'"') || len > MAX_STRING {
                return Err(Diagnostic::new(
                    Span::new(start, end.min(bytes.len())),
                    format!(
                        "a string ends with `\"` on its line, holds printable ASCII and at most {MAX_STRING} characters"
                    ),
                ));
            }
            out.push(Token {
                tok: Tok::Str(source[i + 1..end].to_string()),
                span: Span::new(start, end + 1),
            });
            i = end + 1;
        } else if let Some(sym) = SYMBOLS.iter().find(|s| source[i..].starts_with(**s)) {
            out.push(Token {
                tok: Tok::Sym(sym),
                span: Span::new(i, i + sym.len()),
            });
            i += sym.len();
        } else {
            let ch = source[i..].chars().next().expect("in bounds");
            return Err(Diagnostic::new(
                Span::new(i, i + ch.len_utf8()),
                format!("unexpected character {ch:?}"),
            ));
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(source.len(), source.len()),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_ranges_and_symbols() {
        let toks: Vec<Tok> = lex("x 0..4 1.25 <= // c\n ..=")
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect();
        assert_eq!(
            toks,
            vec![
                Tok::Ident("x".into()),
                Tok::Int(0),
                Tok::Sym(".."),
                Tok::Int(4),
                Tok::Decimal {
                    digits: 125,
                    scale: 2
                },
                Tok::Sym("<="),
                Tok::Sym("..="),
                Tok::Eof
            ]
        );
        assert!(lex("a # b").is_err());
        assert!(lex("99999999999999999999999999999999999999999").is_err());
    }
}
