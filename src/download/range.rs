//! The `Range` header of a download: one byte range (`bytes=a-b`, `bytes=a-`,
//! `bytes=-n`) of an object of known size.
//!
//! Following RFC 9110 §14.2, a header that is not one well-formed byte range (several
//! ranges, another unit, garbage) is ignored and the whole object served; a well-formed
//! range that starts past the end is unsatisfiable (416).

/// What to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The whole object (no usable `Range` header): 200.
    Whole,
    /// Bytes `start..=end` of the object: 206 with `Content-Range`.
    Part {
        /// The first byte.
        start: u64,
        /// The last byte (inclusive, less than the size).
        end: u64,
    },
    /// No byte of the object is in the range: 416.
    Unsatisfiable,
}

impl Range {
    /// The first byte and the number of bytes to send, for an object of `size` bytes
    /// (`None` for [`Range::Unsatisfiable`]).
    pub fn span(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Range::Whole => Some((0, size)),
            Range::Part { start, end } => Some((start, end - start + 1)),
            Range::Unsatisfiable => None,
        }
    }
}

/// Reads a `Range` header (`None`: absent) against an object of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> Range {
    let Some(header) = header else { return Range::Whole };
    let Some((unit, spec)) = header.trim().split_once('=') else { return Range::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Range::Whole };
    let (first, last) = (first.trim(), last.trim());
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                Range::Unsatisfiable
            } else {
                Range::Part { start: size.saturating_sub(suffix), end: size - 1 }
            }
        }
        // `a-`: from a to the end.
        (Some(start), None) if last.is_empty() => part(start, u64::MAX, size),
        // `a-b`.
        (Some(start), Some(end)) if start <= end => part(start, end, size),
        _ => Range::Whole,
    }
}

fn part(start: u64, end: u64, size: u64) -> Range {
    if start >= size { Range::Unsatisfiable } else { Range::Part { start, end: end.min(size - 1) } }
}

// Digits only: no sign, no spaces inside, no empty text.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: Option<&str>, size: u64, expected: Range) {
        assert_eq!(parse(header, size), expected, "{header:?} of {size} bytes");
    }

    fn part(start: u64, end: u64) -> Range {
        Range::Part { start, end }
    }

    #[test]
    fn ranges() {
        for (header, size, expected) in [
            (None, 100, Range::Whole),
            (Some("bytes=0-9"), 100, part(0, 9)),
            (Some("bytes=10-10"), 100, part(10, 10)),
            (Some("bytes=90-"), 100, part(90, 99)),
            (Some("bytes=0-"), 100, part(0, 99)),
            (Some("bytes=-10"), 100, part(90, 99)),
            (Some("bytes=-500"), 100, part(0, 99)),
            (Some("bytes=50-500"), 100, part(50, 99)),
            (Some("BYTES = 5 - 6"), 100, part(5, 6)),
            (Some("bytes=99-99"), 100, part(99, 99)),
            // Unsatisfiable: starts at or past the end, or asks for nothing.
            (Some("bytes=100-"), 100, Range::Unsatisfiable),
            (Some("bytes=100-200"), 100, Range::Unsatisfiable),
            (Some("bytes=-0"), 100, Range::Unsatisfiable),
            (Some("bytes=0-"), 0, Range::Unsatisfiable),
            (Some("bytes=-5"), 0, Range::Unsatisfiable),
            // Not one well-formed byte range: ignored.
            (Some("bytes=9-0"), 100, Range::Whole),
            (Some("bytes=0-1,5-6"), 100, Range::Whole),
            (Some("items=0-1"), 100, Range::Whole),
            (Some("bytes=a-b"), 100, Range::Whole),
            (Some("bytes=-"), 100, Range::Whole),
            (Some("bytes=+1-2"), 100, Range::Whole),
            (Some("bytes=1"), 100, Range::Whole),
            (Some("0-1"), 100, Range::Whole),
            (Some("bytes=99999999999999999999999-"), 100, Range::Whole),
        ] {
            check(header, size, expected);
        }
    }

    #[test]
    fn spans() {
        assert_eq!(Range::Whole.span(100), Some((0, 100)));
        assert_eq!(part(90, 99).span(100), Some((90, 10)));
        assert_eq!(Range::Unsatisfiable.span(100), None);
    }
}
