//! The page templates: minijinja files under `templates/`, compiled into
//! the binary.
//!
//! Every template is added under its file name, which ends in `.html`, so
//! minijinja escapes every value put into it: user input is safe in any
//! template unless Rust code marks it safe on purpose (the search
//! highlighting does, after escaping it itself).

use std::sync::OnceLock;

use minijinja::{Environment, Value};

/// The stylesheet, served at [`css_url`].
pub const STYLESHEET: &str = include_str!("../static/demo.css");

/// Every template, by the name it is rendered with.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("flash.html", include_str!("../templates/flash.html")),
    (
        "quickstart.html",
        include_str!("../templates/quickstart.html"),
    ),
    (
        "alerts/page.html",
        include_str!("../templates/alerts/page.html"),
    ),
    (
        "alerts/form.html",
        include_str!("../templates/alerts/form.html"),
    ),
    (
        "alerts/alert.html",
        include_str!("../templates/alerts/alert.html"),
    ),
    (
        "alerts/list.html",
        include_str!("../templates/alerts/list.html"),
    ),
    (
        "alerts/more.html",
        include_str!("../templates/alerts/more.html"),
    ),
    (
        "snake/page.html",
        include_str!("../templates/snake/page.html"),
    ),
    (
        "snake/screen.html",
        include_str!("../templates/snake/screen.html"),
    ),
    (
        "search/page.html",
        include_str!("../templates/search/page.html"),
    ),
    (
        "search/results.html",
        include_str!("../templates/search/results.html"),
    ),
    (
        "not_found.html",
        include_str!("../templates/not_found.html"),
    ),
    ("login.html", include_str!("../templates/login.html")),
    ("viewers.html", include_str!("../templates/viewers.html")),
    (
        "uploads/page.html",
        include_str!("../templates/uploads/page.html"),
    ),
    (
        "uploads/photo.html",
        include_str!("../templates/uploads/photo.html"),
    ),
];

/// The demo's template environment.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Load every template and register the LiveView helpers
    /// (`liveview_room_uuid()`, `liveview_script()`), `css_url` and the
    /// `urlencode` filter.
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        liveview::template::register(&mut env);
        env.add_global("css_url", Value::from_safe_string(css_url().to_owned()));
        env.add_filter("urlencode", urlencode);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// Render the template `name` with `context` (e.g. built with
    /// `minijinja::context!`).
    pub fn render(&self, name: &str, context: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// `value` as one query parameter value (`/search/?q=a b` becomes
/// `%2Fsearch%2F%3Fq%3Da+b`).
fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The stylesheet's URL, with a hash of its content so browsers never keep a
/// stale copy.
pub fn css_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        // FNV-1a: the same on every build.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in STYLESHEET.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("/static/demo.css?v={:08x}", hash >> 32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_template_compiles() {
        let templates = Templates::new().unwrap();
        for (name, _) in TEMPLATES {
            assert!(name.ends_with(".html"), "{name} would not be escaped");
            templates.env.get_template(name).unwrap();
        }
    }

    #[test]
    fn urlencode_makes_a_query_value() {
        assert_eq!(urlencode("/search/?q=a b&c"), "%2Fsearch%2F%3Fq%3Da+b%26c");
    }

    #[test]
    fn values_are_escaped() {
        let templates = Templates::new().unwrap();
        let html = templates
            .render(
                "flash.html",
                context! { kind => "error", message => "<img src=x onerror=alert(1)>" },
            )
            .unwrap();
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
    }
}
