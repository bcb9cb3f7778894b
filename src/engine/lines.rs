//! SQL text checked line by line as it streams into a client: the start of every line
//! is judged by a [`LineRule`] before any of it passes on (so a statement that would
//! switch databases is refused before the client receives it, and a dump's own psql
//! `\restrict` line is blanked), and the rule has the last word at the end (a dump's
//! trailer). Only the first [`HEAD_LIMIT`] bytes of a line after its indentation are
//! held back, so memory stays bounded whatever the lines' lengths.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::Error;

/// The bytes of a line's start (after its indentation) a rule sees, at most.
pub const HEAD_LIMIT: usize = 256;

/// Bytes read from the source at a time.
const INPUT_BUFFER: usize = 64 * 1024;

/// The start of a line, as a rule judges it.
#[derive(Debug)]
pub struct LineStart<'a> {
    /// The line after its indentation (leading ASCII whitespace), without its newline:
    /// whole, or its first [`HEAD_LIMIT`] bytes.
    pub text: &'a [u8],
    /// Whether `text` is the whole rest of the line.
    pub whole: bool,
    /// Whether whitespace came before `text`.
    pub indented: bool,
    /// The line's number, from 1.
    pub number: u64,
    /// Where the line starts in the text, in bytes.
    pub offset: u64,
}

impl LineStart<'_> {
    /// Whether the line holds nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        self.whole && self.text.trim_ascii().is_empty()
    }
}

/// What becomes of a line.
#[derive(Debug)]
pub enum Verdict {
    /// It passes on as it is.
    Pass,
    /// It passes on as an empty line (its newline kept, so that line numbers stay).
    Blank,
    /// The text is refused here: nothing of this line passes on.
    Refuse(Error),
}

/// Judges the lines of a text, in order, and the text as a whole at its end.
pub trait LineRule: Send {
    /// What becomes of the line starting as `line` says.
    fn judge(&mut self, line: &LineStart<'_>) -> Verdict;

    /// The text ended (after its last line was judged): an error refuses it.
    fn finish(&mut self) -> Result<(), Error>;
}

/// Where the scanner is in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In its indentation, which passes on as it comes (it cannot make a statement).
    Indent,
    /// In its first bytes after the indentation, held back until judged.
    Head,
    /// Past its judged start, passing on (or, blanked, dropped) up to its newline.
    Rest { blanked: bool },
}

/// Applies a [`LineRule`] to a text given in pieces, writing what passes.
#[derive(Debug)]
pub struct LineScanner<Rule> {
    rule: Rule,
    place: Place,
    head: Vec<u8>,
    indented: bool,
    number: u64,
    line_offset: u64,
    offset: u64,
}

impl<Rule: LineRule> LineScanner<Rule> {
    /// A scanner at the start of a text.
    pub fn new(rule: Rule) -> Self {
        LineScanner {
            rule,
            place: Place::Indent,
            head: Vec::with_capacity(HEAD_LIMIT),
            indented: false,
            number: 1,
            line_offset: 0,
            offset: 0,
        }
    }

    /// The rule, with what it noted so far.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Scans the next piece of the text, appending to `out` what passes (a line's
    /// start held back until it is judged).
    pub fn scan(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        while let Some(&first) = input.first() {
            let used = match self.place {
                Place::Indent if first == b'\n' => {
                    self.judge(true)?;
                    out.push(b'\n');
                    self.next_line(1);
                    1
                }
                Place::Indent => {
                    let indent = input.iter().position(|byte| *byte == b'\n' || !byte.is_ascii_whitespace());
                    let indent = indent.unwrap_or(input.len());
                    if indent == 0 {
                        self.place = Place::Head;
                    } else {
                        self.indented = true;
                        out.extend_from_slice(&input[..indent]);
                    }
                    indent
                }
                Place::Head => {
                    let room = HEAD_LIMIT - self.head.len();
                    let window = &input[..room.min(input.len())];
                    match memchr::memchr(b'\n', window) {
                        Some(end) => {
                            self.head.extend_from_slice(&window[..end]);
                            if self.judge(true)? {
                                out.extend_from_slice(&self.head);
                            }
                            out.push(b'\n');
                            self.next_line(end + 1);
                            end + 1
                        }
                        None => {
                            self.head.extend_from_slice(window);
                            if self.head.len() == HEAD_LIMIT {
                                let passes = self.judge(false)?;
                                if passes {
                                    out.extend_from_slice(&self.head);
                                }
                                self.place = Place::Rest { blanked: !passes };
                            }
                            window.len()
                        }
                    }
                }
                Place::Rest { blanked } => match memchr::memchr(b'\n', input) {
                    Some(end) => {
                        out.extend_from_slice(if blanked { b"\n" } else { &input[..=end] });
                        self.next_line(end + 1);
                        end + 1
                    }
                    None => {
                        if !blanked {
                            out.extend_from_slice(input);
                        }
                        input.len()
                    }
                },
            };
            self.offset += used as u64;
            input = &input[used..];
        }
        Ok(())
    }

    /// Ends the text: judges a last line without a newline, then the text as a whole.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let unfinished_line = self.offset > self.line_offset;
        if unfinished_line && matches!(self.place, Place::Indent | Place::Head) && self.judge(true)? {
            out.extend_from_slice(&self.head);
        }
        self.rule.finish()
    }

    /// Asks the rule about the current line's start; whether it passes (else it is
    /// blanked).
    fn judge(&mut self, whole: bool) -> Result<bool, Error> {
        let line = LineStart {
            text: &self.head,
            whole,
            indented: self.indented,
            number: self.number,
            offset: self.line_offset,
        };
        match self.rule.judge(&line) {
            Verdict::Pass => Ok(true),
            Verdict::Blank => Ok(false),
            Verdict::Refuse(error) => Err(error),
        }
    }

    /// Starts the next line, which begins `used` bytes into the piece being scanned.
    fn next_line(&mut self, used: usize) {
        self.line_offset = self.offset + used as u64;
        self.place = Place::Indent;
        self.head.clear();
        self.indented = false;
        self.number += 1;
    }
}

/// A text read through a [`LineScanner`]: what passes comes out; a refusal is a read
/// error carrying the rule's [`Error`] (see [`super::tool::carried`]), and stays one.
pub struct CheckedLines<R, Rule> {
    inner: R,
    scanner: LineScanner<Rule>,
    input: Box<[u8]>,
    out: Vec<u8>,
    served: usize,
    ended: bool,
    refused: bool,
}

impl<R, Rule: LineRule> CheckedLines<R, Rule> {
    /// Reads `inner` judged by `rule`.
    pub fn new(inner: R, rule: Rule) -> Self {
        CheckedLines {
            inner,
            scanner: LineScanner::new(rule),
            input: vec![0; INPUT_BUFFER].into_boxed_slice(),
            out: Vec::with_capacity(INPUT_BUFFER + HEAD_LIMIT),
            served: 0,
            ended: false,
            refused: false,
        }
    }

    /// The rule, with what it noted so far.
    pub fn rule(&self) -> &Rule {
        self.scanner.rule()
    }
}

impl<R: AsyncRead + Unpin, Rule: LineRule + Unpin> AsyncRead for CheckedLines<R, Rule> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.refused {
                return Poll::Ready(Err(std::io::Error::other("the data was refused")));
            }
            if this.served < this.out.len() {
                let count = buf.remaining().min(this.out.len() - this.served);
                buf.put_slice(&this.out[this.served..this.served + count]);
                this.served += count;
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            this.out.clear();
            this.served = 0;
            let mut read = ReadBuf::new(&mut this.input);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let count = read.filled().len();
            let scanned = if count == 0 {
                this.ended = true;
                this.scanner.finish(&mut this.out)
            } else {
                this.scanner.scan(&this.input[..count], &mut this.out)
            };
            if let Err(error) = scanned {
                this.refused = true;
                this.out.clear();
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Notes every line start it sees; blanks lines `#blank`, refuses lines `STOP`, and
    /// refuses a text whose last line was not `END`.
    #[derive(Default)]
    struct Noting {
        seen: Vec<(u64, u64, bool, bool, String)>,
        last: String,
    }

    impl LineRule for Noting {
        fn judge(&mut self, line: &LineStart<'_>) -> Verdict {
            let text = String::from_utf8_lossy(line.text).into_owned();
            self.seen.push((line.number, line.offset, line.indented, line.whole, text.clone()));
            if !line.is_blank() {
                self.last.clone_from(&text);
            }
            match text.as_str() {
                "#blank" => Verdict::Blank,
                "STOP" => Verdict::Refuse(Error::Corrupt(format!("stop at line {}", line.number))),
                _ => Verdict::Pass,
            }
        }

        fn finish(&mut self) -> Result<(), Error> {
            if self.last == "END" { Ok(()) } else { Err(Error::Corrupt("no END".to_owned())) }
        }
    }

    /// Scans `text` in pieces of `piece` bytes; what passed, or the error, and the rule.
    fn scan(text: &[u8], piece: usize) -> (Result<Vec<u8>, Error>, Noting) {
        let mut scanner = LineScanner::new(Noting::default());
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in text.chunks(piece) {
            result = scanner.scan(chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        let result = result.and_then(|()| scanner.finish(&mut out)).map(|()| out);
        (result, scanner.rule)
    }

    #[test]
    fn lines_pass_whole_or_blanked_in_any_pieces() {
        let long = "x".repeat(HEAD_LIMIT + 10);
        let text = format!("a\n  b c\n\n#blank\n{long}\n\t\nEND");
        let expected = format!("a\n  b c\n\n\n{long}\n\t\nEND");
        for piece in [1, 2, 3, 7, 64, 1 << 16] {
            let (out, rule) = scan(text.as_bytes(), piece);
            assert_eq!(String::from_utf8(out.unwrap()).unwrap(), expected, "pieces of {piece}");
            let seen: Vec<_> = rule.seen.iter().map(|(n, o, i, w, t)| (*n, *o, *i, *w, t.len())).collect();
            assert_eq!(
                seen,
                [
                    (1, 0, false, true, 1),
                    (2, 2, true, true, 3),
                    (3, 8, false, true, 0),
                    (4, 9, false, true, 6),
                    (5, 16, false, false, HEAD_LIMIT),
                    (6, 16 + long.len() as u64 + 1, true, true, 0),
                    (7, 16 + long.len() as u64 + 3, false, true, 3),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_refused_line_never_passes_and_the_end_is_judged() {
        for piece in [1, 4, 100] {
            let (out, _) = scan(b"ok\n  STOP\nEND\n", piece);
            assert!(matches!(out, Err(Error::Corrupt(message)) if message == "stop at line 2"));
            let mut scanner = LineScanner::new(Noting::default());
            let mut out = Vec::new();
            let refused = scanner.scan(b"ok\n  STOP\n", &mut out);
            assert!(refused.is_err());
            assert_eq!(out, b"ok\n  ", "the indentation passed, nothing of the statement");
            let (out, _) = scan(b"ok\nEND\nmore\n", piece);
            assert!(matches!(out, Err(Error::Corrupt(message)) if message == "no END"));
        }
    }

    #[tokio::test]
    async fn a_reader_yields_what_passes_and_keeps_refusing() {
        let mut reader = CheckedLines::new(&b"one\n#blank\nEND\n"[..], Noting::default());
        let mut out = String::new();
        reader.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "one\n\nEND\n");

        let mut reader = CheckedLines::new(&b"one\nSTOP\nEND\n"[..], Noting::default());
        let error = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
        let carried = crate::engine::tool::carried(error).expect("the rule's error");
        assert!(matches!(carried, Error::Corrupt(message) if message == "stop at line 2"));
        assert!(reader.read(&mut [0u8; 8]).await.is_err(), "a refusal stays one");
    }
}
