//! The keys of [`Fields`](super::Fields): the short ones (nearly all: input
//! names) kept in place, so that a call's fields cost no allocation for
//! their keys, nor a free when the call ends.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use compact_str::CompactString;

/// Longest key kept in place: as long as a `String`'s own three words
/// (24 bytes on 64-bit targets), as `CompactString` keeps it.
const INLINE: usize = std::mem::size_of::<String>();

/// A key, in place when it has at most [`INLINE`] bytes. Ordered and
/// compared by its bytes, as `str` is. Read as text without checking its
/// bytes again.
#[derive(Clone)]
pub(crate) struct Key(CompactString);

impl Key {
    /// The key's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The key as text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The key without its first `n` bytes, which are ASCII.
    pub(crate) fn drop_prefix(&mut self, n: usize) {
        self.0 = CompactString::new(&self.0[n..]);
    }

    /// `text` in place, when it is short enough.
    #[inline]
    pub(crate) fn short(text: &str) -> Option<Self> {
        (text.len() <= INLINE).then(|| Self(CompactString::new(text)))
    }
}

impl From<&str> for Key {
    #[inline]
    fn from(text: &str) -> Self {
        Self(CompactString::new(text))
    }
}

impl From<String> for Key {
    fn from(text: String) -> Self {
        Self(CompactString::from(text))
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
        key.0.into_string()
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
        let in_place = |key: Key| !key.0.is_heap_allocated();
        assert!(in_place(Key::from("name")));
        assert!(in_place(Key::from("a".repeat(INLINE).as_str())));
        assert!(!in_place(Key::from("a".repeat(INLINE + 1).as_str())));
        assert!(!in_place(Key::from("a".repeat(300).as_str())));
        assert!(in_place(Key::from(String::from("ü"))));
        assert!(Key::short(&"a".repeat(INLINE)).is_some_and(in_place));
        assert!(Key::short(&"a".repeat(INLINE + 1)).is_none());
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
