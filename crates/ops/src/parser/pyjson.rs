//! The message Python's `json.loads` gives for text it rejects.
//!
//! A ParserOp's `error` output is data that graphs compare and route on, so a JSON
//! document that does not parse reports what the reference engine reports:
//! `Expecting value: line 1 column 1 (char 0)`. This module only finds the first error,
//! the way CPython's scanner meets it (positions count characters, not bytes); parsing
//! itself is serde_json's.

/// Where the reference engine's JSON parser stops, and why.
struct PyError {
    message: &'static str,
    /// Character offset into the text.
    at: usize,
}

type Scan = Result<usize, PyError>;

fn fail(message: &'static str, at: usize) -> PyError {
    PyError { message, at }
}

/// Python's `json.loads(text)` error message (`Expecting ',' delimiter: line 2 column 5
/// (char 12)`), or `None` when Python would accept the text.
pub(crate) fn error_message(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let err = if chars.first() == Some(&'\u{feff}') {
        fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
    } else {
        let s = Scanner { s: &chars, depth: std::cell::Cell::new(0) };
        match s.value(s.ws(0)).map(|end| s.ws(end)) {
            Ok(end) if end == chars.len() => return None,
            Ok(end) => fail("Extra data", end),
            Err(e) if e.message == TOO_DEEP => return None,
            Err(e) => e,
        }
    };
    let before = &chars[..err.at.min(chars.len())];
    let line = before.iter().filter(|&&c| c == '\n').count() + 1;
    let column = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
    Some(format!("{}: line {line} column {column} (char {})", err.message, err.at))
}

struct Scanner<'a> {
    s: &'a [char],
    /// Open arrays and objects: past [`MAX_DEPTH`] the scan gives up (Python raises a
    /// RecursionError there, not a decode error; this keeps the scan off the stack's end).
    depth: std::cell::Cell<usize>,
}

/// Nesting past which no Python-style message is given (serde_json's is used).
const MAX_DEPTH: usize = 256;

/// What stops the scan before it finds Python's error.
const TOO_DEEP: &str = "too deep";

impl Scanner<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn is(&self, i: usize, c: char) -> bool {
        self.at(i) == Some(c)
    }

    fn digit(&self, i: usize) -> bool {
        self.at(i).is_some_and(|c| c.is_ascii_digit())
    }

    /// Past JSON whitespace.
    fn ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    /// Whether `word` is at `i`, whole.
    fn word(&self, i: usize, word: &str) -> bool {
        let n = word.chars().count();
        i + n <= self.s.len() && self.s[i..i + n].iter().copied().eq(word.chars())
    }

    /// One value starting at `i`; returns the index past it.
    fn value(&self, i: usize) -> Scan {
        match self.at(i) {
            Some('"') => self.string(i + 1),
            Some(open @ ('{' | '[')) => {
                if self.depth.get() >= MAX_DEPTH {
                    return Err(fail(TOO_DEEP, i));
                }
                self.depth.set(self.depth.get() + 1);
                let end = if open == '{' { self.object(i + 1) } else { self.array(i + 1) };
                self.depth.set(self.depth.get() - 1);
                end
            }
            _ => {
                for w in ["null", "true", "false", "NaN", "Infinity", "-Infinity"] {
                    if self.word(i, w) {
                        return Ok(i + w.chars().count());
                    }
                }
                self.number(i)
            }
        }
    }

    fn number(&self, start: usize) -> Scan {
        let mut i = start;
        if self.is(i, '-') {
            i += 1;
        }
        match self.at(i) {
            Some('1'..='9') => {
                i += 1;
                while self.digit(i) {
                    i += 1;
                }
            }
            Some('0') => i += 1,
            _ => return Err(fail("Expecting value", start)),
        }
        if self.is(i, '.') && self.digit(i + 1) {
            i += 2;
            while self.digit(i) {
                i += 1;
            }
        }
        if matches!(self.at(i), Some('e' | 'E')) {
            let mut j = i + 1;
            if matches!(self.at(j), Some('+' | '-')) {
                j += 1;
            }
            if self.digit(j) {
                while self.digit(j) {
                    j += 1;
                }
                i = j;
            }
        }
        Ok(i)
    }

    /// A string whose opening quote is just before `i`.
    fn string(&self, mut i: usize) -> Scan {
        let begin = i - 1;
        loop {
            match self.at(i) {
                None => return Err(fail("Unterminated string starting at", begin)),
                Some('"') => return Ok(i + 1),
                Some(c) if (c as u32) <= 0x1f => return Err(fail("Invalid control character at", i)),
                Some('\\') => match self.at(i + 1) {
                    None => return Err(fail("Unterminated string starting at", begin)),
                    Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => i += 2,
                    Some('u') => i = self.unicode_escape(i + 2)?,
                    Some(_) => return Err(fail("Invalid \\escape", i)),
                },
                Some(_) => i += 1,
            }
        }
    }

    /// The four hex digits of a `\u` escape starting at `i` (and the low half of a
    /// surrogate pair right after it); returns the index past them.
    fn unicode_escape(&self, i: usize) -> Scan {
        let end = i + 4;
        let hex = |from: usize| -> Result<u32, PyError> {
            if from + 4 >= self.s.len() {
                return Err(fail("Invalid \\uXXXX escape", from - 1));
            }
            self.s[from..from + 4]
                .iter()
                .try_fold(0u32, |acc, c| c.to_digit(16).map(|d| acc * 16 + d))
                .ok_or_else(|| fail("Invalid \\uXXXX escape", from - 1))
        };
        let unit = hex(i)?;
        if (0xd800..0xdc00).contains(&unit) && self.is(end, '\\') && self.is(end + 1, 'u') {
            let low = hex(end + 2)?;
            if (0xdc00..0xe000).contains(&low) {
                return Ok(end + 6);
            }
        }
        Ok(end)
    }

    /// An object whose `{` is just before `i`.
    fn object(&self, i: usize) -> Scan {
        let mut i = self.ws(i);
        if self.is(i, '}') {
            return Ok(i + 1);
        }
        loop {
            if !self.is(i, '"') {
                return Err(fail("Expecting property name enclosed in double quotes", i));
            }
            i = self.ws(self.string(i + 1)?);
            if !self.is(i, ':') {
                return Err(fail("Expecting ':' delimiter", i));
            }
            i = self.ws(self.value(self.ws(i + 1))?);
            if self.is(i, '}') {
                return Ok(i + 1);
            }
            if !self.is(i, ',') {
                return Err(fail("Expecting ',' delimiter", i));
            }
            i = self.ws(i + 1);
        }
    }

    /// An array whose `[` is just before `i`.
    fn array(&self, i: usize) -> Scan {
        let mut i = self.ws(i);
        if self.is(i, ']') {
            return Ok(i + 1);
        }
        loop {
            i = self.ws(self.value(i)?);
            if self.is(i, ']') {
                return Ok(i + 1);
            }
            if !self.is(i, ',') {
                return Err(fail("Expecting ',' delimiter", i));
            }
            i = self.ws(i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    /// Each text with the message CPython 3.11's `json.loads` gives for it.
    #[test]
    fn messages_and_positions_are_pythons() {
        let cases = [
            ("not json at all", "Expecting value: line 1 column 1 (char 0)"),
            ("", "Expecting value: line 1 column 1 (char 0)"),
            ("{\"a\": 1,}", "Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
            ("[1, 2,]", "Expecting value: line 1 column 7 (char 6)"),
            ("{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"),
            ("{\"a\": 1 \"b\": 2}", "Expecting ',' delimiter: line 1 column 9 (char 8)"),
            ("[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
            ("{\"a\": 1}\n{\"b\": 2}", "Extra data: line 2 column 1 (char 9)"),
            ("{\"a\": \"x", "Unterminated string starting at: line 1 column 7 (char 6)"),
            ("{\n  \"é\": \"tab\there\"}", "Invalid control character at: line 2 column 12 (char 13)"),
            ("[\"a\\qb\"]", "Invalid \\escape: line 1 column 4 (char 3)"),
            ("[\"\\u12G4\"]", "Invalid \\uXXXX escape: line 1 column 4 (char 3)"),
            ("{'a': 1}", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("[01]", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
            ("[-]", "Expecting value: line 1 column 2 (char 1)"),
            ("[1.]", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
            ("\u{feff}{}", "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"),
            ("{\"a\":\n  tru}", "Expecting value: line 2 column 3 (char 8)"),
        ];
        for (text, want) in cases {
            assert_eq!(error_message(text).as_deref(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_gives_up_instead_of_overflowing() {
        let deep = "[".repeat(100_000);
        assert_eq!(error_message(&deep), None);
        let ok_depth = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(error_message(&ok_depth), None);
        let bad = format!("{}1 2{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(error_message(&bad).as_deref(), Some("Expecting ',' delimiter: line 1 column 203 (char 202)"));
    }

    #[test]
    fn what_python_accepts_has_no_message() {
        for text in
            ["{\"a\": [1, 2.5e-3, -0, true, null, \"\\u00e9\\ud83d\\ude00\"]}", " [ ] ", "NaN", "-Infinity", "1E+2"]
        {
            assert_eq!(error_message(text), None, "{text:?}");
        }
    }
}
