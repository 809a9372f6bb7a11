//! Updates: what the server tells a page to do.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// One update for the page, with every key of the protocol.
///
/// Build it with the methods, each named after its protocol key; anything
/// else can be added with [`Update::extra`] or sent as a raw
/// [`serde_json::Value`] instead.
///
/// ```
/// use liveview::Update;
///
/// let update = Update::new("#greeting").html("<h1>Hello, World!</h1>");
/// assert_eq!(
///     serde_json::to_string(&update).unwrap(),
///     r##"{"target":"#greeting","html":"<h1>Hello, World!</h1>"}"##
/// );
///
/// let append = Update::new("#notifications").html("<p>New!</p>").append();
/// let remove = Update::new("#notification-7").remove();
/// let navigate = Update::new("#main").html("<h1>Profile</h1>").url("/profile/ada/").title("Ada");
/// let script = Update::script_only("console.log('hi')");
/// # let _ = (append, remove, navigate, script);
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Update {
    /// A selector, most often a literal: borrowed, not copied.
    target: Option<Cow<'static, str>>,
    html: Option<String>,
    append: bool,
    remove: bool,
    scroll_top: bool,
    morph: bool,
    /// The keys most updates leave out, boxed once one of them is set: an
    /// update is moved through its builder and into its frame, and stays
    /// small to move.
    rare: Option<Box<Rare>>,
}

/// The keys of an [`Update`] that most updates leave out.
#[derive(Clone, Default, PartialEq)]
struct Rare {
    url: Option<String>,
    title: Option<String>,
    scroll: Option<Cow<'static, str>>,
    script: Option<String>,
    extra: Option<Map<String, Value>>,
}

impl std::fmt::Debug for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rare = self.rare.as_deref();
        f.debug_struct("Update")
            .field("target", &self.target)
            .field("html", &self.html)
            .field("append", &self.append)
            .field("remove", &self.remove)
            .field("url", &rare.and_then(|r| r.url.as_ref()))
            .field("title", &rare.and_then(|r| r.title.as_ref()))
            .field("scroll", &rare.and_then(|r| r.scroll.as_ref()))
            .field("scroll_top", &self.scroll_top)
            .field("script", &rare.and_then(|r| r.script.as_ref()))
            .field("morph", &self.morph)
            .field("extra", &rare.and_then(|r| r.extra.as_ref()))
            .finish()
    }
}

impl Serialize for Update {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WithRef(self, None).serialize(serializer)
    }
}

/// An update with the `ref` of the frame it goes out in: the frame of a
/// borrowed update is written without a clone of its strings.
struct WithRef<'a>(&'a Update, Option<u64>);

impl Serialize for WithRef<'_> {
    // Written by hand rather than derived: a derived `#[serde(flatten)]`
    // goes through serde's generic flattening on every frame. The keys come
    // in the same order (declared fields, `ref`, then the extra keys), and
    // the length is left open as the derived code leaves it, so the bytes
    // are the same.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let WithRef(u, reference) = *self;
        let rare = u.rare.as_deref();
        let mut map = serializer.serialize_map(None)?;
        if let Some(v) = &u.target {
            map.serialize_entry("target", v)?;
        }
        if let Some(v) = &u.html {
            map.serialize_entry("html", v)?;
        }
        if u.append {
            map.serialize_entry("append", &true)?;
        }
        if u.remove {
            map.serialize_entry("remove", &true)?;
        }
        if let Some(v) = rare.and_then(|r| r.url.as_ref()) {
            map.serialize_entry("url", v)?;
        }
        if let Some(v) = rare.and_then(|r| r.title.as_ref()) {
            map.serialize_entry("title", v)?;
        }
        if let Some(v) = rare.and_then(|r| r.scroll.as_ref()) {
            map.serialize_entry("scroll", v)?;
        }
        if u.scroll_top {
            map.serialize_entry("scrollTop", &true)?;
        }
        if let Some(v) = rare.and_then(|r| r.script.as_ref()) {
            map.serialize_entry("script", v)?;
        }
        if u.morph {
            map.serialize_entry("morph", &true)?;
        }
        if let Some(v) = reference {
            map.serialize_entry("ref", &v)?;
        }
        for (k, v) in rare.and_then(|r| r.extra.as_ref()).into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl WithRef<'_> {
    /// The frame's text, as serde_json would write it, in a buffer of
    /// exactly its length: the frame takes the buffer as it is, with no
    /// second allocation and no regrowth while it is written.
    #[inline]
    fn frame(&self) -> Result<String, serde_json::Error> {
        // The common case is written where the update is sent, the rest
        // out of line.
        if let (Some(target), None) = (&self.0.target, &self.0.rare) {
            let target_len = json::string_len(target);
            return Ok(self.plain_frame(target, target_len));
        }
        self.full_frame()
    }

    /// [`frame`](Self::frame) of any update.
    #[inline(never)]
    fn full_frame(&self) -> Result<String, serde_json::Error> {
        let WithRef(u, reference) = *self;
        static NONE: Rare = Rare {
            url: None,
            title: None,
            scroll: None,
            script: None,
            extra: None,
        };
        let rare = u.rare.as_deref().unwrap_or(&NONE);
        // Each string's escaped length, measured once: it sizes the buffer
        // and says whether the string can be copied as it is.
        let target = json::measure(u.target.as_deref());
        let html = json::measure(u.html.as_deref());
        let (url, title, scroll, script) = match u.rare.as_deref() {
            None => (0, 0, 0, 0),
            Some(rare) => (
                json::measure(rare.url.as_deref()),
                json::measure(rare.title.as_deref()),
                json::measure(rare.scroll.as_deref()),
                json::measure(rare.script.as_deref()),
            ),
        };
        // Every entry with the comma before it (the first gives it back),
        // between `{` and `}`. The extra keys are written by serde_json
        // after the rest: they are rare, and only they make the buffer
        // grow.
        let mut len = 2
            + json::entry_len(TARGET, target)
            + json::entry_len(HTML, html)
            + json::entry_len(URL, url)
            + json::entry_len(TITLE, title)
            + json::entry_len(SCROLL, scroll)
            + json::entry_len(SCRIPT, script)
            + json::flag_len(APPEND, u.append)
            + json::flag_len(REMOVE, u.remove)
            + json::flag_len(SCROLL_TOP, u.scroll_top)
            + json::flag_len(MORPH, u.morph)
            + reference.map_or(0, |r| json::REF.len() + json::digits(r));
        if len > 2 {
            len -= 1;
        }
        let mut out = String::with_capacity(len);
        out.push('{');
        // Protocol order: the declared keys, `ref`, then the extra keys.
        json::text_entry(&mut out, TARGET, u.target.as_deref(), target);
        json::text_entry(&mut out, HTML, u.html.as_deref(), html);
        json::flag_entry(&mut out, APPEND, u.append);
        json::flag_entry(&mut out, REMOVE, u.remove);
        json::text_entry(&mut out, URL, rare.url.as_deref(), url);
        json::text_entry(&mut out, TITLE, rare.title.as_deref(), title);
        json::text_entry(&mut out, SCROLL, rare.scroll.as_deref(), scroll);
        json::flag_entry(&mut out, SCROLL_TOP, u.scroll_top);
        json::text_entry(&mut out, SCRIPT, rare.script.as_deref(), script);
        json::flag_entry(&mut out, MORPH, u.morph);
        if let Some(r) = reference {
            json::key(&mut out, json::REF);
            json::write_u64(&mut out, r);
        }
        let Some(extra) = rare.extra.as_ref() else {
            out.push('}');
            debug_assert_eq!(out.len(), len, "the frame's length was measured");
            return Ok(out);
        };
        let mut bytes = out.into_bytes();
        for (name, value) in extra {
            if bytes.len() > 1 {
                bytes.push(b',');
            }
            serde_json::to_writer(&mut bytes, name)?;
            bytes.push(b':');
            serde_json::to_writer(&mut bytes, value)?;
        }
        bytes.push(b'}');
        // serde_json writes only valid UTF-8.
        Ok(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
    }

    /// [`frame`](Self::frame) of an update with a target and none of the
    /// rarer keys, as most are: the same text, with less to look at. The
    /// target comes first, so every key after it has its comma;
    /// `target_len` is its [`json::string_len`].
    #[inline]
    fn plain_frame(&self, target: &str, target_len: usize) -> String {
        let WithRef(u, reference) = *self;
        let html = u.html.as_deref().map(|html| (html, json::string_len(html)));
        let mut digits = itoa::Buffer::new();
        let reference = reference.map(|r| digits.format(r));
        let len = OPEN_TARGET.len()
            + target_len
            + html.map_or(0, |(_, len)| HTML.len() + len)
            + json::flag_len(APPEND, u.append)
            + json::flag_len(REMOVE, u.remove)
            + json::flag_len(SCROLL_TOP, u.scroll_top)
            + json::flag_len(MORPH, u.morph)
            + json::close_with_ref_len(reference);
        let mut out = String::with_capacity(len);
        // Each string's quotes written with the text around them.
        out.push_str(OPEN_TARGET_QUOTE);
        json::write_inside(&mut out, target, target_len);
        if let Some((html, len)) = html {
            out.push_str(QUOTE_HTML_QUOTE);
            json::write_inside(&mut out, html, len);
        }
        out.push('"');
        if u.append | u.remove | u.scroll_top | u.morph {
            for (entry, set) in [
                (APPEND, u.append),
                (REMOVE, u.remove),
                (SCROLL_TOP, u.scroll_top),
                (MORPH, u.morph),
            ] {
                if set {
                    out.push_str(entry);
                }
            }
        }
        json::close_with_ref(&mut out, reference);
        debug_assert_eq!(out.len(), len, "the frame's length was measured");
        out
    }
}

/// The object's opening and its first key, when it is the target.
const OPEN_TARGET: &str = "{\"target\":";
/// [`OPEN_TARGET`] and the opening quote of its value.
const OPEN_TARGET_QUOTE: &str = "{\"target\":\"";
/// The closing quote of a string value, [`HTML`] and the opening quote of
/// its value.
const QUOTE_HTML_QUOTE: &str = "\",\"html\":\"";

// An update's own keys, each with the comma that separates it from the
// entry before; a flag's with its value.
const TARGET: &str = ",\"target\":";
const HTML: &str = ",\"html\":";
const URL: &str = ",\"url\":";
const TITLE: &str = ",\"title\":";
const SCROLL: &str = ",\"scroll\":";
const SCRIPT: &str = ",\"script\":";
const APPEND: &str = ",\"append\":true";
const REMOVE: &str = ",\"remove\":true";
const SCROLL_TOP: &str = ",\"scrollTop\":true";
const MORPH: &str = ",\"morph\":true";

/// JSON text written by hand, byte for byte as serde_json writes it: a
/// string's safe bytes are copied in runs, found eight at a time, rather
/// than looked at one by one.
pub(crate) mod json {
    /// Eight copies of the byte `b`.
    const fn splat(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }

    const ONES: u64 = splat(0x01);
    const HIGHS: u64 = splat(0x80);

    /// Flags the bytes of `word` (read little-endian) that JSON must
    /// escape (a control character, `"` or `\`) with their high bit. The
    /// lowest flag is always right; flags above it may be wrong. A word
    /// without such a byte gives zero.
    #[inline]
    pub(crate) fn escapes(word: u64) -> u64 {
        let control = word.wrapping_sub(splat(0x20)) & !word;
        let quote = word ^ splat(b'"');
        let backslash = word ^ splat(b'\\');
        (control
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGHS
    }

    /// Whether JSON must escape the byte `b`.
    #[inline]
    pub(crate) const fn needs_escape(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    /// The first byte of `bytes[from..]` that JSON must escape, by its
    /// index in `bytes`.
    #[inline]
    fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
        let rest = &bytes[from..];
        if rest.len() < 8 {
            return rest.iter().position(|&b| needs_escape(b)).map(|i| from + i);
        }
        let word = |at: usize| u64::from_le_bytes(rest[at..at + 8].try_into().expect("8 bytes"));
        let mut at = 0;
        while at + 8 <= rest.len() {
            let flagged = escapes(word(at));
            if flagged != 0 {
                return Some(from + at + (flagged.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        if at < rest.len() {
            // The last eight bytes, overlapping words already read: those
            // bytes are safe, so the lowest flag is among the new ones.
            at = rest.len() - 8;
            let flagged = escapes(word(at));
            if flagged != 0 {
                return Some(from + at + (flagged.trailing_zeros() / 8) as usize);
            }
        }
        None
    }

    /// Whether some byte of `block` needs escaping: written so that the
    /// compiler checks the sixteen bytes at once, in vector registers.
    #[inline]
    fn block_has_escape(block: &[u8; 16]) -> bool {
        block.iter().fold(false, |any, &b| any | needs_escape(b))
    }

    /// Whether some byte of `bytes` needs escaping, looked for sixteen
    /// bytes at a time, or eight, or four: the last block overlaps the one
    /// before rather than being looked at byte by byte.
    #[inline(always)]
    pub(crate) fn has_escape(bytes: &[u8]) -> bool {
        let n = bytes.len();
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if n >= 16 {
            let block =
                |at: usize| -> &[u8; 16] { bytes[at..at + 16].try_into().expect("16 bytes") };
            let mut at = 0;
            while at + 16 <= n {
                if block_has_escape(block(at)) {
                    return true;
                }
                at += 16;
            }
            at < n && block_has_escape(block(n - 16))
        } else if n >= 8 {
            escapes(word(0)) | escapes(word(n - 8)) != 0
        } else if n >= 4 {
            escapes(u64::from(half(0)) | u64::from(half(n - 4)) << 32) != 0
        } else {
            bytes.iter().any(|&b| needs_escape(b))
        }
    }

    /// The length of `text` written as a JSON string, quotes included.
    #[inline]
    pub(crate) fn string_len(text: &str) -> usize {
        let bytes = text.as_bytes();
        if has_escape(bytes) {
            escaped_len(bytes)
        } else {
            bytes.len() + 2
        }
    }

    /// [`string_len`] of a string with bytes to escape.
    #[cold]
    fn escaped_len(bytes: &[u8]) -> usize {
        let mut len = bytes.len() + 2;
        let mut from = 0;
        while let Some(i) = next_escape(bytes, from) {
            len += match bytes[i] {
                b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 1,
                _ => 5,
            };
            from = i + 1;
        }
        len
    }

    /// Append `text` as a JSON string; `len` is its [`string_len`].
    #[inline]
    pub(crate) fn write_string(out: &mut String, text: &str, len: usize) {
        out.push('"');
        write_inside(out, text, len);
        out.push('"');
    }

    /// Append `text` as the inside of a JSON string, without its quotes;
    /// `len` is its [`string_len`].
    #[inline]
    pub(super) fn write_inside(out: &mut String, text: &str, len: usize) {
        if len == text.len() + 2 {
            out.push_str(text);
        } else {
            write_escaped(out, text);
        }
    }

    /// Append `text` with the bytes JSON must escape escaped.
    #[cold]
    fn write_escaped(out: &mut String, text: &str) {
        let bytes = text.as_bytes();
        let mut start = 0;
        while let Some(i) = next_escape(bytes, start) {
            // Every byte that needs escaping is ASCII: `i` is on a
            // character boundary.
            out.push_str(&text[start..i]);
            match bytes[i] {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\x08' => out.push_str("\\b"),
                b'\x0c' => out.push_str("\\f"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                b => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 0xf)]));
                }
            }
            start = i + 1;
        }
        out.push_str(&text[start..]);
    }

    /// The escaped length of a string value, quotes included; 0 when
    /// there is none.
    #[inline]
    pub(super) fn measure(text: Option<&str>) -> usize {
        text.map_or(0, string_len)
    }

    /// The length of the entry `key` (comma, key and colon) with a string
    /// value of escaped length `len`; 0 when there is no value.
    #[inline]
    pub(super) fn entry_len(key: &str, len: usize) -> usize {
        if len == 0 { 0 } else { key.len() + len }
    }

    /// The length of the entry `entry` (comma, key, colon and `true`)
    /// when the flag is set.
    #[inline]
    pub(super) fn flag_len(entry: &str, set: bool) -> usize {
        if set { entry.len() } else { 0 }
    }

    /// Append `key`, a key with the comma before it and the colon after
    /// it, leaving the comma out after the object's `{`.
    #[inline]
    pub(super) fn key(out: &mut String, key: &str) {
        out.push_str(if out.len() == 1 { &key[1..] } else { key });
    }

    /// Append the entry `key` of a string value, when there is one; `len`
    /// is its [`measure`].
    #[inline]
    pub(super) fn text_entry(out: &mut String, key: &str, text: Option<&str>, len: usize) {
        if let Some(text) = text {
            self::key(out, key);
            write_string(out, text, len);
        }
    }

    /// Append `entry` (its whole text), when the flag is set.
    #[inline]
    pub(super) fn flag_entry(out: &mut String, entry: &str, set: bool) {
        if set {
            key(out, entry);
        }
    }

    /// The decimal digits of `n`.
    pub(super) fn digits(n: u64) -> usize {
        n.checked_ilog10().map_or(1, |d| d as usize + 1)
    }

    /// Append `n` in decimal.
    pub(super) fn write_u64(out: &mut String, n: u64) {
        out.push_str(itoa::Buffer::new().format(n));
    }

    /// The key of the `ref` a frame answering a call carries, with the
    /// comma before it.
    pub(crate) const REF: &str = ",\"ref\":";

    /// The length of what [`close_with_ref`] appends.
    #[inline]
    pub(crate) fn close_with_ref_len(reference: Option<&str>) -> usize {
        reference.map_or(0, |r| REF.len() + r.len()) + 1
    }

    /// Append the entry of `reference` (the call's `ref`, in decimal), if
    /// any, and close the object: the end of a frame written by hand.
    #[inline]
    pub(crate) fn close_with_ref(out: &mut String, reference: Option<&str>) {
        if let Some(r) = reference {
            out.push_str(REF);
            out.push_str(r);
        }
        out.push('}');
    }
}

impl Update {
    /// An update acting on the element matched by the CSS selector `target`.
    ///
    /// A selector written in the code (a `&'static str`) is kept as it is,
    /// not copied; one built at run time is taken as a `String`.
    ///
    /// ```
    /// use liveview::Update;
    ///
    /// let id = 7;
    /// let static_target = Update::new("#greeting");
    /// let built_target = Update::new(format!("#notification-{id}")).remove();
    /// # let _ = (static_target, built_target);
    /// ```
    pub fn new(target: impl Into<Cow<'static, str>>) -> Self {
        Self {
            target: Some(target.into()),
            ..Self::default()
        }
    }

    /// An update with no target, e.g. only a title, a URL or a script.
    pub fn empty() -> Self {
        Self::default()
    }

    /// An update that only runs server-written JavaScript.
    pub fn script_only(script: impl Into<String>) -> Self {
        Self::empty().script(script)
    }

    /// Replace the target's content with `html` (inline scripts run).
    ///
    /// The markup is inserted as it is: build it with
    /// [`html!`](crate::html), which escapes every value it puts in, or
    /// render it through an auto-escaping template.
    ///
    /// ```
    /// use liveview::{html, Update};
    ///
    /// let name = "<script>alert(1)</script>";
    /// let update = Update::new("#greeting").html(html!("<h1>Hello, {name}!</h1>"));
    /// # let _ = update;
    /// ```
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// With [`html`](Self::html): insert at the end of the target instead
    /// of replacing its content.
    pub fn append(mut self) -> Self {
        self.append = true;
        self
    }

    /// Remove the target element itself.
    pub fn remove(mut self) -> Self {
        self.remove = true;
        self
    }

    /// Push `url` onto the browser history; back and forward restore the
    /// content this update replaced.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.rare_mut().url = Some(url.into());
        self
    }

    /// Set `document.title`.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.rare_mut().title = Some(title.into());
        self
    }

    /// Smooth-scroll the element matched by `selector` into view. Like
    /// [`new`](Self::new)'s target, a `&'static str` is not copied.
    pub fn scroll(mut self, selector: impl Into<Cow<'static, str>>) -> Self {
        self.rare_mut().scroll = Some(selector.into());
        self
    }

    /// Scroll the window to the top.
    pub fn scroll_top(mut self) -> Self {
        self.scroll_top = true;
        self
    }

    /// Run server-written JavaScript after the update. Never put user input
    /// in it.
    pub fn script(mut self, script: impl Into<String>) -> Self {
        self.rare_mut().script = Some(script.into());
        self
    }

    /// With [`html`](Self::html): morph the target's content into `html`
    /// instead of replacing it, so the elements that stay keep their
    /// focus, caret, typed value and scroll position (`"morph": true`).
    ///
    /// ```
    /// use liveview::Update;
    ///
    /// let update = Update::new("#signup").html("<input name=email>").morph();
    /// assert_eq!(
    ///     serde_json::to_value(&update).unwrap(),
    ///     serde_json::json!({"target": "#signup", "html": "<input name=email>", "morph": true})
    /// );
    /// ```
    pub fn morph(mut self) -> Self {
        self.morph = true;
        self
    }

    /// Add any other key, for clients that understand more than the
    /// protocol's keys.
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.rare_mut()
            .extra
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }

    /// The rarer keys, boxed the first time one is set.
    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }
}

/// Anything that can be sent as an update: an [`Update`] or a raw JSON
/// object.
///
/// ```
/// use liveview::IntoUpdate;
///
/// let raw = serde_json::json!({"target": "#count", "html": "3"});
/// assert_eq!(raw.into_frame(Some(4)).unwrap(), r##"{"html":"3","ref":4,"target":"#count"}"##);
/// ```
pub trait IntoUpdate {
    /// Serialise to one JSON text frame, adding `"ref"` when given.
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error>;
}

impl IntoUpdate for Update {
    // Inlined where an update is sent: it is not moved again to be written.
    #[inline]
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        let frame = WithRef(&self, reference).frame();
        // Taken apart here: most updates have none of the rarer keys, and
        // free only their html.
        let Update {
            target, html, rare, ..
        } = self;
        if let Some(rare) = rare {
            drop_rare(rare);
        }
        drop((target, html));
        frame
    }
}

/// Drop the rarer keys of an update, out of the way of the common case.
#[cold]
#[inline(never)]
fn drop_rare(rare: Box<Rare>) {
    drop(rare);
}

impl IntoUpdate for &Update {
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        WithRef(self, reference).frame()
    }
}

impl IntoUpdate for Value {
    fn into_frame(mut self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        if let (Some(r), Value::Object(map)) = (reference, &mut self) {
            map.insert("ref".to_owned(), Value::from(r));
        }
        serde_json::to_string(&self)
    }
}

impl IntoUpdate for &Value {
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        match reference {
            None => serde_json::to_string(self),
            Some(_) => self.clone().into_frame(reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(update: impl IntoUpdate, r: Option<u64>) -> Value {
        serde_json::from_str(&update.into_frame(r).unwrap()).unwrap()
    }

    #[test]
    fn every_key_has_its_protocol_name() {
        let update = Update::new("#t")
            .html("<b>x</b>")
            .append()
            .url("/u/")
            .title("T")
            .scroll("#s")
            .scroll_top()
            .script("go()")
            .morph()
            .extra("focus", "#t input");
        assert_eq!(
            frame(update, Some(2)),
            json!({"target": "#t", "html": "<b>x</b>", "append": true, "url": "/u/",
                   "title": "T", "scroll": "#s", "scrollTop": true, "script": "go()",
                   "morph": true, "focus": "#t input", "ref": 2})
        );
        assert_eq!(
            frame(Update::new("#n").remove(), None),
            json!({"target": "#n", "remove": true})
        );
    }

    #[test]
    fn the_text_has_the_keys_in_protocol_order_with_the_ref_before_extra_keys() {
        let update = Update::new("#t")
            .html("<b>\"x\"</b>")
            .append()
            .remove()
            .url("/u/")
            .title("T")
            .scroll("#s")
            .scroll_top()
            .script("go()")
            .morph()
            .extra("focus", "#t input");
        let expected = r##"{"target":"#t","html":"<b>\"x\"</b>","append":true,"remove":true,"url":"/u/","title":"T","scroll":"#s","scrollTop":true,"script":"go()","morph":true,"ref":2,"focus":"#t input"}"##;
        assert_eq!((&update).into_frame(Some(2)).unwrap(), expected);
        assert_eq!(update.clone().into_frame(Some(2)).unwrap(), expected);
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            expected.replace(r#""ref":2,"#, "")
        );
        assert_eq!(Update::empty().into_frame(None).unwrap(), "{}");
    }

    /// Text mixing every kind of character the escaper tells apart: every
    /// control character, quotes, backslashes, U+007F, U+2028 and U+2029,
    /// two-, three- and four-byte characters, and runs of plain ASCII long
    /// enough to fill whole eight-byte words.
    fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\u{7f}".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("\u{2029}".to_owned()),
            Just("é".to_owned()),
            Just("€".to_owned()),
            Just("😀".to_owned()),
            "[ -~]{0,20}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    fn optional_text() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        proptest::option::of(tricky_text())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        #[test]
        fn a_string_is_escaped_as_serde_json_escapes_it(text in tricky_text()) {
            let expected = serde_json::to_string(&text).unwrap();
            let len = json::string_len(&text);
            proptest::prop_assert_eq!(len, expected.len());
            let mut written = String::from("x");
            json::write_string(&mut written, &text, len);
            proptest::prop_assert_eq!(&written[1..], expected.as_str());
        }

        #[test]
        fn a_frame_is_the_text_serde_json_writes_in_a_buffer_of_its_length(
            strings in proptest::array::uniform6(optional_text()),
            flags in proptest::array::uniform4(proptest::prelude::any::<bool>()),
            reference in proptest::option::of(proptest::prelude::any::<u64>()),
            extra in proptest::collection::btree_map(tricky_text(), tricky_text(), 0..3),
        ) {
            let [target, html, url, title, scroll, script] = strings;
            let [append, remove, scroll_top, morph] = flags;
            let rare = Rare {
                url, title, scroll: scroll.map(Cow::from), script,
                extra: (!extra.is_empty())
                    .then(|| extra.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
            };
            let update = Update {
                target: target.map(Cow::from), html, append, remove, scroll_top, morph,
                rare: (rare != Rare::default()).then(|| Box::new(rare)),
            };
            let with_ref = WithRef(&update, reference);
            let expected = serde_json::to_string(&with_ref).unwrap();
            let frame = with_ref.frame().unwrap();
            proptest::prop_assert_eq!(&frame, &expected);
            if update.rare.as_ref().is_none_or(|rare| rare.extra.is_none()) {
                proptest::prop_assert_eq!(frame.capacity(), frame.len());
            }
        }
    }

    /// Every length up to five blocks of sixteen, with one byte to escape
    /// at every place, among bytes that need none (those next to the ones
    /// that do, and high bytes): each is found, and none is seen where
    /// there is none.
    #[test]
    fn a_byte_to_escape_is_found_wherever_it_is() {
        let safe = [b' ', b'!', b'#', b'[', b']', b'a', 0x7f, 0x80, 0xdc, 0xff];
        for len in 0..80 {
            let plain: Vec<u8> = (0..len).map(|i| safe[i % safe.len()]).collect();
            assert!(!json::has_escape(&plain), "none in {plain:?}");
            for at in 0..len {
                for bad in [b'"', b'\\', 0x00, b'\n', 0x1f] {
                    let mut bytes = plain.clone();
                    bytes[at] = bad;
                    assert!(json::has_escape(&bytes), "{bad:#x} at {at} of {len}");
                }
            }
        }
    }

    /// An update with a target and none of the rarer keys, as most are.
    fn plain_update() -> impl proptest::strategy::Strategy<Value = Update> {
        use proptest::prelude::*;
        (
            tricky_text(),
            optional_text(),
            proptest::array::uniform4(any::<bool>()),
        )
            .prop_map(
                |(target, html, [append, remove, scroll_top, morph])| Update {
                    target: Some(Cow::from(target)),
                    html,
                    append,
                    remove,
                    scroll_top,
                    morph,
                    rare: None,
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]

        #[test]
        fn a_frame_without_rare_keys_is_the_text_serde_json_writes(
            update in plain_update(),
            reference in proptest::option::of(proptest::prelude::any::<u64>()),
        ) {
            let with_ref = WithRef(&update, reference);
            let expected = serde_json::to_string(&with_ref).unwrap();
            let frame = with_ref.frame().unwrap();
            proptest::prop_assert_eq!(&frame, &expected);
            proptest::prop_assert_eq!(frame.capacity(), frame.len());
        }
    }

    #[test]
    fn a_frame_is_written_in_a_buffer_of_its_length() {
        let frame = Update::new("#greeting")
            .html("<h1>Hello, \"W\u{1}rld\"\\ \u{2028}é!</h1>")
            .into_frame(Some(u64::MAX))
            .unwrap();
        assert_eq!(
            frame,
            "{\"target\":\"#greeting\",\"html\":\"<h1>Hello, \\\"W\\u0001rld\\\"\\\\ \u{2028}é!</h1>\",\"ref\":18446744073709551615}"
        );
        assert_eq!(frame.capacity(), frame.len());
    }

    /// Every count of digits a `ref` can have, at both of its ends, in the
    /// frame of an update with a target only, with the rarer keys, and
    /// with extra keys: the text serde_json writes, in a buffer of its
    /// length where the length is measured.
    #[test]
    fn a_frame_is_the_text_serde_json_writes_for_every_count_of_digits_of_its_ref() {
        let mut references = vec![None, Some(0), Some(u64::MAX - 1), Some(u64::MAX)];
        for power in 1..=19 {
            let p = 10u64.pow(power);
            references.extend([Some(p - 1), Some(p), Some(p + 1)]);
        }
        let updates = [
            Update::new("#t"),
            Update::new("#t")
                .html("<p>\"\u{2028}\u{1f}\\</p>")
                .append()
                .morph(),
            Update::new("#t").remove().scroll_top(),
            Update::empty(),
            Update::empty().title("T\u{7f}\u{2029}"),
            Update::new("#t")
                .html("x")
                .url("/u/")
                .scroll("#s")
                .script("go()"),
            Update::new("#t").extra("focus", "#t input"),
            Update::empty().extra("ref", 1),
        ];
        for update in &updates {
            for reference in references.iter().copied() {
                let with_ref = WithRef(update, reference);
                let expected = serde_json::to_string(&with_ref).unwrap();
                let frame = with_ref.frame().unwrap();
                assert_eq!(frame, expected);
                if update.rare.as_ref().is_none_or(|rare| rare.extra.is_none()) {
                    assert_eq!(frame.capacity(), frame.len(), "{frame}");
                }
            }
        }
    }

    /// Every byte value, at every place of every length up to two blocks
    /// of sixteen and then some, among bytes that need no escaping (next
    /// to `"`, `\` and the control characters, or only the high bit
    /// apart): found exactly when JSON escapes it, by each of the scan's
    /// block, word and half-word paths.
    #[test]
    fn every_byte_value_is_found_to_need_escaping_exactly_when_it_does() {
        for len in 1..=34 {
            for filler in [b' ', 0xa2, 0xdc] {
                let mut bytes = vec![filler; len];
                assert!(!json::has_escape(&bytes));
                for at in 0..len {
                    for byte in 0..=u8::MAX {
                        bytes[at] = byte;
                        assert_eq!(
                            json::has_escape(&bytes),
                            json::needs_escape(byte),
                            "{byte:#x} at {at} of {len}, among {filler:#x}"
                        );
                    }
                    bytes[at] = filler;
                }
            }
        }
    }

    /// Targets that need escaping and targets that do not, in any order,
    /// are written as serde_json writes them.
    #[test]
    fn literal_targets_are_written_as_serde_json_writes_them_however_they_alternate() {
        let targets = ["#a", "#b\"c", "#a", "#a", "#b\"c", "#d\\", "#a", ""];
        for _ in 0..2 {
            for target in targets {
                let update = Update::new(target).html("x");
                let expected = serde_json::to_string(&WithRef(&update, Some(3))).unwrap();
                assert_eq!(update.into_frame(Some(3)).unwrap(), expected);
            }
        }
    }

    #[test]
    fn raw_values_get_the_ref_only_when_asked() {
        assert_eq!(frame(json!({"title": "x"}), None), json!({"title": "x"}));
        let borrowed = json!({"title": "x"});
        assert_eq!(frame(&borrowed, Some(1)), json!({"title": "x", "ref": 1}));
        assert_eq!(
            borrowed,
            json!({"title": "x"}),
            "a borrowed value is not changed"
        );
    }
}
