//! Morphing: a frame with `"morph": true` (or a target with
//! `data-liveview-morph`) patches the target's children in place, so what
//! the user is doing survives a re-render.

use liveview::{Broadcaster, Update};
use serde_json::json;

use super::{Page, browser_test};

fn broadcaster(page: &Page) -> Broadcaster {
    page.server
        .as_ref()
        .expect("the server runs")
        .live()
        .broadcaster()
}

/// The inside of `#form` as the server renders it.
fn form(count: u32, value: &str) -> String {
    format!(
        r##"
  <label for="name">Name</label>
  <input id="name" name="name" value="{value}" autocomplete="off">
  <input class="plain" name="plain" value="{value}" autocomplete="off">
  <span id="count">{count}</span>
"##
    )
}

#[tokio::test]
async fn the_input_being_typed_into_keeps_focus_caret_and_value() {
    let body = format!(r##"<form id="form">{}</form>"##, form(0, ""));
    browser_test(
        "the_input_being_typed_into_keeps_focus_caret_and_value",
        &body,
        async |page| {
            let b = &page.browser;
            b.type_text(".plain", "typed, then left").await?;
            b.type_text("#name", "Hello world").await?;
            b.execute(
                r#"const el = document.getElementById("name");
                   el.setSelectionRange(2, 5);
                   el.__mark = "same node";"#,
                vec![],
            )
            .await?;

            broadcaster(page)
                .broadcast(
                    Update::new("#form")
                        .html(form(1, "from the server"))
                        .morph(),
                )
                .await?;
            b.wait_for_text("#count", "1").await?;

            let name = b
                .eval(
                    r#"(() => {
                        const el = document.getElementById("name");
                        return {
                            focused: document.activeElement === el,
                            mark: el.__mark || null,
                            value: el.value,
                            start: el.selectionStart,
                            end: el.selectionEnd,
                        };
                    })()"#,
                )
                .await?;
            assert_eq!(
                name,
                json!({"focused": true, "mark": "same node", "value": "Hello world", "start": 2, "end": 5})
            );
            // The control the user left shows what the server rendered.
            assert_eq!(
                b.eval("document.querySelector('.plain').value").await?,
                json!("from the server")
            );

            // Typing goes on where the caret was: "llo" is replaced.
            b.type_text("#name", "X").await?;
            assert_eq!(
                b.eval("document.getElementById('name').value").await?,
                json!("HeX world")
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

const BOX: &str = r##"
<div id="box">
  <span id="a" class="old">A</span><span id="b">B</span>
  <div id="chart" data-liveview-ignore>from the server</div>
  <div id="scroller" style="height: 60px; overflow: auto"><div style="height: 600px">tall</div></div>
  <p>no id</p>
</div>
<ul id="list" data-liveview-morph><li id="x">x</li></ul>
"##;

/// The inside of `#box`, re-rendered.
const BOX_AGAIN: &str = r##"
  <span id="b">B2</span><span id="a">A2</span>
  <div id="chart" data-liveview-ignore>from the server, again</div>
  <div id="scroller" style="height: 60px; overflow: auto"><div style="height: 600px">tall, again</div></div>
  <p>no id, again</p>
  <p id="notice" data-liveview-init="b_log" data-data-which="init">saved</p>
  <button id="marker" data-action="click->page#run" data-liveview-function="b_log" data-data-which="marker">marker</button>
  <script>window.__ran = (window.__ran || 0) + 1;</script>
"##;

#[tokio::test]
async fn morphing_keeps_nodes_ignored_subtrees_and_scroll_positions() {
    browser_test(
        "morphing_keeps_nodes_ignored_subtrees_and_scroll_positions",
        BOX,
        async |page| {
            let b = &page.browser;
            b.execute(
                r##"const $ = (s) => document.querySelector(s);
                   $("#a").__mark = "a";
                   $("#b").__mark = "b";
                   $("#box p").__mark = "p";
                   $("#x").__mark = "x";
                   const chart = $("#chart");
                   chart.textContent = "drawn by a script";
                   chart.dataset.state = "drawn";
                   chart.append(document.createElement("canvas"));
                   $("#scroller").scrollTop = 150;"##,
                vec![],
            )
            .await?;
            let send = async || {
                broadcaster(page)
                    .broadcast(Update::new("#box").html(BOX_AGAIN).morph())
                    .await
            };
            send().await?;
            b.wait("window.__ran === 1").await?;

            let state = b
                .eval(
                    r##"(() => {
                        const $ = (s) => document.querySelector(s);
                        const a = $("#a"), b = $("#b"), chart = $("#chart"), p = $("#box p");
                        return {
                            order: Array.from($("#box").children, (e) => e.id || e.tagName),
                            a: [a.__mark || null, a.textContent, a.hasAttribute("class")],
                            b: [b.__mark || null, b.textContent],
                            chart: [chart.textContent, chart.dataset.state, chart.children.length],
                            scroll: $("#scroller").scrollTop,
                            tall: $("#scroller").textContent,
                            p: [p.__mark || null, p.textContent],
                        };
                    })()"##,
                )
                .await?;
            assert_eq!(
                state,
                json!({
                    "order": ["b", "a", "chart", "scroller", "P", "notice", "marker", "SCRIPT"],
                    "a": ["a", "A2", false],
                    "b": ["b", "B2"],
                    "chart": ["drawn by a script", "drawn", 1],
                    "scroll": 150,
                    "tall": "tall, again",
                    "p": ["p", "no id, again"],
                })
            );
            // New elements are wired up as with `html`: the init runs once.
            page.wait_call(1, "init").await?;

            // Again: the script runs again, the kept element is not
            // initialised twice.
            send().await?;
            b.wait("window.__ran === 2").await?;
            b.click("#marker").await?;
            page.wait_call(2, "marker").await?;

            // A target marked `data-liveview-morph` is morphed without the key.
            broadcaster(page)
                .broadcast(Update::new("#list").html(r#"<li id="x">x2</li><li id="y">y</li>"#))
                .await?;
            b.wait("document.querySelectorAll('#list li').length === 2").await?;
            assert_eq!(
                b.eval("[document.getElementById('x').__mark, document.getElementById('x').textContent]")
                    .await?,
                json!(["x", "x2"])
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Random markup morphed into random markup, many times over: the result
/// is always the DOM the new markup parses to, and a child with an id
/// found in both keeps its node.
const FUZZ: &str = r##"
let seed = 7;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const tags = ["div", "span", "p", "b", "ul", "li", "input", "textarea", "select", "option"];
const gen = (depth) => {
  let out = "";
  for (let i = rnd(6); i > 0; i--) {
    const k = rnd(10);
    if (k < 3) { out += ["a", "b", " ", "hello"][rnd(4)]; continue; }
    if (k === 3) { out += `<!--c${rnd(3)}-->`; continue; }
    const tag = tags[rnd(tags.length)];
    let attrs = "";
    if (rnd(2)) attrs += ` id="i${rnd(6)}"`;
    if (rnd(2)) attrs += ` class="c${rnd(3)}"`;
    if (rnd(3) === 0) attrs += ` data-x="${rnd(3)}"`;
    if (tag === "input") { out += `<input${attrs} value="v${rnd(3)}"${rnd(2) ? " checked" : ""}>`; continue; }
    out += `<${tag}${attrs}>${depth < 3 ? gen(depth + 1) : "t"}</${tag}>`;
  }
  return out;
};
const el = document.getElementById("fuzz");
const byId = () => {
  const seen = new Map();
  for (const c of el.children) {
    const id = c.getAttribute("id");
    if (id) seen.set(id, seen.has(id) ? null : c);
  }
  return seen;
};
for (let round = 0; round < 150; round++) {
  el.innerHTML = gen(0);
  for (let step = 0; step < 5; step++) {
    const before = el.innerHTML;
    const oldIds = byId();
    const markup = gen(0);
    LiveView.apply({ target: "#fuzz", html: markup, morph: true });
    const want = el.cloneNode(false);
    want.innerHTML = markup;
    if (!el.isEqualNode(want)) return { before, markup, got: el.innerHTML };
    for (const [id, node] of byId()) {
      const old = oldIds.get(id);
      if (node && old && old.tagName === node.tagName && old !== node) {
        return { before, markup, lostIdentity: id };
      }
    }
  }
}
return "ok";
"##;

#[tokio::test]
async fn morphing_any_markup_gives_what_the_markup_parses_to() {
    browser_test(
        "morphing_any_markup_gives_what_the_markup_parses_to",
        r#"<div id="fuzz"></div>"#,
        async |page| {
            let outcome = page.browser.execute(FUZZ, vec![]).await?;
            assert_eq!(outcome, json!("ok"));
            page.assert_no_page_errors().await
        },
    )
    .await;
}
