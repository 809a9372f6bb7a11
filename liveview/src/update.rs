//! Updates: what the server tells a page to do.

use serde::Serialize;
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Update {
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    append: bool,
    #[serde(skip_serializing_if = "is_false")]
    remove: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scroll: Option<String>,
    #[serde(rename = "scrollTop", skip_serializing_if = "is_false")]
    scroll_top: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    script: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    morph: bool,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<u64>,
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
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
    fn into_frame(mut self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        self.reference = reference;
        serde_json::to_string(&self)
    }
}

impl IntoUpdate for &Update {
    fn into_frame(self, reference: Option<u64>) -> Result<String, serde_json::Error> {
        match reference {
            None => serde_json::to_string(self),
            Some(_) => self.clone().into_frame(reference),
        }
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
