//! Shell-style name patterns for op names: `*` matches any run of characters (dots
//! included), `?` one character, everything else itself.

/// A compiled name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
    source: String,
}

impl Glob {
    /// Compile `pattern` (never fails: every string is a pattern).
    pub fn new(pattern: &str) -> Self {
        Self { pattern: pattern.chars().collect(), source: pattern.to_string() }
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches. Walks `text` in place (byte offsets of its
    /// characters), allocating nothing: this runs for every event a processor filters.
    pub fn is_match(&self, text: &str) -> bool {
        let p = &self.pattern;
        // `ti` is a byte offset into `text`, always on a character boundary.
        let (mut ti, mut pi) = (0usize, 0usize);
        // Where the last `*` was, and the text position it currently stands for.
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text.get(ti..).and_then(|rest| rest.chars().next()) {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&pc) if pc == '?' || pc == c => {
                    pi += 1;
                    ti += c.len_utf8();
                }
                _ => match star {
                    // Let the last `*` swallow one more character and retry.
                    Some((sp, st)) => {
                        let next = st + text.get(st..).and_then(|rest| rest.chars().next()).map_or(1, char::len_utf8);
                        pi = sp + 1;
                        ti = next;
                        star = Some((sp, next));
                    }
                    None => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|&c| c == '*')
    }

    /// Whether an op name matches: its full name (`graph.op`) or its short name (the part
    /// after the last `.`).
    pub fn matches_op(&self, op_name: &str) -> bool {
        self.is_match(op_name) || op_name.rsplit_once('.').is_some_and(|(_, short)| self.is_match(short))
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn literals_stars_and_question_marks() {
        let g = |p: &str, t: &str| Glob::new(p).is_match(t);
        assert!(g("main.x", "main.x"));
        assert!(!g("main.x", "main.xy"));
        assert!(g("main.*", "main.load_docs"));
        assert!(g("*", ""));
        assert!(g("*.llm_*", "sub.graph.llm_call"));
        assert!(!g("*.llm_*", "sub.graph.call"));
        assert!(g("a?c", "abc"));
        assert!(!g("a?c", "ac"));
        assert!(g("a*b*c", "a-b-b-c"));
        assert!(!g("a*b*c", "a-b-b-d"));
        assert!(g("é*", "été"));
        // Characters of several bytes, matched and swallowed whole.
        assert!(g("*té", "été"));
        assert!(g("?t?", "été"));
        assert!(!g("??", "é"));
        assert!(g("*☃*x", "a☃b☃x"));
        assert!(!g("*☃*x", "a☃b☃y"));
    }

    #[test]
    fn op_names_match_on_full_or_short_name() {
        let g = Glob::new("embed*");
        assert!(g.matches_op("main.embed_query"));
        assert!(g.matches_op("embed"));
        assert!(!g.matches_op("main.rerank"));
        assert!(Glob::new("main.*").matches_op("main.x"));
    }
}
