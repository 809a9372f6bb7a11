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
use crate::call::content::Few;
use crate::update::json;

/// The frame, if it is one of the plain frames.
pub(super) fn parse(text: &str) -> Option<Frame<'_>> {
    let mut scan = Scan { text, pos: 0 };
    scan.space();
    scan.eat(b'{')?;
    let mut function = None;
    let mut form = None;
    let mut data = None;
    let mut lang = None;
    let mut room = None;
    let mut reference = None;
    scan.space();
    if scan.peek() == Some(b'}') {
        // No `function`.
        return None;
    }
    loop {
        let member = scan.member()?;
        scan.space();
        scan.eat(b':')?;
        scan.space();
        match member {
            Member::Function => once(&mut function, scan.function()?)?,
            Member::Form => once(&mut form, scan.object()?)?,
            Member::Data => once(&mut data, scan.object()?)?,
            Member::Lang => once(&mut lang, scan.string()?)?,
            Member::Room => once(&mut room, scan.string()?)?,
            Member::Ref => once(&mut reference, scan.unsigned()?)?,
        }
        scan.space();
        match scan.next()? {
            b',' => scan.space(),
            b'}' => break,
            _ => return None,
        }
    }
    scan.space();
    if scan.pos != text.len() {
        return None;
    }
    Some(Frame {
        function: Cow::Borrowed(function?),
        form: form.unwrap_or_default(),
        data: data.unwrap_or_default(),
        lang: lang.map(Cow::Borrowed),
        reference,
    })
}

/// Where a string that starts at `at` ends, if it has no escapes: its
/// first `"`, `\\` or control character, looked for 8 bytes at a time
/// (the bytes after the string, up to the end of the text, are read but
/// not used).
#[inline(always)]
fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(word) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let word = u64::from_le_bytes(*word);
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

/// The members a plain frame may have.
enum Member {
    Function,
    Form,
    Data,
    Lang,
    Room,
    Ref,
}

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

/// A member seen twice is serde's to refuse.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
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

    /// A member's name, quotes included: one of the six a plain frame
    /// has, compared as it is written (any other name, or one with
    /// escapes, leaves the frame to serde, so its text need not be read
    /// as a string first).
    fn member(&mut self) -> Option<Member> {
        let rest = &self.text.as_bytes()[self.pos..];
        let (member, name): (_, &[u8]) = match rest.get(1)? {
            b'f' if rest.starts_with(b"\"function\"") => (Member::Function, b"\"function\""),
            b'f' if rest.starts_with(b"\"form\"") => (Member::Form, b"\"form\""),
            b'd' if rest.starts_with(b"\"data\"") => (Member::Data, b"\"data\""),
            b'l' if rest.starts_with(b"\"lang\"") => (Member::Lang, b"\"lang\""),
            b'r' if rest.starts_with(b"\"room\"") => (Member::Room, b"\"room\""),
            b'r' if rest.starts_with(b"\"ref\"") => (Member::Ref, b"\"ref\""),
            _ => return None,
        };
        self.pos += name.len();
        Some(member)
    }

    /// The `function` string, when it is a handler name that can be called
    /// (see [`is_valid_function`](super::is_valid_function)): its
    /// characters are checked as its end is looked for. Any other string
    /// leaves the frame to serde, which refuses it.
    fn function(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let bytes = &self.text.as_bytes()[start..];
        let len = bytes.iter().position(|&b| !NAME[usize::from(b)])?;
        if bytes[len] != b'"' || !(1..=super::MAX_FUNCTION_LEN).contains(&len) {
            return None;
        }
        // Both ends are ASCII, so both are character boundaries.
        let name = &self.text[start..start + len];
        self.pos = start + len + 1;
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
    /// in the order they came.
    fn object(&mut self) -> Option<Entries<'a>> {
        self.eat(b'{')?;
        let mut entries = Few::default();
        self.space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(entries);
        }
        loop {
            let key = self.string()?;
            self.space();
            self.eat(b':')?;
            self.space();
            let value = match self.peek()? {
                b'"' => Value::String(self.string()?.to_owned()),
                b't' => self.literal("true", Value::Bool(true))?,
                b'f' => self.literal("false", Value::Bool(false))?,
                b'n' => self.literal("null", Value::Null)?,
                _ => return None,
            };
            entries.push((Cow::Borrowed(key), value));
            self.space();
            match self.next()? {
                b',' => self.space(),
                b'}' => return Some(entries),
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        if !self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            return None;
        }
        self.pos += word.len();
        Some(value)
    }
}
