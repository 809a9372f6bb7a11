//! Authentication at upgrade time: who is on the other end of a connection.

use futures_util::future::BoxFuture;

use crate::scope::{Scope, User};

/// What an [`Authenticator`] found in an upgrade request.
///
/// `Option<User>` and `User` convert into it, so an authenticator that
/// never refuses returns those.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// A signed-in user: [`Scope::user`] and
    /// [`Consumer::user`](crate::Consumer::user) give it to handlers.
    User(User),
    /// Nobody in particular: the connection opens without a user.
    Anonymous,
    /// The request carries a session that has ended (expired, signed out,
    /// revoked). The server accepts the upgrade and closes the socket at
    /// once with code 4401 (a browser cannot read the HTTP status of a
    /// refused upgrade): the client stops reconnecting, fires
    /// `liveview:session-expired` and shows `#session-expired`.
    Expired,
}

impl From<Option<User>> for Identity {
    fn from(user: Option<User>) -> Self {
        user.map_or(Self::Anonymous, Self::User)
    }
}

impl From<User> for Identity {
    fn from(user: User) -> Self {
        Self::User(user)
    }
}

/// Finds the user of a connection from its upgrade request, once, before the
/// socket opens. The result is [`Scope::user`] (Django LiveView's
/// `consumer.scope["user"]`), or a refusal as [`Identity::Expired`].
///
/// A plain closure or function `Fn(&Scope) -> T`, where `T` is an
/// [`Identity`], an `Option<User>` or a `User`, is an authenticator;
/// implement the trait for one that needs to await (a database lookup,
/// say).
///
/// ```
/// use futures_util::future::BoxFuture;
/// use liveview::{Authenticator, Identity, Scope, User};
///
/// // A closure: the user named by a header set by a trusted proxy.
/// let by_header = |scope: &Scope| scope.header("x-user").map(|name| User::new(name, name));
///
/// // A type that looks sessions up asynchronously.
/// struct Sessions;
/// impl Authenticator for Sessions {
///     fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Identity> {
///         Box::pin(async move {
///             match scope.cookie("session").as_deref() {
///                 Some("valid") => Identity::User(User::new("1", "Ada")),
///                 // A session this server ended: the page is told so.
///                 Some("ended") => Identity::Expired,
///                 _ => Identity::Anonymous,
///             }
///         })
///     }
/// }
///
/// let live = liveview::LiveView::builder().authenticator(by_header).build().unwrap();
/// # drop(live);
/// let live = liveview::LiveView::builder().authenticator(Sessions).build().unwrap();
/// # drop(live);
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Who the connection whose upgrade request is `scope` belongs to.
    fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Identity>;
}

impl<F, T> Authenticator for F
where
    F: Fn(&Scope) -> T + Send + Sync + 'static,
    T: Into<Identity>,
{
    fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Identity> {
        let identity = self(scope).into();
        Box::pin(async move { identity })
    }
}
