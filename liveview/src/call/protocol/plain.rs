//! The frames clients send nearly always, read without serde: an object of
//! `function`, `form`, `data`, `lang`, `room` and `ref`, each at most once;
//! strings without escapes or control characters; `form` and `data`
//! objects whose values are such strings, `true`, `false` or `null`; `ref`
//! a plain unsigned integer; `function` a name that can be called. For
//! anything else [`parse`] says `None` and the frame goes to serde_json:
//! this path never refuses a frame, so what is refused is decided in one
//! place.
//!
//! On the frames it reads, it gives what serde_json gives: JSON's four
//! whitespace characters between tokens, strings borrowed as they are
//! (serde_json would borrow them too: no escapes), nothing after the
//! object but whitespace.

use std::borrow::Cow;

use serde_json::Value;

use super::{Entries, Frame};
use crate::call::content::Val;
use crate::update::json;

/// Read `text` into `frame`, which is empty, if it is one of the plain
/// frames; `false` leaves `frame` partly written, for the caller to set
/// anew. The frame is written where it stands, not built and moved.
pub(super) fn read<'a>(text: &'a str, frame: &mut Frame<'a>) -> bool {
    read_members(text, frame).is_some()
}

/// The frame, if it is one of the plain frames.
#[cfg(test)]
pub(super) fn parse(text: &str) -> Option<Frame<'_>> {
    let mut frame = Frame::default();
    read(text, &mut frame).then_some(frame)
}

#[inline(always)]
fn read_members<'a>(text: &'a str, frame: &mut Frame<'a>) -> Option<()> {
    let mut scan = Scan { text, pos: 0 };
    scan.space();
    scan.eat(b'{')?;
    // The members read so far, a bit each: a member seen twice is
    // serde's to refuse.
    let mut seen = 0u8;
    loop {
        // An empty object, or a `,` before `}`, has no member here.
        scan.space();
        let member = scan.member()?;
        let bit = 1 << member as u8;
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match member {
            Member::Function => frame.function = Cow::Borrowed(scan.function()?),
            Member::Form => scan.object(&mut frame.form)?,
            Member::Data => scan.object(&mut frame.data)?,
            Member::Lang => frame.lang = Some(Cow::Borrowed(scan.string()?)),
            // The room is the connection's: the claim is read, not kept.
            Member::Room => drop(scan.string()?),
            Member::Ref => frame.reference = Some(scan.unsigned()?),
        }
        scan.space();
        match scan.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    scan.space();
    (scan.pos == text.len() && seen & (1 << Member::Function as u8) != 0).then_some(())
}

/// Where a string that starts at `at` ends, if it has no escapes: its
/// first `"`, `\\` or control character, looked for 8 bytes at a time
/// (the bytes after the string, up to the end of the text, are read but
/// not used).
#[inline(always)]
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(word) = word_at(bytes, at) {
        let flagged = json::escapes(word);
        if flagged != 0 {
            // The lowest flag is always right.
            return Some(at + (flagged.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter()
        .position(|&b| json::needs_escape(b))
        .map(|i| at + i)
}

/// The 8 bytes of `bytes` from `at`, read little-endian, when there are 8.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*word))
}

/// The members a plain frame may have.
#[derive(Clone, Copy)]
enum Member {
    Function,
    Form,
    Data,
    Lang,
    Room,
    Ref,
}

/// The first `N` bytes of `name` as [`word_at`] reads them, and a mask of
/// those bytes.
const fn word_of<const N: usize>(name: &[u8; N]) -> (u64, u64) {
    let mut word = 0;
    let mut i = 0;
    while i < N && i < 8 {
        word |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    let mask = if N >= 8 { u64::MAX } else { (1 << (8 * N)) - 1 };
    (word, mask)
}

// The member names, quotes included, as words: `"function"` is the one
// longer than a word, its last two bytes compared on their own.
const FORM: (u64, u64) = word_of(b"\"form\"");
const DATA: (u64, u64) = word_of(b"\"data\"");
const LANG: (u64, u64) = word_of(b"\"lang\"");
const ROOM: (u64, u64) = word_of(b"\"room\"");
const REF: (u64, u64) = word_of(b"\"ref\"");
const FUNCTION: (u64, u64) = word_of(b"\"functio");
const SIX: u64 = FORM.1;
// The same names with the `:` that nearly always follows.
const COLON: (u64, u64) = word_of(b"\"form\":");
const FORM_COLON: u64 = COLON.0;
const DATA_COLON: u64 = word_of(b"\"data\":").0;
const LANG_COLON: u64 = word_of(b"\"lang\":").0;
const ROOM_COLON: u64 = word_of(b"\"room\":").0;
const REF_COLON: (u64, u64) = word_of(b"\"ref\":");

/// The bytes of a name that can be called: `[A-Za-z0-9_.-]`, one look-up
/// a byte.
const NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-');
        b += 1;
    }
    table
};

/// Eight copies of the byte `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const HIGHS: u64 = splat(0x80);

/// The high bit of each byte of `word` that is at least `lo` and at most
/// `hi`, for bytes below 0x80 and `lo` of at least 0x20: no sum carries
/// into the next byte.
#[inline(always)]
const fn in_range(word: u64, lo: u8, hi: u8) -> u64 {
    word.wrapping_add(splat(0x80 - lo)) & !word.wrapping_add(splat(0x7f - hi)) & HIGHS
}

/// The high bit of each byte of `word` that [`NAME`] allows, eight bytes
/// at once.
#[inline(always)]
const fn name_bytes(word: u64) -> u64 {
    let ascii = !word & HIGHS;
    let low = word & !HIGHS;
    let letter = in_range(low | splat(0x20), b'a', b'z');
    let digit = in_range(low, b'0', b'9');
    let dash_dot = in_range(low, b'-', b'.');
    let underscore = in_range(low, b'_', b'_');
    (letter | digit | dash_dot | underscore) & ascii
}

struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// JSON's whitespace: space, tab, line feed, carriage return. Most
    /// frames have none, which costs one comparison.
    #[inline(always)]
    fn space(&mut self) {
        if self.peek().is_some_and(|byte| byte <= b' ') {
            self.more_space();
        }
    }

    #[cold]
    fn more_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The `:` after a member's name, with whitespace around it.
    #[inline(always)]
    fn colon(&mut self) -> Option<()> {
        self.space();
        self.eat(b':')?;
        self.space();
        Some(())
    }

    /// A string without escapes or control characters, borrowed. Its end
    /// is looked for 8 bytes at a time.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = string_end(self.text.as_bytes(), start)?;
        if self.text.as_bytes()[end] != b'"' {
            return None;
        }
        // Both ends are ASCII, so both are character boundaries.
        let text = &self.text[start..end];
        self.pos = end + 1;
        Some(text)
    }

    /// A member's name, quotes included, and the `:` after it: one of the
    /// six a plain frame has, compared as it is written, a word at a time
    /// (any other name, one with escapes, or one less than 8 bytes from
    /// the end of the text, leaves the frame to serde, so its text need
    /// not be read as a string first).
    #[inline(always)]
    fn member(&mut self) -> Option<Member> {
        let bytes = self.text.as_bytes();
        let word = word_at(bytes, self.pos)?;
        // Nearly always the `:` follows at once, and is compared with the
        // name.
        let (member, len) = match word & COLON.1 {
            w if w == FORM_COLON => (Member::Form, 7),
            w if w == DATA_COLON => (Member::Data, 7),
            w if w == LANG_COLON => (Member::Lang, 7),
            w if w == ROOM_COLON => (Member::Room, 7),
            _ if word == FUNCTION.0 && bytes.get(self.pos + 8..self.pos + 11) == Some(b"n\":") => {
                (Member::Function, 11)
            }
            _ if word & REF_COLON.1 == REF_COLON.0 => (Member::Ref, 6),
            _ => {
                let (member, len) = match word & SIX {
                    w if w == FORM.0 => (Member::Form, 6),
                    w if w == DATA.0 => (Member::Data, 6),
                    w if w == LANG.0 => (Member::Lang, 6),
                    w if w == ROOM.0 => (Member::Room, 6),
                    _ if word == FUNCTION.0
                        && bytes.get(self.pos + 8..self.pos + 10) == Some(b"n\"") =>
                    {
                        (Member::Function, 10)
                    }
                    _ if word & REF.1 == REF.0 => (Member::Ref, 5),
                    _ => return None,
                };
                self.pos += len;
                self.colon()?;
                return Some(member);
            }
        };
        self.pos += len;
        self.space();
        Some(member)
    }

    /// The `function` string, when it is a handler name that can be called
    /// (see [`is_valid_function`](super::is_valid_function)): its
    /// characters are checked eight at a time as its end is looked for.
    /// Any other string leaves the frame to serde, which refuses it.
    #[inline(always)]
    fn function(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut at = start;
        let end = loop {
            let Some(word) = word_at(bytes, at) else {
                let tail = bytes.get(at..)?;
                break at + tail.iter().position(|&b| !NAME[usize::from(b)])?;
            };
            let others = !name_bytes(word) & HIGHS;
            if others != 0 {
                break at + (others.trailing_zeros() / 8) as usize;
            }
            at += 8;
            if at - start > super::MAX_FUNCTION_LEN {
                return None;
            }
        };
        let len = end - start;
        if bytes.get(end) != Some(&b'"') || !(1..=super::MAX_FUNCTION_LEN).contains(&len) {
            return None;
        }
        // Both ends are ASCII, so both are character boundaries.
        let name = &self.text[start..end];
        self.pos = end + 1;
        Some(name)
    }

    /// Digits without a leading zero, that fit a `u64`. A sign, a fraction
    /// or an exponent leaves the frame to serde (the next token is then
    /// not `,` or `}`).
    fn unsigned(&mut self) -> Option<u64> {
        let digits = &self.text.as_bytes()[self.pos..];
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        let mut n: u64 = 0;
        for &d in &digits[..len] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.pos += len;
        Some(n)
    }

    /// An object of plain strings, `true`, `false` and `null`, its members
    /// added to `entries` (empty) in the order they came.
    #[inline(always)]
    fn object(&mut self, entries: &mut Entries<'a>) -> Option<()> {
        self.eat(b'{')?;
        self.space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.colon()?;
            let value = match self.peek()? {
                b'"' => Val::text(self.string()?),
                b't' => Val::Json(self.literal(b"true", Value::Bool(true))?),
                b'f' => Val::Json(self.literal(b"false", Value::Bool(false))?),
                b'n' => Val::Json(self.literal(b"null", Value::Null)?),
                _ => return None,
            };
            entries.push((Cow::Borrowed(key), value));
            self.space();
            match self.next()? {
                b',' => self.space(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn literal<const N: usize>(&mut self, word: &[u8; N], value: Value) -> Option<Value> {
        if self.text.as_bytes().get(self.pos..self.pos + N) != Some(word) {
            return None;
        }
        self.pos += N;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What [`name_bytes`] says of each byte of `word`, from [`NAME`].
    fn name_bytes_one_at_a_time(word: u64) -> u64 {
        word.to_le_bytes()
            .iter()
            .enumerate()
            .filter(|(_, b)| NAME[usize::from(**b)])
            .map(|(i, _)| 0x80 << (8 * i))
            .sum()
    }

    #[test]
    fn every_byte_is_a_name_byte_as_the_table_says() {
        for byte in 0..=u8::MAX {
            for filler in [0, b'a', b'"', 0x7f, 0x80, 0xff] {
                let mut bytes = [filler; 8];
                bytes[usize::from(byte) % 8] = byte;
                let word = u64::from_le_bytes(bytes);
                assert_eq!(
                    name_bytes(word),
                    name_bytes_one_at_a_time(word),
                    "{bytes:?}"
                );
            }
        }
    }

    #[test]
    fn member_names_are_read_as_words() {
        for (text, len) in [
            (r#""function":"f"}"#, Some(11)),
            (r#""function" : "f"}"#, Some(13)),
            (r#""form":{}}"#, Some(7)),
            (r#""form" :{}}"#, Some(8)),
            (r#""data":{}}"#, Some(7)),
            (r#""lang":"e"}"#, Some(7)),
            (r#""room":"r"}"#, Some(7)),
            (r#""room"	:	"r"}"#, Some(9)),
            (r#""ref":1}}"#, Some(6)),
            (r#""ref" :1}}"#, Some(7)),
            (r#""functiox":"#, None),
            (r#""functionx":"#, None),
            (r#""function"x:"f"}"#, None),
            (r#""forms":{}}"#, None),
            (r#""form"x{}}}"#, None),
            (r#""Form":{}}}"#, None),
            (r#""re":1}}}}"#, None),
            (r#""ref":1}"#, Some(6)),
            (r#""ref":1"#, None),
        ] {
            let mut scan = Scan { text, pos: 0 };
            let read = scan.member().map(|_| scan.pos);
            assert_eq!(read, len, "{text}");
        }
    }

    /// Where a string ends, as the first byte JSON escapes, looked at one
    /// byte at a time.
    fn string_end_one_at_a_time(bytes: &[u8], at: usize) -> Option<usize> {
        bytes
            .get(at..)?
            .iter()
            .position(|&b| json::needs_escape(b))
            .map(|i| at + i)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The end of a string found eight bytes at a time is the first
        /// byte to escape, also among bytes next to those (by value, or
        /// with only the high bit apart) and several of them in one word.
        #[test]
        fn a_strings_end_is_its_first_byte_to_escape(
            bytes in prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(vec![
                        b' ', b'!', b'#', b'[', b']', b'a', 0x7f, 0x80, 0x9f, 0xa0, 0xa1,
                        0xa2, 0xa3, 0xdb, 0xdc, 0xdd, 0xff,
                    ]),
                    1 => prop::sample::select(vec![0x00, 0x01, 0x1f, b'"', b'\\', b'\n']),
                    1 => any::<u8>(),
                ],
                0..40,
            ),
            at in 0..41usize,
        ) {
            prop_assert_eq!(string_end(&bytes, at), string_end_one_at_a_time(&bytes, at), "{:?} from {}", bytes, at);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn eight_name_bytes_at_once_are_each_as_the_table_says(word in any::<u64>()) {
            prop_assert_eq!(name_bytes(word), name_bytes_one_at_a_time(word));
        }

        #[test]
        fn a_function_is_read_when_it_can_be_called(
            name in prop_oneof![
                "[a-zA-Z0-9_.-]{0,70}",
                // Any byte but `"`, which would end the string early.
                "[a-zA-Z0-9_.-]{0,20}[\\x00-\\x21\\x23-\\x7f\u{e9}\u{1f600}][a-zA-Z0-9_.-]{0,20}",
                "[\\x20\\x21\\x23-\\x7f]{0,12}",
            ],
            after in prop::sample::select(vec!["}", " }", ",\"ref\":1}"]),
        ) {
            let text = format!(r#"{{"function":"{name}"{after}"#);
            let read = parse(&text).map(|frame| frame.function.into_owned());
            let callable = super::super::is_valid_function(&name);
            prop_assert_eq!(read.is_some(), callable, "{}", text);
            if callable {
                prop_assert_eq!(read.as_deref(), Some(name.as_str()));
            }
        }
    }
}
