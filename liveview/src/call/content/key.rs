//! The keys of [`Fields`](super::Fields): the short ones (nearly all: input
//! names) kept in place, so that a call's fields cost no allocation for
//! their keys, nor a free when the call ends.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// Longest key kept in place.
const INLINE: usize = 22;

/// A key, in place when it has at most [`INLINE`] bytes. Ordered and
/// compared by its bytes, as `str` is.
#[derive(Clone)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    /// The key's bytes: UTF-8, as the key was made from text.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(text) => text.as_bytes(),
        }
    }

    /// The key as text. Checks the bytes again (the crate has no unsafe
    /// code), so hot paths compare [`Key::as_bytes`] instead.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Inline { .. } => {
                std::str::from_utf8(self.as_bytes()).expect("a key is made from text")
            }
            Self::Heap(text) => text,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// The key without its first `n` bytes, which are ASCII.
    pub(crate) fn drop_prefix(&mut self, n: usize) {
        *self = match self {
            Self::Inline { len, bytes } => {
                let len = usize::from(*len);
                bytes.copy_within(n..len, 0);
                Self::Inline {
                    len: (len - n) as u8,
                    bytes: *bytes,
                }
            }
            Self::Heap(text) => Self::from(&text[n..]),
        };
    }
}

impl Key {
    /// `text` in place, when it is short enough.
    #[inline]
    pub(crate) fn short(text: &str) -> Option<Self> {
        match u8::try_from(text.len()) {
            Ok(len) if usize::from(len) <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Some(Self::Inline { len, bytes })
            }
            _ => None,
        }
    }
}

impl From<&str> for Key {
    #[inline]
    fn from(text: &str) -> Self {
        Self::short(text).unwrap_or_else(|| Self::Heap(text.into()))
    }
}

impl From<String> for Key {
    fn from(text: String) -> Self {
        if text.len() <= INLINE {
            Self::from(text.as_str())
        } else {
            Self::Heap(text.into_boxed_str())
        }
    }
}

impl From<Cow<'_, str>> for Key {
    #[inline]
    fn from(text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Self::from(text),
            Cow::Owned(text) => Self::from(text),
        }
    }
}

impl From<&Key> for String {
    fn from(key: &Key) -> Self {
        key.as_str().to_owned()
    }
}

impl From<Key> for String {
    fn from(key: Key) -> Self {
        match key {
            Key::Heap(text) => text.into_string(),
            inline => inline.as_str().to_owned(),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_keys_are_in_place_and_long_ones_on_the_heap() {
        assert!(matches!(Key::from("name"), Key::Inline { len: 4, .. }));
        assert!(matches!(
            Key::from("a".repeat(INLINE).as_str()),
            Key::Inline { .. }
        ));
        assert!(matches!(
            Key::from("a".repeat(INLINE + 1).as_str()),
            Key::Heap(_)
        ));
        assert!(matches!(Key::from("a".repeat(300).as_str()), Key::Heap(_)));
        assert!(matches!(
            Key::from(String::from("ü")),
            Key::Inline { len: 2, .. }
        ));
    }

    proptest! {
        #[test]
        fn a_key_is_its_text_ordered_as_text(
            a in "\\PC{0,30}",
            b in "\\PC{0,30}",
            cut in 0..30usize,
        ) {
            let (key_a, key_b) = (Key::from(a.as_str()), Key::from(b.clone()));
            prop_assert_eq!(key_a.as_str(), a.as_str());
            prop_assert_eq!(key_a.len(), a.len());
            prop_assert_eq!(String::from(&key_b), b.clone());
            prop_assert_eq!(String::from(key_b.clone()), b.clone());
            prop_assert_eq!(key_a.cmp(&key_b), a.cmp(&b));
            prop_assert_eq!(key_a == key_b, a == b);
            prop_assert_eq!(format!("{key_a:?}"), format!("{a:?}"));
            // Dropping an ASCII prefix, in place or from the heap.
            let prefixed = format!("{}{a}", "x".repeat(cut));
            let mut key = Key::from(prefixed.as_str());
            key.drop_prefix(cut);
            prop_assert_eq!(key.as_str(), a.as_str());
            prop_assert_eq!(key, Key::from(a.as_str()));
        }
    }
}
