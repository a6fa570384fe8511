//! A recursive-descent parser from tokens to the syntax tree. The first syntax error stops it.

use super::ast::*;
use super::diag::{Diagnostic, Span};
use super::lexer::{Tok, Token};

/// Deepest nesting of expressions and blocks the parser follows (bounds its recursion).
const MAX_DEPTH: usize = 64;

/// Largest array length a type may declare.
pub const MAX_ARRAY: usize = 1 << 16;

/// Tallest expression tree accepted (a chain `a + b + …` is as tall as it is long).
pub const MAX_EXPR_HEIGHT: u32 = 200;

/// Most dimensions of an array type.
pub const MAX_DIMENSIONS: usize = 4;

pub fn parse(tokens: &[Token]) -> Result<Vec<Item>, Diagnostic> {
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let mut items = Vec::new();
    while p.peek() != &Tok::Eof {
        items.push(p.item()?);
    }
    Ok(items)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

type Parsed<T> = Result<T, Diagnostic>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(x) if x == w)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let yes = self.is_sym(s);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expected(&self, what: &str) -> Diagnostic {
        let found = match self.peek() {
            Tok::Ident(x) => format!("`{x}`"),
            Tok::Int(v) => format!("`{v}`"),
            Tok::Decimal { .. } => "a decimal number".into(),
            Tok::Sym(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Eof => "the end of the file".into(),
        };
        Diagnostic::new(self.span(), format!("expected {what}, found {found}"))
    }

    fn expect_sym(&mut self, s: &str) -> Parsed<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{s}`")))
        }
    }

    fn ident(&mut self) -> Parsed<(String, Span)> {
        match self.peek().clone() {
            Tok::Ident(name) if !is_keyword(&name) => {
                let span = self.bump().span;
                Ok((name, span))
            }
            _ => Err(self.expected("a name")),
        }
    }

    fn nest(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::new(
                self.span(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn item(&mut self) -> Parsed<Item> {
        let start = self.span();
        if self.eat_word("devices") {
            let e = self.expr()?;
            self.expect_sym(";")?;
            return Ok(Item::Devices(e));
        }
        if self.eat_word("window") {
            let e = self.expr()?;
            self.expect_sym(";")?;
            return Ok(Item::Window(e));
        }
        if self.eat_word("receiver") {
            let Tok::Str(key) = self.peek().clone() else {
                return Err(self.expected("the receiver's X25519 key as `\"<64 hex digits>\"`"));
            };
            let span = self.bump().span;
            self.expect_sym(";")?;
            return Ok(Item::Receiver { key, span });
        }
        if self.eat_word("input") {
            let (name, _) = self.ident()?;
            self.expect_sym(":")?;
            let ty = self.ty()?;
            let range = if self.eat_word("in") {
                let lo = self.expr()?;
                self.expect_sym("..=")?;
                Some((lo, self.expr()?))
            } else {
                None
            };
            if !self.eat_word("from") {
                return Err(self.expected("`from devices` or `from owner`"));
            }
            let source = if self.eat_word("devices") {
                InputSource::Devices
            } else if self.eat_word("owner") {
                InputSource::Owner
            } else {
                return Err(self.expected("`devices` or `owner`"));
            };
            self.expect_sym(";")?;
            return Ok(Item::Input {
                name,
                ty,
                range,
                source,
                span: start.to(self.prev_span()),
            });
        }
        if self.eat_word("const") {
            let (name, _) = self.ident()?;
            self.expect_sym("=")?;
            let value = self.expr()?;
            self.expect_sym(";")?;
            return Ok(Item::Const {
                name,
                value,
                span: start.to(self.prev_span()),
            });
        }
        if self.eat_word("output") {
            let private = self.eat_word("private");
            let (name, _) = self.ident()?;
            let (ty, value) = self.annotated_value()?;
            return Ok(Item::Output {
                name,
                private,
                ty,
                value,
                span: start.to(self.prev_span()),
            });
        }
        Ok(Item::Stmt(self.stmt()?))
    }

    /// `(":" type)? "=" expr ";"`, the tail of `let` and `output`.
    fn annotated_value(&mut self) -> Parsed<(Option<Type>, Expr)> {
        let ty = if self.eat_sym(":") {
            Some(self.ty()?)
        } else {
            None
        };
        self.expect_sym("=")?;
        let value = self.expr()?;
        self.expect_sym(";")?;
        Ok((ty, value))
    }

    fn block(&mut self) -> Parsed<Vec<Stmt>> {
        self.nest()?;
        self.expect_sym("{")?;
        let mut body = Vec::new();
        while !self.eat_sym("}") {
            if self.peek() == &Tok::Eof {
                return Err(self.expected("`}`"));
            }
            body.push(self.stmt()?);
        }
        self.depth -= 1;
        Ok(body)
    }

    fn stmt(&mut self) -> Parsed<Stmt> {
        let start = self.span();
        if self.eat_word("let") {
            let mutable = self.eat_word("mut");
            let (name, _) = self.ident()?;
            let (ty, value) = self.annotated_value()?;
            return Ok(Stmt::Let {
                name,
                mutable,
                ty,
                value,
                span: start.to(self.prev_span()),
            });
        }
        if self.eat_word("for") {
            let (var, _) = self.ident()?;
            if !self.eat_word("in") {
                return Err(self.expected("`in`"));
            }
            let from = self.expr()?;
            self.expect_sym("..")?;
            let to = self.expr()?;
            let body = self.block()?;
            return Ok(Stmt::For {
                var,
                from,
                to,
                body,
                span: start.to(self.prev_span()),
            });
        }
        if self.eat_word("if") {
            let cond = self.expr()?;
            let then = self.block()?;
            let otherwise = if self.eat_word("else") {
                if self.is_word("if") {
                    self.nest()?;
                    let chained = vec![self.stmt()?];
                    self.depth -= 1;
                    chained
                } else {
                    self.block()?
                }
            } else {
                Vec::new()
            };
            return Ok(Stmt::If {
                cond,
                then,
                otherwise,
                span: start,
            });
        }
        if let Tok::Ident(name) = self.peek().clone()
            && !is_keyword(&name)
        {
            self.bump();
            let mut indices = Vec::new();
            while self.eat_sym("[") {
                indices.push(self.expr()?);
                self.expect_sym("]")?;
            }
            if self.eat_sym("=") {
                let value = self.expr()?;
                self.expect_sym(";")?;
                return Ok(Stmt::Assign {
                    name,
                    indices,
                    value,
                    span: start.to(self.prev_span()),
                });
            }
            return Err(self.expected("`=`"));
        }
        Err(self.expected(
            "an item (`input`, `const`, `let`, `for`, `if`, `output`, `devices`, `window`)",
        ))
    }

    fn ty(&mut self) -> Parsed<Type> {
        let start = self.span();
        let (name, _) = match self.peek().clone() {
            Tok::Ident(name) => (name, self.bump().span),
            _ => return Err(self.expected("a type")),
        };
        let mut ty = if name == "bool" {
            TypeExpr::Bool
        } else if name == "fixed" {
            self.expect_sym("<")?;
            let bits = self.small_int()?;
            self.expect_sym(",")?;
            let frac = self.small_int()?;
            self.expect_sym(">")?;
            TypeExpr::Fixed { bits, frac }
        } else if let Some(bits) = name.strip_prefix("int").and_then(|b| b.parse::<u32>().ok()) {
            TypeExpr::Int(bits)
        } else {
            return Err(Diagnostic::new(start, format!("unknown type `{name}`"))
                .help("types are intK (K = 1..64), fixed<K, F>, bool and arrays T[N]"));
        };
        let mut dimensions = 0;
        while self.eat_sym("[") {
            dimensions += 1;
            if dimensions > MAX_DIMENSIONS {
                return Err(Diagnostic::new(
                    self.prev_span(),
                    format!("arrays have at most {MAX_DIMENSIONS} dimensions"),
                ));
            }
            let n = self.small_int()? as usize;
            self.expect_sym("]")?;
            ty = TypeExpr::Array(Box::new(ty), n);
        }
        Ok(Type {
            ty,
            span: start.to(self.prev_span()),
        })
    }

    fn small_int(&mut self) -> Parsed<u32> {
        match *self.peek() {
            Tok::Int(v) if (0..=MAX_ARRAY as i128).contains(&v) => {
                self.bump();
                Ok(v as u32)
            }
            _ => Err(self.expected(&format!("a whole number up to {MAX_ARRAY}"))),
        }
    }

    fn expr(&mut self) -> Parsed<Expr> {
        self.nest()?;
        let e = self.binary(0);
        self.depth -= 1;
        e
    }

    /// Precedence climbing: `||` < `&&` < comparisons < `+ -` < `* / %`.
    fn binary(&mut self, level: usize) -> Parsed<Expr> {
        const LEVELS: [&[(&str, BinOp)]; 5] = [
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            let Some(&(_, op)) = LEVELS[level].iter().find(|(s, _)| self.is_sym(s)) else {
                return Ok(lhs);
            };
            self.bump();
            let rhs = self.binary(level + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = self.tall_checked(Expr::new(
                ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            ))?;
            // Comparisons do not chain.
            if level == 2 {
                return Ok(lhs);
            }
        }
    }

    fn unary(&mut self) -> Parsed<Expr> {
        let start = self.span();
        let op = if self.eat_sym("-") {
            Some(UnOp::Neg)
        } else if self.eat_sym("!") {
            Some(UnOp::Not)
        } else {
            None
        };
        match op {
            Some(op) => {
                self.nest()?;
                let inner = self.unary()?;
                self.depth -= 1;
                let span = start.to(inner.span);
                self.tall_checked(Expr::new(ExprKind::Unary(op, Box::new(inner)), span))
            }
            None => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Parsed<Expr> {
        let mut e = self.primary()?;
        while self.eat_sym("[") {
            let index = self.expr()?;
            self.expect_sym("]")?;
            let span = e.span.to(self.prev_span());
            e = self.tall_checked(Expr::new(
                ExprKind::Index(Box::new(e), Box::new(index)),
                span,
            ))?;
        }
        Ok(e)
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let start = self.span();
        let kind = match self.peek().clone() {
            Tok::Int(v) => {
                self.bump();
                ExprKind::Int(v)
            }
            Tok::Decimal { digits, scale } => {
                self.bump();
                ExprKind::Decimal { digits, scale }
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                ExprKind::Bool(w == "true")
            }
            Tok::Ident(name) if !is_keyword(&name) => {
                self.bump();
                if self.eat_sym("(") {
                    let args = self.list(")")?;
                    ExprKind::Call(name, args)
                } else {
                    ExprKind::Name(name)
                }
            }
            Tok::Sym("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_sym(")")?;
                return Ok(Expr {
                    span: start.to(self.prev_span()),
                    ..e
                });
            }
            Tok::Sym("[") => {
                self.bump();
                ExprKind::Array(self.list("]")?)
            }
            _ => return Err(self.expected("an expression")),
        };
        let span = start.to(self.prev_span());
        self.tall_checked(Expr::new(kind, span))
    }

    fn tall_checked(&self, e: Expr) -> Parsed<Expr> {
        if e.height > MAX_EXPR_HEIGHT {
            return Err(Diagnostic::new(
                e.span,
                format!("this expression is nested deeper than {MAX_EXPR_HEIGHT} levels"),
            )
            .help("split it with `let`, or sum an array with sum()"));
        }
        Ok(e)
    }

    fn list(&mut self, close: &str) -> Parsed<Vec<Expr>> {
        let mut out = Vec::new();
        while !self.eat_sym(close) {
            out.push(self.expr()?);
            if !self.eat_sym(",") {
                self.expect_sym(close)?;
                break;
            }
        }
        Ok(out)
    }
}

fn is_keyword(w: &str) -> bool {
    matches!(
        w,
        "let"
            | "mut"
            | "for"
            | "in"
            | "if"
            | "else"
            | "input"
            | "output"
            | "receiver"
            | "private"
            | "const"
            | "from"
            | "true"
            | "false"
    )
}
