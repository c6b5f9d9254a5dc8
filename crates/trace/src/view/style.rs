//! Colours (plain ANSI codes, only when asked) and the number formats the views share.

use serde_json::Value;

/// Paints text when colour is on; passes it through otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint {
    color: bool,
}

impl Paint {
    pub(crate) fn new(color: bool) -> Self {
        Self { color }
    }

    fn wrap(self, code: &str, s: &str) -> String {
        if self.color && !s.is_empty() { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    pub(crate) fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }

    pub(crate) fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }

    pub(crate) fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }

    pub(crate) fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }

    pub(crate) fn cyan(self, s: &str) -> String {
        self.wrap("36", s)
    }

    pub(crate) fn magenta(self, s: &str) -> String {
        self.wrap("35", s)
    }

    pub(crate) fn blue(self, s: &str) -> String {
        self.wrap("34", s)
    }

    /// `text` in the colour of `status` (`ok` green, `error` red, ...).
    pub(crate) fn status(self, status: &str, text: &str) -> String {
        match status {
            "ok" => self.wrap("32", text),
            "error" | "crashed" => self.wrap("31", text),
            "running" => self.wrap("36", text),
            _ => self.wrap("33", text),
        }
    }
}

/// `text` left-aligned in `width` characters.
pub(crate) fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

/// `text` right-aligned in `width` characters.
pub(crate) fn rpad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{}{text}", " ".repeat(width.saturating_sub(n)))
}

/// `0.42ms`, `12.3ms`, `850ms`, `1.25s`, `2m03s`.
pub(crate) fn duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".to_string();
    }
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `$0.0012`, `$1.23`, or `-` for nothing.
pub(crate) fn cost(usd: f64) -> String {
    if !usd.is_finite() || usd <= 0.0 {
        "-".to_string()
    } else if usd < 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

/// The first line of `s`, at most `max` characters (`…` marks a cut).
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    let cut = line.chars().count() > max || s.lines().nth(1).is_some();
    if !cut {
        return line.to_string();
    }
    let head: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{head}…")
}

/// A value as compact one-line JSON (strings unquoted), at most `max` characters. Media
/// references read as `[media image/png 12.3 KiB sha256:ab12cd34ef56…]`.
pub(crate) fn preview(v: &Value, max: usize) -> String {
    let v = crate::media::replace_references(v, &|m| Value::String(m.label()));
    let text = match v.as_ref() {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    one_line(&text.replace('\n', "⏎"), max)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(duration(0.4213), "0.42ms");
        assert_eq!(duration(12.34), "12.3ms");
        assert_eq!(duration(850.2), "850ms");
        assert_eq!(duration(1250.0), "1.25s");
        assert_eq!(duration(123_000.0), "2m03s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(100), "100");
        assert_eq!(cost(0.0), "-");
        assert_eq!(cost(0.00123), "$0.0012");
        assert_eq!(cost(1.234), "$1.23");
    }

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview(&json!({"a": [1, 2]}), 40), r#"{"a":[1,2]}"#);
        assert_eq!(preview(&json!("line one\nline two"), 40), "line one⏎line two");
        assert_eq!(preview(&json!("日本語のテキスト"), 4), "日本語…");
        assert_eq!(one_line("first\nsecond", 40), "first…");
        let media = crate::media::MediaRef::of(b"\x89PNG\r\n\x1a\n", "image/png").to_value();
        assert_eq!(preview(&media, 80), "[media image/png 8 B sha256:4c4b6a3be131…]");
        assert_eq!(preview(&json!({"img": media}), 80), r#"{"img":"[media image/png 8 B sha256:4c4b6a3be131…]"}"#);
    }

    #[test]
    fn paint_only_when_asked() {
        assert_eq!(Paint::new(false).red("x"), "x");
        assert_eq!(Paint::new(true).red("x"), "\x1b[31mx\x1b[0m");
        assert_eq!(Paint::new(true).status("ok", "ok"), "\x1b[32mok\x1b[0m");
    }
}
