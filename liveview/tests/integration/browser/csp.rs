//! A page under a strict Content-Security-Policy (`script-src 'nonce-…'`,
//! neither `unsafe-inline` nor `unsafe-eval`) runs the inline scripts of
//! updates and the `script` key: the client takes the nonce from its own
//! script tag and never evaluates code.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;

use super::{browser_test_routes, page_html};

const NONCE: &str = "c3RyaWN0LWNzcC10ZXN0";

#[liveview_handler("b_csp")]
async fn b_csp(consumer: &Consumer, content: Content) -> liveview::Result {
    match content.data.str_or("key", "") {
        "inline" => consumer.send(
            Update::new("#target")
                .html(r##"<span>updated</span><script>el.dataset.ran = "yes";</script>"##),
        )?,
        "script" => consumer.send(Update::script_only("window.__scriptKey = true;"))?,
        other => return Err(liveview::Error::msg(format!("unknown key {other}"))),
    }
    Ok(())
}

/// The test page, its client tag and its own script carrying the nonce,
/// served with the strict policy.
fn strict_page() -> Router {
    let body = format!(
        r##"<script nonce="{NONCE}">
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => __violations.push(e.violatedDirective));
</script>
<button id="inline" data-action="click->page#run" data-liveview-function="b_csp" data-data-key="inline">inline</button>
<button id="script" data-action="click->page#run" data-liveview-function="b_csp" data-data-key="script">script</button>
<div id="target"></div>"##
    );
    // The harness's page, with every script tag given the nonce (its
    // recorder of errors included).
    let html = page_html(&body, Some(&liveview::template::room_uuid()))
        .replace("<script>", &format!(r#"<script nonce="{NONCE}">"#))
        .replace(
            &liveview::template::script_tag(),
            &liveview::template::script_tag_with(None, Some(NONCE)),
        );
    let policy = format!("script-src 'nonce-{NONCE}'; object-src 'none'; base-uri 'none'");
    Router::new().route(
        "/",
        get(move || {
            let html = html.clone();
            let policy = policy.clone();
            async move {
                (
                    [
                        (header::CONTENT_SECURITY_POLICY, policy),
                        (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                    ],
                    html,
                )
                    .into_response()
            }
        }),
    )
}

#[tokio::test]
async fn a_strict_csp_page_runs_inline_scripts_and_the_script_key_through_the_nonce() {
    browser_test_routes(
        "a_strict_csp_page_runs_inline_scripts_and_the_script_key_through_the_nonce",
        strict_page(),
        async |page| {
            let b = &page.browser;
            // The policy is in force: an inline script without the nonce is refused.
            b.execute(
                "const s = document.createElement('script'); s.textContent = 'window.__unsafe = 1'; document.body.append(s);",
                vec![],
            )
            .await?;
            b.wait("__violations.length === 1").await?;
            assert_eq!(b.eval("window.__unsafe === undefined").await?, json!(true));

            b.click("#inline").await?;
            b.wait(r##"document.getElementById("target").dataset.ran === "yes""##)
                .await?;
            b.click("#script").await?;
            b.wait("window.__scriptKey === true").await?;
            assert_eq!(b.eval("__violations.length").await?, json!(1));
            page.assert_no_page_errors().await?;
            Ok(())
        },
    )
    .await;
}
