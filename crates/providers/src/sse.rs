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
    /// `data` of the event being built (each line followed by `\n`).
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
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.push_line_bytes(&bytes[..i])?;
                    let crlf = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    if crlf {
                        if bytes.is_empty() {
                            self.after_cr = true;
                        } else {
                            bytes = bytes.strip_prefix(b"\n").unwrap_or(bytes);
                        }
                    }
                    self.end_line(out);
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
            self.end_line(out);
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

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if self.line.is_empty() {
            self.dispatch(out);
            return;
        }
        // The line buffer is read in place and cleared, keeping its capacity: taking it out
        // would cost an allocation per line.
        if self.line[0] != b':' {
            // (A line starting with ':' is a comment, such as a keep-alive.)
            let line = String::from_utf8_lossy(&self.line);
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => {
                    self.data.push_str(value);
                    self.data.push('\n');
                    self.has_data = true;
                }
                "event" => self.event = Some(value.to_owned()),
                // `id` and `retry` matter to reconnecting browsers, not to a relay.
                _ => {}
            }
        }
        self.line.clear();
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent { event, data });
    }
}
