//! Authentication at upgrade time: who is on the other end of a connection.

use futures_util::future::BoxFuture;

use crate::scope::{Scope, User};

/// Finds the user of a connection from its upgrade request, once, before the
/// socket opens. The result is [`Scope::user`] (the seed's
/// `consumer.scope["user"]`).
///
/// A plain closure or function `Fn(&Scope) -> Option<User>` is an
/// authenticator; implement the trait for one that needs to await (a
/// database lookup, say).
///
/// ```
/// use futures_util::future::BoxFuture;
/// use liveview::{Authenticator, Scope, User};
///
/// // A closure: the user named by a header set by a trusted proxy.
/// let by_header = |scope: &Scope| scope.header("x-user").map(|name| User::new(name, name));
///
/// // A type that looks sessions up asynchronously.
/// struct Sessions;
/// impl Authenticator for Sessions {
///     fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Option<User>> {
///         Box::pin(async move {
///             let session = scope.cookie("session")?;
///             (session == "valid").then(|| User::new("1", "Ada"))
///         })
///     }
/// }
///
/// let live = liveview::LiveView::builder().authenticator(by_header).build().unwrap();
/// # drop(live);
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// The user of the connection whose upgrade request is `scope`, or
    /// `None` for an anonymous one.
    fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Option<User>>;
}

impl<F> Authenticator for F
where
    F: Fn(&Scope) -> Option<User> + Send + Sync + 'static,
{
    fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Option<User>> {
        let user = self(scope);
        Box::pin(async move { user })
    }
}
