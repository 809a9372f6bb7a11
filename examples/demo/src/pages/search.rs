//! Live search over the product catalogue.
//!
//! The search box calls `search` as the user types (debounced in the page);
//! the results come back rendered, with the matches highlighted, and the
//! URL becomes `/search/?q=...`, so back and forward step through the
//! searches and a reload shows the same results, rendered by the page
//! route.

use std::ops::Range;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use liveview::{Consumer, Content, ToHtml, Update, liveview_handler};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::Visitor;
use crate::Demo;
use crate::db::{MAX_SEARCH_TERMS, SearchPage};

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// How many results are shown.
pub const RESULTS: u32 = 20;

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(default)]
    q: String,
}

/// `GET /search/?q=...`.
pub fn routes() -> Router<Demo> {
    Router::new().route("/search/", get(page))
}

async fn page(
    State(demo): State<Demo>,
    visitor: Visitor,
    Query(params): Query<Params>,
) -> Response {
    let results = match results(&demo, &params.q).await {
        Ok(results) => results,
        Err(err) => return super::unavailable("search", &*err),
    };
    let total = thousands(demo.db().product_count().await.unwrap_or(0));
    super::page(
        &demo,
        &visitor,
        "search/page.html",
        context! {
            nav => "search",
            q => params.q.trim(),
            total,
            title => title(&params.q),
            results => Value::from_safe_string(results),
        },
    )
}

/// The query's words, in the order given, without repeats; at most
/// [`MAX_SEARCH_TERMS`].
///
/// ```
/// assert_eq!(demo::pages::search::terms("  Oak  lamp oak "), ["oak", "lamp"]);
/// ```
pub fn terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split_whitespace() {
        let word = word.to_ascii_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    terms.truncate(MAX_SEARCH_TERMS);
    terms
}

/// `text`, HTML-escaped, with every occurrence of the terms wrapped in
/// `<mark>`. Matching ignores ASCII case, as the database's `LIKE` does.
///
/// The text is cut at the matches first and each piece escaped on its
/// own, so a term can never match inside an entity such as `&amp;`.
///
/// ```
/// use demo::pages::search::highlight;
///
/// assert_eq!(highlight("Oak Desk Lamp", &["lamp".into()]), "Oak Desk <mark>Lamp</mark>");
/// assert_eq!(highlight("<b>&</b>", &["b".into()]), "&lt;<mark>b</mark>&gt;&amp;&lt;/<mark>b</mark>&gt;");
/// ```
pub fn highlight(text: &str, terms: &[String]) -> String {
    let ranges = matches(text, terms);
    let mut out = String::with_capacity(text.len() + ranges.len() * 13);
    let mut at = 0;
    for range in ranges {
        text[at..range.start].push_html(&mut out);
        out.push_str("<mark>");
        text[range.clone()].push_html(&mut out);
        out.push_str("</mark>");
        at = range.end;
    }
    text[at..].push_html(&mut out);
    out
}

/// The byte ranges of `text` matched by any term, sorted and merged.
fn matches(text: &str, terms: &[String]) -> Vec<Range<usize>> {
    // ASCII lowercasing keeps every byte where it was, so offsets in the
    // lowercased text are offsets in `text`, on character boundaries.
    let haystack = text.to_ascii_lowercase();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for term in terms.iter().filter(|t| !t.is_empty()) {
        let needle = term.to_ascii_lowercase();
        ranges.extend(
            haystack
                .match_indices(needle.as_str())
                .map(|(start, m)| start..start + m.len()),
        );
    }
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// A product as the results show it.
#[derive(Debug, Serialize)]
struct Hit {
    name: String,
    category: String,
    price: String,
}

/// The rendered results for `query`: a message for an empty or too long
/// query, else the first matches.
async fn results(
    demo: &Demo,
    query: &str,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let query = query.trim();
    let chars = query.chars().count();
    if chars > MAX_QUERY_CHARS {
        let error =
            format!("Searches are limited to {MAX_QUERY_CHARS} characters; this one has {chars}.");
        return Ok(demo
            .templates()
            .render("search/results.html", context! { error })?);
    }
    let terms = terms(query);
    let page = if terms.is_empty() {
        SearchPage::default()
    } else {
        demo.db().search_products(&terms, RESULTS).await?
    };
    let hits: Vec<Hit> = page
        .products
        .iter()
        .map(|p| Hit {
            name: highlight(&p.name, &terms),
            category: highlight(&p.category, &terms),
            price: format!("€{}.{:02}", p.price_cents / 100, p.price_cents % 100),
        })
        .collect();
    // The names and categories are escaped by `highlight`; the template
    // prints them with `|safe`.
    Ok(demo.templates().render(
        "search/results.html",
        context! {
            q => query,
            searched => !terms.is_empty(),
            hits => Serde(hits),
            shown => page.products.len(),
            total => page.total,
        },
    )?)
}

/// `/search/?q=...` for a query (`/search/` for none).
///
/// ```
/// assert_eq!(demo::pages::search::url("oak & lamp"), "/search/?q=oak+%26+lamp");
/// assert_eq!(demo::pages::search::url("  "), "/search/");
/// ```
pub fn url(query: &str) -> String {
    let query = query.trim();
    if query.is_empty() {
        return "/search/".to_owned();
    }
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", query)
        .finish();
    format!("/search/?{encoded}")
}

/// `3000` as `"3,000"`.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && ch.is_ascii_digit() {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn title(query: &str) -> String {
    let query = query.trim();
    if query.is_empty() {
        "Live search".to_owned()
    } else {
        let short: String = query.chars().take(40).collect();
        format!("“{short}” · Live search")
    }
}

/// The last query this connection searched, so a repeated search (a
/// debounced call with an unchanged box) adds no history entry.
#[derive(Debug, Clone, Default)]
struct LastQuery(Option<String>);

/// Search as the user types: results in `#search-results`, the query in
/// the URL and the title.
#[liveview_handler("search")]
pub async fn search(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let query = content.form.str("q").unwrap_or("").trim().to_owned();
    let html = match results(demo, &query).await {
        Ok(html) => html,
        Err(err) => {
            tracing::error!(error = %err, "search failed");
            consumer.send(super::flash(
                demo,
                super::FlashKind::Error,
                "The search is not available right now; please try again.",
            )?)?;
            return Ok(());
        }
    };
    let mut update = Update::new("#search-results").html(html);
    let repeated = consumer.with(|last: &mut LastQuery| {
        let repeated = last.0.as_deref() == Some(query.as_str());
        last.0 = Some(query.clone());
        repeated
    });
    if !repeated {
        update = update
            .url(url(&query))
            .title(format!("{} · LiveView demo", title(&query)));
    }
    consumer.send(update)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_matches_merge() {
        let terms = vec!["wal".to_owned(), "alnut".to_owned()];
        assert_eq!(highlight("Walnut", &terms), "<mark>Walnut</mark>");
    }

    #[test]
    fn terms_cannot_match_inside_entities() {
        let terms = vec!["amp".to_owned(), "lt".to_owned()];
        assert_eq!(highlight("a & b < c", &terms), "a &amp; b &lt; c");
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        let terms = vec!["é".to_owned()];
        assert_eq!(highlight("Café crème", &terms), "Caf<mark>é</mark> crème");
    }

    #[test]
    fn counts_have_separators() {
        assert_eq!(thousands(3000), "3,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn at_most_four_terms() {
        assert_eq!(terms("a b c d e f").len(), MAX_SEARCH_TERMS);
        assert!(terms(" \t ").is_empty());
    }
}
