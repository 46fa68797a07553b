//! Line-oriented text: the one tokenizer of watchq's three line languages,
//! the key and device scripts (`watchq_kernel::script`), the scenario
//! language (`watchq run`) and policy files ([`crate::lsm::parse_policy`]),
//! and their one error type, [`ParseError`].
//!
//! Owns what the three languages share, so that each parser is only its
//! grammar:
//!
//! - **Lines** are split as [`str::lines`] splits them (at `\n`, a `\r`
//!   before it dropped) and numbered from 1: the numbers every error names.
//! - **Comments**: `#` starts one anywhere on a line, even inside a word, and
//!   there is no escape for it. A line with nothing but whitespace before its
//!   `#` (or no `#`) is blank.
//! - **Words** are separated by runs of whitespace in Unicode's sense
//!   ([`char::is_whitespace`]: spaces, tabs, a stray `\r`, form feeds, no-break
//!   spaces). There is **no quoting**: `"`, `'` and `\` are ordinary
//!   characters, so a word never holds a space or a `#`. None of the
//!   languages ever had quoting, and adding it now would change lines that
//!   work today (`add user k "x` adds a key whose payload is `"x`).
//! - **Numbers** ([`number`], [`hex`]): decimal with an optional sign, or
//!   `0x` and hex digits; any value the target type holds (`i128` in
//!   between holds every `u64` and every negative `i64`).
//! - **Text** that is not UTF-8 is refused with the line it breaks on
//!   ([`from_utf8`]).
//!
//! All of it is written by hand on `std` rather than taken from a crate:
//! splitting without quoting is a few lines over `char::is_whitespace`
//! (shell-words or shlex would bring the quoting the languages do not
//! have), numbers are `from_str_radix`, and a parser crate (nom, pest) would
//! weigh more than the grammars it would carry.

use std::fmt;

/// What is wrong with a line of a script, a scenario or a policy file.
///
/// Its [`Display`](fmt::Display) is `line N: what is wrong`, the form every
/// front door prints after the file's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl ParseError {
    /// An error at 1-based `line`.
    pub fn new(line: usize, msg: impl Into<String>) -> Self {
        ParseError {
            line,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// One line of text, tokenized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: usize,
    /// The line as written, without its line ending (a policy block inside
    /// a scenario is kept this way, for the policy parser to read again).
    pub raw: &'a str,
    /// The line without its comment, trimmed: what a step or command is
    /// called when it is printed.
    pub text: &'a str,
    /// The words of `text`.
    pub words: Vec<&'a str>,
    /// Where each word starts in `text`.
    starts: Vec<usize>,
}

impl<'a> Line<'a> {
    /// Tokenizes `raw`, line `number` of its text.
    pub fn new(number: usize, raw: &'a str) -> Self {
        let text = raw.split('#').next().unwrap_or("").trim();
        let (mut words, mut starts) = (Vec::new(), Vec::new());
        let mut start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    words.push(&text[s..i]);
                    starts.push(s);
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        Line {
            number,
            raw,
            text,
            words,
            starts,
        }
    }

    /// Nothing but whitespace and a comment?
    pub fn is_blank(&self) -> bool {
        self.words.is_empty()
    }

    /// The text from word `i` on, as written (the whitespace between later
    /// words kept); empty if there is no word `i`.
    pub fn rest(&self, i: usize) -> &'a str {
        self.starts.get(i).map_or("", |&s| &self.text[s..])
    }

    /// An error on this line.
    pub fn error(&self, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.number, msg)
    }
}

/// Every line of `text`, blank ones included, numbered from 1.
pub fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().enumerate().map(|(i, l)| Line::new(i + 1, l))
}

/// The number of the last line of `text` (1 for an empty text): where an
/// error about the whole text points.
pub fn last_line(text: &str) -> usize {
    text.lines().count().max(1)
}

/// `s` is a non-empty string of digits in `radix`, and their value fits.
fn digits(s: &str, radix: u32) -> Option<i128> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i128::from_str_radix(s, radix).ok()
}

/// Parses a number word: decimal with an optional sign (`42`, `-1`, `+7`)
/// or `0x` and hex digits (`0xff`, no sign after the `0x`), in the range of
/// `T` (every `u64`: sectors and attributes take the whole range).
///
/// # Errors
/// `WHAT "WORD" is not a number in range`.
pub fn number<T: TryFrom<i128>>(word: &str, what: &str) -> Result<T, String> {
    let v = match word.strip_prefix("0x") {
        Some(h) => digits(h, 16),
        None => word.parse::<i128>().ok(),
    };
    v.and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{what} {word:?} is not a number in range"))
}

/// Parses a word that is always hex (a key permission mask): hex digits,
/// with or without `0x` before them, in the range of `T`.
///
/// # Errors
/// `WHAT "WORD" is not hex`.
pub fn hex<T: TryFrom<i128>>(word: &str, what: &str) -> Result<T, String> {
    digits(word.strip_prefix("0x").unwrap_or(word), 16)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("{what} {word:?} is not hex"))
}

/// The text of a file, or the line its first byte that is not UTF-8 is on.
///
/// # Errors
/// `line N: not UTF-8 (byte 0xBB)`.
pub fn from_utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        ParseError::new(line, format!("not UTF-8 (byte {:#04x})", bytes[at]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &str) -> Vec<&str> {
        Line::new(1, raw).words
    }

    #[test]
    fn text_words_split_at_any_whitespace() {
        assert_eq!(words("add user  a\tx"), ["add", "user", "a", "x"]);
        assert_eq!(words("  lead and trail \t "), ["lead", "and", "trail"]);
        // A stray CR, a form feed, a vertical tab, a no-break space.
        assert_eq!(words("a\rb\x0cc\x0bd\u{a0}e"), ["a", "b", "c", "d", "e"]);
        // NUL and other controls are not whitespace: part of a word.
        assert_eq!(words("a\0b c"), ["a\0b", "c"]);
        assert_eq!(words("clé ünïcode"), ["clé", "ünïcode"]);
        // The same words as std's split_whitespace, on the odd cases too.
        for s in [
            "",
            " ",
            "\t\t",
            "x",
            " x ",
            "a \u{2003} b",
            "é\u{85}é",
            "a\u{3000}",
        ] {
            let std: Vec<&str> = s.split_whitespace().collect();
            assert_eq!(words(s), std, "{s:?}");
        }
    }

    #[test]
    fn text_there_is_no_quoting() {
        assert_eq!(
            words(r#"add user k "hello world""#),
            ["add", "user", "k", "\"hello", "world\""]
        );
        assert_eq!(words(r"a\ b 'c d'"), [r"a\", "b", "'c", "d'"]);
    }

    #[test]
    fn text_comments_start_anywhere() {
        let l = Line::new(3, "  add user a x @s   # trailing comment");
        assert_eq!(l.text, "add user a x @s");
        assert_eq!(l.words, ["add", "user", "a", "x", "@s"]);
        assert_eq!(l.raw, "  add user a x @s   # trailing comment");
        // Inside a word, and in a quote: still a comment.
        assert_eq!(words("update a#b x"), ["update", "a"]);
        assert_eq!(words("update \"a # b\""), ["update", "\"a"]);
        for blank in ["", "   ", "\t", "# all comment", "   # indented", "#", "\r"] {
            assert!(Line::new(1, blank).is_blank(), "{blank:?}");
        }
        assert!(!Line::new(1, "x#").is_blank());
    }

    #[test]
    fn text_rest_keeps_the_spacing() {
        let l = Line::new(1, "expect  KEY 1   change=3 # why");
        assert_eq!(l.rest(0), "expect  KEY 1   change=3");
        assert_eq!(l.rest(1), "KEY 1   change=3");
        assert_eq!(l.rest(3), "change=3");
        assert_eq!(l.rest(4), "");
        assert_eq!(Line::new(1, "").rest(0), "");
    }

    #[test]
    fn text_lines_are_numbered_from_one() {
        let text = "a\r\n\n  # c\nb c\r\nlast";
        let got: Vec<(usize, &str, Vec<&str>)> =
            lines(text).map(|l| (l.number, l.raw, l.words)).collect();
        assert_eq!(
            got,
            [
                (1, "a", vec!["a"]),
                (2, "", vec![]),
                (3, "  # c", vec![]),
                (4, "b c", vec!["b", "c"]),
                (5, "last", vec!["last"]),
            ]
        );
        assert_eq!(last_line(text), 5);
        assert_eq!(last_line(""), 1);
        assert_eq!(last_line("one\n"), 1);
        assert_eq!(last_line("one\ntwo\n"), 2);
        // Every error a line makes names that line.
        let bad = lines(text).find(|l| l.words.len() == 2).unwrap();
        assert_eq!(bad.error("two words").to_string(), "line 4: two words");
    }

    #[test]
    fn text_error_is_an_error() {
        let e = ParseError::new(7, "usage: update <key> <payload>");
        assert_eq!(e.to_string(), "line 7: usage: update <key> <payload>");
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert_eq!(boxed.to_string(), e.to_string());
    }

    #[test]
    fn text_numbers_take_the_whole_range_of_their_type() {
        assert_eq!(number::<u64>("18446744073709551615", "n"), Ok(u64::MAX));
        assert_eq!(number::<u64>("0xffffffffffffffff", "n"), Ok(u64::MAX));
        assert_eq!(number::<u64>("0", "n"), Ok(0));
        assert_eq!(number::<u64>("-0", "n"), Ok(0));
        assert_eq!(number::<u64>("+42", "n"), Ok(42));
        assert_eq!(number::<i64>("-9223372036854775808", "n"), Ok(i64::MIN));
        assert_eq!(number::<i32>("-1", "tag"), Ok(-1));
        assert_eq!(number::<u8>("0xFf", "n"), Ok(255));
        assert_eq!(number::<i32>("0x10000001", "key"), Ok(0x1000_0001));
        for (word, why) in [
            ("18446744073709551616", "2^64"),
            ("0x10000000000000000", "2^64 in hex"),
            ("-1", "negative"),
            ("0x", "no digits"),
            ("", "empty"),
            ("-", "a sign alone"),
            ("+", "a sign alone"),
            ("0x-1", "a sign after 0x"),
            ("0x+1", "a sign after 0x"),
            ("-0x1", "a sign before 0x"),
            ("0X1", "a capital X"),
            ("0xzz", "not hex"),
            ("1e9", "an exponent"),
            ("1_000", "a separator"),
            (" 1", "whitespace"),
            ("٣", "a non-ASCII digit"),
            ("999999999999999999999999999999999999999999", "beyond i128"),
        ] {
            assert_eq!(
                number::<u64>(word, "n"),
                Err(format!("n {word:?} is not a number in range")),
                "{why}"
            );
        }
        assert!(number::<i32>("2147483648", "tag").is_err());
        assert!(number::<i32>("0xffffffff", "tag").is_err());
        assert!(number::<u8>("256", "subtype").is_err());
    }

    #[test]
    fn text_hex_words() {
        assert_eq!(hex::<u32>("3f3f0000", "permission"), Ok(0x3f3f_0000));
        assert_eq!(hex::<u32>("0x3f3f0000", "permission"), Ok(0x3f3f_0000));
        assert_eq!(hex::<u32>("ffffffff", "permission"), Ok(u32::MAX));
        for bad in ["rwx", "", "0x", "100000000", "0x0x3f", "+3f", "-1", "3f "] {
            assert_eq!(
                hex::<u32>(bad, "permission"),
                Err(format!("permission {bad:?} is not hex")),
            );
        }
    }

    #[test]
    fn text_bad_utf8_names_its_line() {
        assert_eq!(from_utf8(b"a\nb\n"), Ok("a\nb\n"));
        let e = from_utf8(b"add user a x\n\nupdate a \xff\n").unwrap_err();
        assert_eq!(e, ParseError::new(3, "not UTF-8 (byte 0xff)"));
        // A sequence cut short at the very end.
        assert_eq!(from_utf8(b"\xc3").unwrap_err().line, 1);
        assert_eq!(from_utf8(b"ok\n\xc3").unwrap_err().line, 2);
        // The text a lossy decoder makes of it still tokenizes.
        let lossy = String::from_utf8_lossy(b"a \xff b");
        assert_eq!(words(&lossy), ["a", "\u{fffd}", "b"]);
    }
}
