//! An incremental parser of `text/event-stream` (the WHATWG "server-sent events" format), fed
//! with whatever byte slices the network delivers: events split across reads, several events in
//! one read, CR, LF or CRLF line ends (a CRLF split between two reads included), comments
//! (`: keep-alive`), multi-line `data`.

/// Longest line the parser buffers (a guard against a runaway upstream), in bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when one was given.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// The parser's state between reads.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous read ended with CR: a LF starting the next one belongs to that line end.
    after_cr: bool,
    /// `data` of the event being built (its lines joined with `\n`).
    data: String,
    /// Whether any `data` line was seen for the event being built.
    has_data: bool,
    event: Option<String>,
    /// Nothing was parsed yet (a leading byte-order mark is skipped).
    started: bool,
}

/// The stream carried a line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `bytes`, appending every event completed by them to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            bytes = bytes.strip_prefix(b"\n").unwrap_or(bytes);
        }
        while !bytes.is_empty() {
            // (A blank line, the end of an event, is found without the search.)
            let end = match bytes.first() {
                Some(b'\n' | b'\r') => Some(0),
                _ => memchr::memchr2(b'\n', b'\r', bytes),
            };
            match end {
                Some(i) => {
                    let (line, rest) = bytes.split_at(i);
                    let crlf = rest.first() == Some(&b'\r');
                    if self.line.is_empty() {
                        // The whole line is in this read: read in place, not copied.
                        if line.len() > MAX_LINE_BYTES {
                            return Err(LineTooLong);
                        }
                        self.end_line(line, out);
                    } else {
                        self.push_line_bytes(line)?;
                        // Read in place and cleared, keeping its capacity.
                        let buffered = std::mem::take(&mut self.line);
                        self.end_line(&buffered, out);
                        self.line = buffered;
                        self.line.clear();
                    }
                    bytes = rest.get(1..).unwrap_or_default();
                    if crlf {
                        if bytes.is_empty() {
                            self.after_cr = true;
                        } else {
                            bytes = bytes.strip_prefix(b"\n").unwrap_or(bytes);
                        }
                    }
                }
                None => {
                    self.push_line_bytes(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an unfinished last line ends, and an event with data that was not
    /// followed by a blank line is dispatched too.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, out);
        }
        self.dispatch(out);
    }

    fn push_line_bytes(&mut self, bytes: &[u8]) -> Result<(), LineTooLong> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// A line ended (without its line end). Invalid UTF-8 is replaced (U+FFFD); the field name
    /// and value are split at the first `:` before that, which gives the same as converting the
    /// line first (a `:` is never part of an invalid sequence).
    fn end_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        // (A line starting with ':' is a comment, such as a keep-alive.)
        match line.first() {
            None => self.dispatch(out),
            Some(b':') => {}
            Some(_) => {
                let (field, value) = match memchr::memchr(b':', line) {
                    Some(c) => {
                        let value = line.get(c + 1..).unwrap_or_default();
                        (line.get(..c).unwrap_or_default(), value.strip_prefix(b" ").unwrap_or(value))
                    }
                    None => (line, &[][..]),
                };
                match field {
                    b"data" => {
                        // Lines joined with `\n`.
                        if self.has_data {
                            self.data.push('\n');
                        }
                        push_lossy(&mut self.data, value);
                        self.has_data = true;
                    }
                    b"event" => {
                        let mut event = String::new();
                        push_lossy(&mut event, value);
                        self.event = Some(event);
                    }
                    // `id` and `retry` matter to reconnecting browsers, not to a relay.
                    _ => {}
                }
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let data = std::mem::take(&mut self.data);
        out.push(SseEvent { event, data });
    }
}

/// Append `bytes` as text, invalid UTF-8 replaced.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}
