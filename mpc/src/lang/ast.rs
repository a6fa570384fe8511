//! The syntax tree of a Tally program.

use super::diag::Span;

/// A type as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExpr {
    /// `intK`: a signed integer of K bits, 1 ≤ K ≤ 64.
    Int(u32),
    /// `fixed<K, F>`: a signed fixed-point number of K bits, F of them after the point.
    Fixed {
        bits: u32,
        frac: u32,
    },
    Bool,
    /// `T[N]`.
    Array(Box<TypeExpr>, usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// One value (or record field) per device slot.
    Devices,
    /// The project owner's private parameters, sealed like a device's input.
    Owner,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `devices N;`: the most device slots a task takes.
    Devices(Expr),
    /// `window S;`: how long a task's input window stays open, in seconds.
    Window(Expr),
    /// `receiver "<64 hex digits>";`: the X25519 key private outputs are sealed to.
    Receiver {
        key: String,
        span: Span,
    },
    Input {
        name: String,
        ty: Type,
        range: Option<(Expr, Expr)>,
        source: InputSource,
        span: Span,
    },
    Const {
        name: String,
        value: Expr,
        span: Span,
    },
    Output {
        name: String,
        private: bool,
        ty: Option<Type>,
        value: Expr,
        span: Span,
    },
    Stmt(Stmt),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    Let {
        name: String,
        mutable: bool,
        ty: Option<Type>,
        value: Expr,
        span: Span,
    },
    Assign {
        name: String,
        indices: Vec<Expr>,
        value: Expr,
        span: Span,
    },
    For {
        var: String,
        from: Expr,
        to: Expr,
        body: Vec<Stmt>,
        span: Span,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
        span: Span,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i128),
    Decimal { digits: i128, scale: u32 },
    Bool(bool),
    Name(String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Array(Vec<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// The height of this expression's tree (1 for a leaf): the parser refuses deep trees, so
    /// that compiling and dropping them cannot exhaust the stack.
    pub height: u32,
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        let child = |e: &Expr| e.height;
        let below = match &kind {
            ExprKind::Unary(_, a) => child(a),
            ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => child(a).max(child(b)),
            ExprKind::Call(_, args) | ExprKind::Array(args) => {
                args.iter().map(child).max().unwrap_or(0)
            }
            _ => 0,
        };
        Expr {
            kind,
            span,
            height: below + 1,
        }
    }
}
