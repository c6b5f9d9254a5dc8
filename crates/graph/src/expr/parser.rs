//! Precedence-climbing parser with Python operator precedence.
//!
//! Precedence, lowest to highest: `or`, `and`, `not`, comparisons (chained),
//! `+ -`, `* / // %`, unary `- +`, `**` (right-associative), postfix
//! (`.name`, `[index]`, `f(args)`), atoms.

use serde_json::Value;

use super::ParseError;
use super::ast::{CmpKind, Node};
use super::lexer::{Tok, Token, tokenize_prefix};
use super::value::{BinOp, CmpOp, UnaryOp, float_value, int_value, num, unary};

/// A parsed node: variables are indices into the name table, functions are
/// referenced by name.
pub(crate) type PNode = Node<usize, String>;

/// Maximum nesting depth of the syntax tree (and of parentheses); deeper
/// expressions are rejected so that parsing, binding and evaluation (all
/// recursive) stay well within a 2 MiB thread stack even in debug builds.
/// A chain of `+`/`-`/`*`... nests one level per operator; `and`/`or` chains
/// and comparison chains are flat.
pub(crate) const MAX_DEPTH: usize = 64;

/// Result of parsing: the tree and the distinct free variable names in order
/// of first appearance.
pub(crate) struct Parsed {
    pub(crate) root: PNode,
    pub(crate) names: Vec<String>,
}

/// Parses a complete expression.
pub(crate) fn parse(src: &str) -> Result<Parsed, ParseError> {
    let (toks, lex_error) = tokenize_prefix(src);
    let result = parse_tokens(src, toks);
    match (result, lex_error) {
        // A syntax error strictly before the lexical error is reported first.
        (Err(e), Some(lex)) if e.offset < lex.offset => Err(e),
        (_, Some(lex)) => Err(lex),
        (result, None) => result,
    }
}

fn parse_tokens(src: &str, toks: Vec<Token>) -> Result<Parsed, ParseError> {
    let mut p = Parser { src, toks, pos: 0, names: Vec::new(), nest: 0 };
    if p.peek() == &Tok::Eof && p.offset() == src.len() {
        return Err(err("empty expression", 0));
    }
    let (root, _) = p.parse_or()?;
    if p.peek() != &Tok::Eof {
        return Err(err(format!("unexpected {} after complete expression", p.peek().describe()), p.offset()));
    }
    Ok(Parsed { root, names: p.names })
}

fn err(message: impl Into<String>, offset: usize) -> ParseError {
    ParseError { message: message.into(), offset }
}

/// A subtree and its depth.
type Sub = (PNode, usize);

/// Binding powers, lowest to highest (0 means "not an infix operator").
mod prec {
    pub(super) const OR: u8 = 1;
    pub(super) const AND: u8 = 2;
    pub(super) const NOT: u8 = 3;
    pub(super) const CMP: u8 = 4;
    pub(super) const ADD: u8 = 5;
    pub(super) const MUL: u8 = 6;
    pub(super) const UNARY: u8 = 7;
    pub(super) const POW: u8 = 8;
}

/// Binding power of `tok` as an infix operator (`next` disambiguates
/// `not in`).
fn infix_prec(tok: &Tok, next: &Tok) -> u8 {
    match tok {
        Tok::Or => prec::OR,
        Tok::And => prec::AND,
        Tok::EqEq | Tok::NotEq | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::In | Tok::Is => prec::CMP,
        Tok::Not if next == &Tok::In => prec::CMP,
        Tok::Plus | Tok::Minus => prec::ADD,
        Tok::Star | Tok::Slash | Tok::DoubleSlash | Tok::Percent => prec::MUL,
        Tok::DoubleStar => prec::POW,
        _ => 0,
    }
}

fn binary_op(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::Plus => BinOp::Add,
        Tok::Minus => BinOp::Sub,
        Tok::Star => BinOp::Mul,
        Tok::Slash => BinOp::TrueDiv,
        Tok::DoubleSlash => BinOp::FloorDiv,
        Tok::Percent => BinOp::Mod,
        Tok::DoubleStar => BinOp::Pow,
        _ => return None,
    })
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    names: Vec<String>,
    nest: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        match self.toks.get(self.pos + ahead).or(self.toks.last()) {
            Some(t) => &t.tok,
            None => &Tok::Eof,
        }
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.offset)
    }

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> Tok {
        let tok = match self.toks.get_mut(self.pos) {
            Some(t) if t.tok != Tok::Eof => std::mem::replace(&mut t.tok, Tok::Eof),
            _ => return Tok::Eof,
        };
        self.pos += 1;
        tok
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn unexpected(&self) -> ParseError {
        let tok = self.peek();
        let msg = if tok == &Tok::Eof {
            "unexpected end of expression".to_owned()
        } else {
            format!("unexpected {}", tok.describe())
        };
        err(msg, self.offset())
    }

    /// Depth of a node whose deepest child has depth `child`.
    fn deeper(&self, child: usize, offset: usize) -> Result<usize, ParseError> {
        if child >= MAX_DEPTH {
            Err(err(format!("expression is nested too deeply (limit {MAX_DEPTH})"), offset))
        } else {
            Ok(child + 1)
        }
    }

    /// Guards parser recursion (parentheses, unary operators).
    fn enter(&mut self) -> Result<(), ParseError> {
        self.nest += 1;
        if self.nest > MAX_DEPTH {
            return Err(err(format!("expression is nested too deeply (limit {MAX_DEPTH})"), self.offset()));
        }
        Ok(())
    }

    /// Parses a full expression (lowest precedence).
    fn parse_or(&mut self) -> Result<Sub, ParseError> {
        self.parse_expr(prec::OR)
    }

    /// Precedence climbing: parses an expression whose operators all bind at
    /// least as tightly as `min_prec`.
    fn parse_expr(&mut self, min_prec: u8) -> Result<Sub, ParseError> {
        self.enter()?;
        let start = self.offset();
        let (mut left, mut depth) = self.parse_prefix(min_prec)?;
        loop {
            let tok = self.peek();
            let p = infix_prec(tok, self.peek_at(1));
            if p == 0 || p < min_prec {
                break;
            }
            match p {
                prec::OR | prec::AND => {
                    let sep = tok.clone();
                    let mut items = vec![left];
                    while self.eat(&sep) {
                        let (item, d) = self.parse_expr(p + 1)?;
                        depth = depth.max(d);
                        items.push(item);
                    }
                    depth = self.deeper(depth, start)?;
                    left = if p == prec::OR { Node::Or(items) } else { Node::And(items) };
                }
                prec::CMP => {
                    let mut rest = Vec::new();
                    while let Some(kind) = self.comparison_op() {
                        let (rhs, d) = self.parse_expr(prec::CMP + 1)?;
                        depth = depth.max(d);
                        rest.push((kind, rhs));
                    }
                    depth = self.deeper(depth, start)?;
                    left = Node::Compare(Box::new(left), rest);
                }
                _ => {
                    let Some(op) = binary_op(tok) else { break };
                    self.bump();
                    // `**` is right-associative and its right operand may
                    // carry a sign (`2 ** -1`); the others are left-associative.
                    let rhs_prec = if op == BinOp::Pow { prec::UNARY } else { p + 1 };
                    let (right, d) = self.parse_expr(rhs_prec)?;
                    depth = self.deeper(depth.max(d), start)?;
                    left = Node::Binary(op, Box::new(left), Box::new(right));
                }
            }
        }
        self.nest -= 1;
        Ok((left, depth))
    }

    /// A prefix operator (`not`, `-`, `+`) applied to its operand, or a
    /// postfix expression.
    fn parse_prefix(&mut self, min_prec: u8) -> Result<Sub, ParseError> {
        let start = self.offset();
        let (op, operand_prec) = match self.peek() {
            Tok::Not if min_prec <= prec::NOT => (UnaryOp::Not, prec::NOT),
            Tok::Minus => (UnaryOp::Neg, prec::UNARY),
            Tok::Plus => (UnaryOp::Pos, prec::UNARY),
            _ => return self.parse_postfix(),
        };
        self.bump();
        let (x, d) = self.parse_expr(operand_prec)?;
        // Fold signs of numeric literals (`-5`) into constants.
        if op != UnaryOp::Not
            && let Node::Const(v) = &x
            && num(v).is_some()
            && let Ok(folded) = unary(op, v)
        {
            return Ok((Node::Const(folded), d));
        }
        Ok((Node::Unary(op, Box::new(x)), self.deeper(d, start)?))
    }

    fn comparison_op(&mut self) -> Option<CmpKind> {
        let (kind, len) = match (self.peek(), self.peek_at(1)) {
            (Tok::EqEq, _) => (CmpKind::Op(CmpOp::Eq), 1),
            (Tok::NotEq, _) => (CmpKind::Op(CmpOp::Ne), 1),
            (Tok::Lt, _) => (CmpKind::Op(CmpOp::Lt), 1),
            (Tok::Le, _) => (CmpKind::Op(CmpOp::Le), 1),
            (Tok::Gt, _) => (CmpKind::Op(CmpOp::Gt), 1),
            (Tok::Ge, _) => (CmpKind::Op(CmpOp::Ge), 1),
            (Tok::In, _) => (CmpKind::In, 1),
            (Tok::Not, Tok::In) => (CmpKind::NotIn, 2),
            (Tok::Is, Tok::Not) => (CmpKind::IsNot, 2),
            (Tok::Is, _) => (CmpKind::Is, 1),
            _ => return None,
        };
        for _ in 0..len {
            self.bump();
        }
        Some(kind)
    }

    fn parse_postfix(&mut self) -> Result<Sub, ParseError> {
        let start = self.offset();
        let (mut node, mut depth) = self.parse_atom()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let attr = self.attribute_name()?;
                    depth = self.deeper(depth, start)?;
                    node = Node::Attr(Box::new(node), attr);
                }
                Tok::LBracket => {
                    let open = self.offset();
                    self.bump();
                    let (idx, d) = self.parse_or()?;
                    self.expect_close(&Tok::RBracket, open)?;
                    depth = self.deeper(depth.max(d), start)?;
                    node = Node::Index(Box::new(node), Box::new(idx));
                }
                Tok::LParen => {
                    return Err(err("only builtin functions can be called, by name (e.g. len(x))", self.offset()));
                }
                _ => return Ok((node, depth)),
            }
        }
    }

    /// The identifier after a `.`; keywords are accepted as dict keys.
    fn attribute_name(&mut self) -> Result<String, ParseError> {
        let at = self.offset();
        match self.peek() {
            Tok::Name(_) => match self.bump() {
                Tok::Name(n) => Ok(n),
                _ => Err(err("expected attribute name after '.'", at)),
            },
            Tok::And | Tok::Or | Tok::Not | Tok::In | Tok::Is | Tok::True | Tok::False | Tok::None => {
                self.bump();
                let word: String =
                    self.src[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                Ok(word)
            }
            other => Err(err(format!("expected attribute name after '.', found {}", other.describe()), at)),
        }
    }

    fn expect_close(&mut self, close: &Tok, open: usize) -> Result<(), ParseError> {
        if self.eat(close) {
            return Ok(());
        }
        Err(err(
            format!(
                "expected '{}' to close the bracket at offset {open}, found {}",
                close.text(),
                self.peek().describe()
            ),
            self.offset(),
        ))
    }

    /// Comma-separated expressions up to `close` (trailing comma allowed).
    fn parse_items(&mut self, close: &Tok, open: usize) -> Result<(Vec<PNode>, usize), ParseError> {
        let mut items = Vec::new();
        let mut depth = 0;
        while self.peek() != close {
            let (item, d) = self.parse_or()?;
            depth = depth.max(d);
            items.push(item);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect_close(close, open)?;
        Ok((items, depth))
    }

    fn parse_atom(&mut self) -> Result<Sub, ParseError> {
        let start = self.offset();
        let node = match self.peek() {
            Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::True | Tok::False | Tok::None => match self.bump() {
                Tok::Int(i) => Node::Const(int_value(i)),
                Tok::Float(f) => Node::Const(float_value(f).map_err(|_| err("float literal out of range", start))?),
                Tok::Str(s) => Node::Const(Value::String(s)),
                Tok::True => Node::Const(Value::Bool(true)),
                Tok::False => Node::Const(Value::Bool(false)),
                _ => Node::Const(Value::Null),
            },
            Tok::Name(_) => {
                let Tok::Name(name) = self.bump() else {
                    return Err(self.unexpected());
                };
                if self.peek() == &Tok::LParen {
                    let open = self.offset();
                    self.bump();
                    let (args, d) = self.parse_items(&Tok::RParen, open)?;
                    return Ok((Node::Call(name, args), self.deeper(d, start)?));
                }
                let idx = match self.names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        self.names.push(name);
                        self.names.len() - 1
                    }
                };
                Node::Name(idx)
            }
            Tok::LParen => {
                self.bump();
                if self.eat(&Tok::RParen) {
                    return Ok((Node::List(Vec::new()), 1));
                }
                let (inner, d) = self.parse_or()?;
                if !self.eat(&Tok::Comma) {
                    self.expect_close(&Tok::RParen, start)?;
                    return Ok((inner, d));
                }
                // A tuple, `(a,)` or `(a, b)`: held as a list (`in`, `==` and indexing
                // behave the same on both here).
                let (mut rest, d2) = self.parse_items(&Tok::RParen, start)?;
                rest.insert(0, inner);
                return Ok((Node::List(rest), self.deeper(d.max(d2), start)?));
            }
            Tok::LBracket => {
                self.bump();
                let (items, d) = self.parse_items(&Tok::RBracket, start)?;
                return Ok((Node::List(items), self.deeper(d, start)?));
            }
            _ => return Err(self.unexpected()),
        };
        Ok((node, 1))
    }
}
