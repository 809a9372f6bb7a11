//! Middleware: functions that run before every handler and may stop it.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::call::content::Content;
use crate::consumer::Consumer;

type SyncFn = dyn Fn(&Consumer, &Content, &str) -> bool + Send + Sync;
type AsyncFn =
    dyn for<'a> Fn(&'a Consumer, &'a Content, &'a str) -> BoxFuture<'a, bool> + Send + Sync;

/// A middleware function, sync or async. Registered with
/// [`LiveViewBuilder::middleware`](crate::LiveViewBuilder::middleware) and
/// [`LiveViewBuilder::async_middleware`](crate::LiveViewBuilder::async_middleware);
/// they run in registration order, and the first that returns `false` stops
/// the call (it may send updates of its own first).
#[derive(Clone)]
pub(crate) enum Middleware {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
}

impl Middleware {
    pub(crate) async fn allows(
        &self,
        consumer: &Consumer,
        content: &Content,
        function: &str,
    ) -> bool {
        match self {
            Middleware::Sync(f) => f(consumer, content, function),
            Middleware::Async(f) => f(consumer, content, function).await,
        }
    }
}

impl fmt::Debug for Middleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Middleware::Sync(_) => "Middleware::Sync",
            Middleware::Async(_) => "Middleware::Async",
        })
    }
}

/// A middleware that lets a call through only when the connection has a
/// user, sending `refusal` (e.g. a "You must be logged in" update) to the
/// caller otherwise. Mirrors the seed's `auth_middleware`.
///
/// `only` limits it to some handler names; empty means every handler.
///
/// ```
/// use liveview::{middleware::require_user, LiveView, Update};
///
/// let live = LiveView::builder()
///     .middleware(require_user(
///         Update::new("#error").html("<p>You must be logged in</p>"),
///         &["delete_alert"],
///     ))
///     .build()
///     .unwrap();
/// # drop(live);
/// ```
pub fn require_user(
    refusal: crate::Update,
    only: &[&str],
) -> impl Fn(&Consumer, &Content, &str) -> bool + Send + Sync + 'static {
    let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
    move |consumer, _content, function| {
        if !only.is_empty() && !only.iter().any(|name| name == function) {
            return true;
        }
        if consumer.user().is_some() {
            return true;
        }
        let _ = consumer.send(&refusal);
        false
    }
}
