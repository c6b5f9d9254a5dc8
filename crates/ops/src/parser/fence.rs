//! Markdown code fences around model output, removed the way the reference engine does.

use std::borrow::Cow;

/// The text a parser reads: `text` trimmed, and when it then starts with a code fence
/// (```` ``` ````, with or without a language) and has more than two lines, without its
/// first and last lines. Anything else is parsed as it is (prose before a fence included:
/// the reference engine does not look for one).
pub(crate) fn strip_code_fence(text: &str) -> Cow<'_, str> {
    let text = text.trim();
    if text.starts_with("```") {
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() > 2 {
            return Cow::Owned(lines[1..lines.len() - 1].join("\n"));
        }
    }
    Cow::Borrowed(text)
}

#[cfg(test)]
mod tests {
    use super::strip_code_fence;

    #[test]
    fn strips_a_leading_fence() {
        assert_eq!(strip_code_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_code_fence("  ```\na: 1\nb: 2\n```\n"), "a: 1\nb: 2");
        assert_eq!(strip_code_fence("\n\n```json\n[1]\n```  "), "[1]");
    }

    #[test]
    fn only_a_fence_at_the_start_counts() {
        let text = "Here you go:\n```json\n{\"a\": 1}\n```";
        assert_eq!(strip_code_fence(text), text);
        assert_eq!(strip_code_fence("{\"a\": 1}\n"), "{\"a\": 1}");
        assert_eq!(strip_code_fence("use `x` here"), "use `x` here");
    }

    #[test]
    fn the_last_line_goes_whatever_it_holds() {
        assert_eq!(strip_code_fence("```yaml\na: 1\nb: 2"), "a: 1");
        assert_eq!(strip_code_fence("```yaml\na: 1"), "```yaml\na: 1");
        assert_eq!(strip_code_fence("```"), "```");
    }

    #[test]
    fn handles_crlf_line_endings() {
        assert_eq!(strip_code_fence("```json\r\n[1]\r\n```\r\n"), "[1]\r");
    }
}
