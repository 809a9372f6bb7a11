//! Updates: what the server tells a page to do.

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    target: Option<String>,
    html: Option<String>,
    append: bool,
    remove: bool,
    url: Option<String>,
    title: Option<String>,
    scroll: Option<String>,
    scroll_top: bool,
    script: Option<String>,
    morph: bool,
    extra: Map<String, Value>,
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
        if let Some(v) = &u.url {
            map.serialize_entry("url", v)?;
        }
        if let Some(v) = &u.title {
            map.serialize_entry("title", v)?;
        }
        if let Some(v) = &u.scroll {
            map.serialize_entry("scroll", v)?;
        }
        if u.scroll_top {
            map.serialize_entry("scrollTop", &true)?;
        }
        if let Some(v) = &u.script {
            map.serialize_entry("script", v)?;
        }
        if u.morph {
            map.serialize_entry("morph", &true)?;
        }
        if let Some(v) = reference {
            map.serialize_entry("ref", &v)?;
        }
        for (k, v) in &u.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl WithRef<'_> {
    /// The frame's text, in a buffer sized for the common update (no
    /// escaping, no extra keys) so that it is not regrown while written.
    fn frame(&self) -> Result<String, serde_json::Error> {
        let u = self.0;
        let strings = [&u.target, &u.html, &u.url, &u.title, &u.scroll, &u.script]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.len() + 12))
            .sum::<usize>();
        let mut buf = Vec::with_capacity(strings + 64);
        serde_json::to_writer(&mut buf, self)?;
        // serde_json writes only valid UTF-8.
        Ok(String::from_utf8(buf).expect("serde_json writes UTF-8"))
    }
}

impl Update {
    /// An update acting on the element matched by the CSS selector `target`.
    pub fn new(target: impl Into<String>) -> Self {
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
    /// The string is inserted as it is: escape user input with
    /// [`escape`](crate::escape) or render it through an auto-escaping
    /// template.
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
        self.url = Some(url.into());
        self
    }

    /// Set `document.title`.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Smooth-scroll the element matched by `selector` into view.
    pub fn scroll(mut self, selector: impl Into<String>) -> Self {
        self.scroll = Some(selector.into());
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
        self.script = Some(script.into());
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
        self.extra.insert(key.into(), value.into());
        self
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
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        WithRef(&self, reference).frame()
    }
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
