//! A byte-level server-sent-events decoder. Bytes are buffered and only complete lines
//! are decoded, so a UTF-8 character split across network chunks survives; multi-line
//! `data:` fields are joined with `\n` as the SSE format specifies.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE decoder: feed bytes as they arrive, get complete events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already scanned for a line end.
    scanned: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
}

/// The stream was not valid UTF-8 text.
#[derive(Debug, thiserror::Error)]
#[error("event stream is not valid UTF-8: {0}")]
pub struct SseError(#[from] std::str::Utf8Error);

impl SseDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed `bytes`; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b == b'\n' || b == b'\r' {
                // A '\r' at the end of the buffer may be the first half of "\r\n".
                if b == b'\r' && i + 1 == self.buf.len() {
                    break;
                }
                let line = std::str::from_utf8(&self.buf[start..i])?.to_owned();
                let next = if b == b'\r' && self.buf.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
                self.line(&line, &mut events);
                start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.buf.drain(..start);
        self.scanned = i - start;
        Ok(events)
    }

    /// The stream ended: dispatch a final event that had no trailing blank line.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let mut events = Vec::new();
        if !rest.is_empty() {
            let line = std::str::from_utf8(&rest)?.trim_end_matches('\r').to_owned();
            self.line(&line, &mut events);
        }
        self.line("", &mut events);
        Ok(events.pop())
    }

    fn line(&mut self, line: &str, events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data || self.event.is_some() {
                events.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data) });
                self.has_data = false;
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_bytewise(input: &[u8]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for b in input {
            out.extend(d.push(std::slice::from_ref(b)).unwrap());
        }
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn multibyte_split_across_chunks_survives() {
        let text = "data: {\"c\":\"chào 🌍\"}\n\n";
        let events = feed_bytewise(text.as_bytes());
        assert_eq!(events, vec![SseEvent { event: None, data: "{\"c\":\"chào 🌍\"}".into() }]);
    }

    #[test]
    fn crlf_cr_multiline_comments_and_named_events() {
        let text = b": keep-alive\r\nevent: message_start\r\ndata: a\r\ndata: b\r\n\r\ndata:c\r\rdata: tail";
        let events = feed_bytewise(text);
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("message_start".into()), data: "a\nb".into() },
                SseEvent { event: None, data: "c".into() },
                SseEvent { event: None, data: "tail".into() },
            ]
        );
    }

    #[test]
    fn invalid_utf8_in_a_complete_line_is_an_error() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"data: \xff\xfe\n").is_err());
    }
}
