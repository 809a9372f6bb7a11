//! One message through the library, step by step: decode (parse and
//! defaults), normalise (camelCase keys of `form` and `data`), dispatch
//! (registry, handler, reply queued) and encode (an update to its frame).
//!
//! `cargo bench -p liveview-bench --bench message`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use liveview::testing::TestApp;
use liveview::{IntoUpdate, LiveView, Update};
// The quick start's handlers, linked in by naming the crate.
use quickstart as _;

/// A browser's `say_hello` call: keys already snake_case.
const SAY_HELLO: &str = r#"{"function":"say_hello","form":{"name":"Ada"},"data":{},"lang":"en","room":"3f2a9c1e5b7d4e0f8a6b2c9d1e3f5a7b"}"#;

/// A call whose keys need normalising, as Stimulus sends `data-data-*`.
const CAMEL_CASE: &str = r#"{"function":"delete_comment","form":{"firstName":"Ada","lastName":"Lovelace","newsletterOptIn":true},"data":{"dataCommentId":"3","dataPostId":"4"},"lang":"en","room":"3f2a9c1e5b7d4e0f8a6b2c9d1e3f5a7b"}"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.bench_function("say_hello", |b| {
        b.iter(|| liveview::__fuzz::decode(black_box(SAY_HELLO), "lobby"))
    });
    group.bench_function("camelCase keys (normalise)", |b| {
        b.iter(|| liveview::__fuzz::decode(black_box(CAMEL_CASE), "lobby"))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.bench_function("greeting", |b| {
        b.iter(|| {
            let name = liveview::escape(black_box("Ada"));
            Update::new("#greeting")
                .html(format!("<h1>Hello, {name}!</h1>"))
                .into_frame(None)
        })
    });
    group.bench_function("greeting with ref", |b| {
        b.iter(|| {
            let name = liveview::escape(black_box("Ada"));
            Update::new("#greeting")
                .html(format!("<h1>Hello, {name}!</h1>"))
                .into_frame(Some(12))
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let live = runtime.block_on(async {
        LiveView::builder()
            .rate_limit(None)
            .address_rate_limit(None)
            .build()
            .expect("the app builds")
    });
    let app = TestApp::new(live);
    let mut client = app.connect("lobby");
    // The reply is read back as JSON by the test client: that parse is part
    // of what is measured here.
    c.bench_function("dispatch/say_hello (decode, handler, encode, queue)", |b| {
        b.iter(|| {
            let frames = runtime.block_on(client.send_text(black_box(SAY_HELLO)));
            assert_eq!(frames.len(), 1);
            frames
        })
    });
}

criterion_group!(benches, decode, encode, dispatch);
criterion_main!(benches);
