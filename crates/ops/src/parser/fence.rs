//! Markdown code fences around model output.

/// The marker opening and closing a fenced block.
const FENCE: &str = "```";

/// Return the body of the first fenced code block in `text`, or `text`
/// unchanged when it has no fence line.
///
/// A fence line is a line starting (after indentation) with three
/// backticks; its first line (e.g. ```` ```json ````) is dropped, and the
/// body runs up to the next fence line, or to the end of the text when the
/// block is not closed. Prose before and after the block is ignored.
pub(crate) fn strip_code_fence(text: &str) -> &str {
    let Some(open) = find_fence_line(text, 0) else {
        return text;
    };
    let body_start = line_end(text, open);
    match find_fence_line(text, body_start) {
        Some(close) => &text[body_start..close],
        None => &text[body_start..],
    }
}

/// The byte offset of the first line at or after `from` (a line start) that
/// begins with a fence, if any.
fn find_fence_line(text: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while start < text.len() {
        let rest = &text[start..];
        if rest.trim_start_matches([' ', '\t']).starts_with(FENCE) {
            return Some(start);
        }
        start = line_end(text, start);
    }
    None
}

/// The offset just past the end of the line starting at `start` (after
/// its `\n`, or the end of the text).
fn line_end(text: &str, start: usize) -> usize {
    match text[start..].find('\n') {
        Some(i) => start + i + 1,
        None => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_code_fence;

    #[test]
    fn strips_a_leading_fence() {
        assert_eq!(strip_code_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}\n");
        assert_eq!(strip_code_fence("  ```\na: 1\nb: 2\n```\n"), "a: 1\nb: 2\n");
    }

    #[test]
    fn extracts_a_fence_after_prose() {
        let text = "Here you go:\n```json\n{\"a\": 1}\n```\nthanks";
        assert_eq!(strip_code_fence(text), "{\"a\": 1}\n");
    }

    #[test]
    fn handles_unclosed_and_absent_fences() {
        assert_eq!(strip_code_fence("```yaml\na: 1"), "a: 1");
        assert_eq!(strip_code_fence("{\"a\": 1}"), "{\"a\": 1}");
        assert_eq!(strip_code_fence("use `x` here"), "use `x` here");
        assert_eq!(strip_code_fence("```"), "");
    }

    #[test]
    fn handles_crlf_line_endings() {
        assert_eq!(strip_code_fence("```json\r\n[1]\r\n```\r\n"), "[1]\r\n");
    }
}
