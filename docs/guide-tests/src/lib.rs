//! The guide's code, kept honest.
//!
//! Every chapter of the guide (`docs/src`) is included below as the
//! documentation of a private module, so `cargo test --doc -p guide-tests`
//! compiles every ```` ```rust ```` block of the book and runs those that are
//! not marked `no_run`. A change of the library's API that a chapter does not
//! follow fails the build instead of leaving the guide wrong.
//!
//! The chapters share two helpers, used in their hidden setup lines:
//!
//! - [`render`]: the Templates chapter's `render` function, over the
//!   templates in `docs/src/templates/` (the same files the book shows);
//! - [`db`]: a small in-memory stand-in for an application's database, so
//!   that examples about users, posts and products run without one.
//!
//! Handler names are global to a program (they are collected at link time),
//! and rustdoc links the doc tests of this crate into one binary: every
//! `#[liveview_handler("...")]` name in the guide must be unique.

pub mod db;

use std::sync::LazyLock;

use minijinja::Environment;

/// The templates of `docs/src/templates/`, registered under their file
/// names, with the LiveView template functions.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    liveview::template::register(&mut env);
    for (name, source) in TEMPLATE_FILES {
        env.add_template(name, source)
            .unwrap_or_else(|err| panic!("the guide's template {name} does not compile: {err}"));
    }
    env
});

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../src/templates/", $name)))),*]
    };
}

const TEMPLATE_FILES: [(&str, &str); 13] = templates![
    "index.html",
    "profile_card.html",
    "profile_page.html",
    "posts_list.html",
    "notification.html",
    "contact_form.html",
    "contact_success.html",
    "items_partial.html",
    "load_trigger.html",
    "products_list.html",
    "product_details.html",
    "article_detail.html",
    "search_results.html",
];

/// Render the template `name` of `docs/src/templates/` with `context`,
/// HTML-escaping every value (the files end in `.html`).
///
/// ```
/// let html = guide_tests::render("notification.html", minijinja::context! {
///     id => "n1", message => "<b>hi</b>",
/// })
/// .unwrap();
/// assert!(html.contains("&lt;b&gt;hi"), "{html}");
/// ```
pub fn render(name: &str, context: minijinja::Value) -> Result<String, minijinja::Error> {
    TEMPLATES.get_template(name)?.render(context)
}

// The chapters. Each ```rust block in them is a doc test.
#[doc = include_str!("../../src/introduction.md")]
mod introduction {}
#[doc = include_str!("../../src/getting-started/index.md")]
mod getting_started {}
#[doc = include_str!("../../src/getting-started/installation.md")]
mod installation {}
#[doc = include_str!("../../src/getting-started/configuration.md")]
mod configuration {}
#[doc = include_str!("../../src/getting-started/quick-start.md")]
mod quick_start {}
#[doc = include_str!("../../src/getting-started/templates.md")]
mod templates {}
#[doc = include_str!("../../src/handlers.md")]
mod handlers {}
#[doc = include_str!("../../src/frontend.md")]
mod frontend {}
#[doc = include_str!("../../src/forms.md")]
mod forms {}
#[doc = include_str!("../../src/uploads.md")]
mod uploads {}
#[doc = include_str!("../../src/broadcasting.md")]
mod broadcasting {}
#[doc = include_str!("../../src/advanced.md")]
mod advanced {}
#[doc = include_str!("../../src/errors.md")]
mod errors {}
#[doc = include_str!("../../src/testing.md")]
mod testing {}
#[doc = include_str!("../../src/deployment.md")]
mod deployment {}
#[doc = include_str!("../../src/transports.md")]
mod transports {}
#[doc = include_str!("../../src/layers.md")]
mod layers {}
#[doc = include_str!("../../src/demos.md")]
mod demos {}
#[doc = include_str!("../../src/api-reference.md")]
mod api_reference {}
#[doc = include_str!("../../src/django.md")]
mod django {}
// The README's examples, compiled like the chapters'.
#[doc = include_str!("../../../README.md")]
mod readme {}
