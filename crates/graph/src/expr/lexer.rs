//! Tokenizer of the expression language.

use super::ParseError;

/// A lexical token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    And,
    Or,
    Not,
    In,
    Is,
    True,
    False,
    None,
    Plus,
    Minus,
    Star,
    Slash,
    DoubleSlash,
    Percent,
    DoubleStar,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Str(_) => "string literal".to_owned(),
            Tok::Name(n) => format!("name '{n}'"),
            Tok::Eof => "end of expression".to_owned(),
            other => format!("'{}'", other.text()),
        }
    }

    /// Source text of keyword and punctuation tokens.
    pub(crate) fn text(&self) -> &'static str {
        match self {
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::In => "in",
            Tok::Is => "is",
            Tok::True => "True",
            Tok::False => "False",
            Tok::None => "None",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::DoubleSlash => "//",
            Tok::Percent => "%",
            Tok::DoubleStar => "**",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::Name(_) | Tok::Eof => "",
        }
    }
}

/// A token with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
}

fn err(message: impl Into<String>, offset: usize) -> ParseError {
    ParseError { message: message.into(), offset }
}

/// Splits `src` into tokens, ending with [`Tok::Eof`] at `src.len()`.
#[cfg(test)]
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    match tokenize_prefix(src) {
        (toks, None) => Ok(toks),
        (_, Some(e)) => Err(e),
    }
}

/// Splits `src` into tokens. On a lexical error, returns the tokens before
/// it (terminated by [`Tok::Eof`] at the error offset) and the error, so the
/// parser can report an earlier syntax error first.
pub(crate) fn tokenize_prefix(src: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut toks = Vec::new();
    let error = lex_into(src, &mut toks).err();
    let end = error.as_ref().map_or(src.len(), |e| e.offset);
    toks.push(Token { tok: Tok::Eof, offset: end });
    (toks, error)
}

fn lex_into(src: &str, toks: &mut Vec<Token>) -> Result<(), ParseError> {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let two = bytes.get(i + 1).copied();
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'0'..=b'9' => {
                let (tok, end) = lex_number(src, i)?;
                i = end;
                tok
            }
            b'.' if two.is_some_and(|d| d.is_ascii_digit()) => {
                let (tok, end) = lex_number(src, i)?;
                i = end;
                tok
            }
            b'\'' | b'"' => {
                let (s, end) = lex_string(src, i)?;
                i = end;
                Tok::Str(s)
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let mut end = i + 1;
                while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                    end += 1;
                }
                let word = &src[i..end];
                i = end;
                keyword(word).unwrap_or_else(|| Tok::Name(word.to_owned()))
            }
            _ => {
                let (tok, len) = match (c, two) {
                    (b'/', Some(b'/')) => (Tok::DoubleSlash, 2),
                    (b'*', Some(b'*')) => (Tok::DoubleStar, 2),
                    (b'=', Some(b'=')) => (Tok::EqEq, 2),
                    (b'!', Some(b'=')) => (Tok::NotEq, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'+', _) => (Tok::Plus, 1),
                    (b'-', _) => (Tok::Minus, 1),
                    (b'*', _) => (Tok::Star, 1),
                    (b'/', _) => (Tok::Slash, 1),
                    (b'%', _) => (Tok::Percent, 1),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'(', _) => (Tok::LParen, 1),
                    (b')', _) => (Tok::RParen, 1),
                    (b'[', _) => (Tok::LBracket, 1),
                    (b']', _) => (Tok::RBracket, 1),
                    (b',', _) => (Tok::Comma, 1),
                    (b'.', _) => (Tok::Dot, 1),
                    _ => return Err(unexpected_char(src, i)),
                };
                i += len;
                tok
            }
        };
        toks.push(Token { tok, offset: start });
    }
    Ok(())
}

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "is" => Tok::Is,
        "True" | "true" => Tok::True,
        "False" | "false" => Tok::False,
        "None" | "null" => Tok::None,
        _ => return None,
    })
}

fn unexpected_char(src: &str, i: usize) -> ParseError {
    let c = src[i..].chars().next().unwrap_or('?');
    let hint = match c {
        '=' => "; use '==' to compare",
        '!' => "; use 'not' or '!='",
        '&' => "; use 'and'",
        '|' => "; use 'or'",
        _ => "",
    };
    err(format!("unexpected character '{c}'{hint}"), i)
}

/// Lexes a number literal starting at `start`; returns the token and the end
/// offset.
fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let bytes = src.as_bytes();
    let digits_end = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits_end(start);
    let mut is_float = false;
    if bytes.get(i) == Some(&b'.') {
        is_float = true;
        i = digits_end(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if !bytes.get(j).is_some_and(u8::is_ascii_digit) {
            return Err(err("invalid number literal: missing exponent digits", start));
        }
        is_float = true;
        i = digits_end(j);
    }
    if bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.') {
        return Err(err("invalid number literal", start));
    }
    let text = &src[start..i];
    let tok = if is_float {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Tok::Float(f),
            _ => return Err(err("float literal out of range", start)),
        }
    } else {
        match text.parse::<i64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => return Err(err("integer literal does not fit in 64 bits", start)),
        }
    };
    Ok((tok, i))
}

/// Lexes a quoted string starting at `start`; returns the decoded text and
/// the end offset (after the closing quote).
fn lex_string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src[start..].chars().next().unwrap_or('"');
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    let base = start + 1;
    while let Some((rel, c)) = chars.next() {
        let at = base + rel;
        match c {
            c if c == quote => return Ok((out, at + 1)),
            '\n' | '\r' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    '\n' => {}
                    '\\' | '\'' | '"' => out.push(e),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    '0'..='7' => {
                        let mut code = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek().and_then(|(_, d)| d.to_digit(8)) {
                                Some(d) => {
                                    code = code * 8 + d;
                                    chars.next();
                                }
                                None => break,
                            }
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    'x' | 'u' | 'U' => {
                        let width = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code: u32 = 0;
                        for _ in 0..width {
                            match chars.peek().and_then(|(_, d)| d.to_digit(16)) {
                                Some(d) => {
                                    code = code * 16 + d;
                                    chars.next();
                                }
                                None => {
                                    return Err(err(format!("truncated \\{e} escape in string literal"), at));
                                }
                            }
                        }
                        match char::from_u32(code) {
                            Some(ch) => out.push(ch),
                            None => {
                                return Err(err("invalid unicode escape in string literal", at));
                            }
                        }
                    }
                    other => {
                        // Like Python, an unknown escape keeps its backslash.
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(err("unterminated string literal", start))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("1 2.5 1e3 .5 3. 2E-2"),
            vec![
                Tok::Int(1),
                Tok::Float(2.5),
                Tok::Float(1000.0),
                Tok::Float(0.5),
                Tok::Float(3.0),
                Tok::Float(0.02),
                Tok::Eof
            ]
        );
        assert_eq!(tokenize("1e").unwrap_err().offset, 0);
        assert_eq!(tokenize("x + 12abc").unwrap_err().offset, 4);
        assert_eq!(tokenize("99999999999999999999").unwrap_err().offset, 0);
        assert_eq!(tokenize("1e999").unwrap_err().offset, 0);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#"'a\'b' "c\"d" 'x\ny' '\x41\u00e9\U0001F600' '\q' '\101'"#),
            vec![
                Tok::Str("a'b".into()),
                Tok::Str("c\"d".into()),
                Tok::Str("x\ny".into()),
                Tok::Str("A\u{e9}\u{1F600}".into()),
                Tok::Str("\\q".into()),
                Tok::Str("A".into()),
                Tok::Eof
            ]
        );
        assert_eq!(tokenize("x == 'abc").unwrap_err().offset, 5);
        assert_eq!(tokenize("'\\x4'").unwrap_err().offset, 1);
    }

    #[test]
    fn operators_keywords_and_offsets() {
        let toks = tokenize("a//b**c != null").unwrap();
        let offsets: Vec<usize> = toks.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, vec![0, 1, 3, 4, 6, 8, 11, 15]);
        assert_eq!(toks[6].tok, Tok::None);
        assert_eq!(kinds("true False")[..2], [Tok::True, Tok::False]);
    }

    #[test]
    fn bad_characters() {
        let e = tokenize("x = 1").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("'='"), "{e}");
        assert_eq!(tokenize("a && b").unwrap_err().offset, 2);
        assert_eq!(tokenize("a ; b").unwrap_err().offset, 2);
        assert_eq!(tokenize("é").unwrap_err().offset, 0);
    }
}
