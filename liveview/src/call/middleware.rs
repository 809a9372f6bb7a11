//! Middleware: functions that run before every handler and may stop it.

use futures_util::future::BoxFuture;

use crate::call::content::Content;
use crate::consumer::Consumer;

/// Runs before every handler and may stop the call: registered with
/// [`LiveViewBuilder::middleware`](crate::LiveViewBuilder::middleware),
/// middleware run in registration order, and the first that answers
/// `false` stops the call (it may send updates of its own first).
///
/// A plain closure or function `Fn(&Consumer, &Content, &str) -> bool`
/// (the connection, the call, the handler's name) is a middleware (write a
/// closure's argument types out, so that it takes references of any
/// lifetime);
/// implement the trait for one that needs to await (a database lookup,
/// say), as for an [`Authenticator`](crate::Authenticator).
///
/// ```
/// use futures_util::future::BoxFuture;
/// use liveview::{middleware::Middleware, Consumer, Content};
///
/// // A closure: log every call.
/// let log = |_consumer: &Consumer, _content: &Content, function: &str| {
///     tracing::info!("calling {function}");
///     true
/// };
///
/// // A type that awaits before it answers.
/// struct Audit;
/// impl Middleware for Audit {
///     fn allows<'a>(&'a self, consumer: &'a Consumer, _content: &'a Content, function: &'a str) -> BoxFuture<'a, bool> {
///         Box::pin(async move {
///             tracing::info!(connection = consumer.id(), function, "call");
///             true
///         })
///     }
/// }
///
/// let live = liveview::LiveView::builder().middleware(log).middleware(Audit).build().unwrap();
/// # drop(live);
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Whether the call of the handler `function` by `consumer`, with
    /// `content`, goes on.
    fn allows<'a>(
        &'a self,
        consumer: &'a Consumer,
        content: &'a Content,
        function: &'a str,
    ) -> BoxFuture<'a, bool>;
}

impl<F> Middleware for F
where
    F: Fn(&Consumer, &Content, &str) -> bool + Send + Sync + 'static,
{
    fn allows<'a>(
        &'a self,
        consumer: &'a Consumer,
        content: &'a Content,
        function: &'a str,
    ) -> BoxFuture<'a, bool> {
        let allowed = self(consumer, content, function);
        Box::pin(std::future::ready(allowed))
    }
}

/// A middleware that lets a call through only when the connection has a
/// user, sending `refusal` (e.g. a "You must be logged in" update) to the
/// caller otherwise. Mirrors Django LiveView's `auth_middleware`.
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
