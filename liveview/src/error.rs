//! Error types. Each failure has its own type with a message a user can act
//! on; none of them is ever sent to a browser.

use std::fmt;

/// The error a handler returns: any error type converts into it with `?`,
/// and so do `anyhow::Error`, `Box<dyn std::error::Error + Send + Sync>`,
/// `String` and `&str`.
///
/// The message and its cause go to the server log; the client only ever
/// receives `{"error": "Internal error"}`.
///
/// ```
/// use liveview::{Consumer, Content};
///
/// fn parse_page(content: &Content) -> liveview::Result<u32> {
///     let page: u32 = content.data.str("page").unwrap_or("1").parse()?;
///     if page == 0 {
///         return Err(liveview::Error::msg("page numbers start at 1"));
///     }
///     Ok(page)
/// }
/// ```
pub struct Error {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// `Result<T, liveview::Error>`, with `T = ()` by default: the usual handler
/// return type.
pub type Result<T = (), E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with just a message.
    ///
    /// ```
    /// let err = liveview::Error::msg("alert not found");
    /// assert_eq!(err.to_string(), "alert not found");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            inner: message.to_string().into(),
        }
    }

    /// The underlying error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }
}

/// Any error type, `anyhow::Error`, a boxed error, a `String` or a `&str`
/// (everything that converts into `Box<dyn std::error::Error + Send +
/// Sync>`) becomes a `liveview::Error` with `?`.
impl<E> From<E> for Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(err: E) -> Self {
        Self { inner: err.into() }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)?;
        let mut source = self.inner.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A frame could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed (the browser left, or the server is
    /// shutting down).
    Closed,
    /// The connection's outgoing queue was full: the client is not reading
    /// fast enough, and is being closed with code 1013.
    SlowClient,
    /// The update could not be serialised to JSON.
    Serialize,
    /// The frame is larger than the outgoing limit
    /// ([`LiveViewBuilder::max_outgoing_frame_size`](crate::LiveViewBuilder::max_outgoing_frame_size),
    /// 256 KiB by default): it was not sent, and the connection is fine.
    TooLarge,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "the connection is closed",
            SendError::SlowClient => "the client is not reading its frames; closing it",
            SendError::Serialize => "the update could not be serialised to JSON",
            SendError::TooLarge => "the frame is larger than the outgoing limit; not sent",
        })
    }
}

impl std::error::Error for SendError {}

/// A broadcast or room send reached the local members but could not be
/// handed to the channel layer for the other server processes.
///
/// Ignoring it is often right: the frame was delivered here, and a page on
/// another node that missed it will see the next one.
#[derive(Debug)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The update could not be serialised to JSON.
    Serialize(serde_json::Error),
    /// The channel layer failed to publish to other processes.
    Layer(crate::layer::LayerError),
    /// The frame is larger than the outgoing limit
    /// ([`LiveViewBuilder::max_outgoing_frame_size`](crate::LiveViewBuilder::max_outgoing_frame_size),
    /// 256 KiB by default): it was sent to no one, here or elsewhere.
    TooLarge,
    /// The connection whose call sends it spent its broadcast budget
    /// ([`LiveViewBuilder::broadcast_budget`](crate::LiveViewBuilder::broadcast_budget)):
    /// it was sent to no one. Returned from a handler, it answers the
    /// client `{"error": "Rate limited"}`.
    OverBudget,
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Serialize(_) => f.write_str("the update could not be serialised"),
            BroadcastError::Layer(_) => {
                f.write_str("delivered locally, but not published to other processes")
            }
            BroadcastError::TooLarge => {
                f.write_str("the frame is larger than the outgoing limit; sent to no one")
            }
            BroadcastError::OverBudget => {
                f.write_str("the connection is over its broadcast budget; sent to no one")
            }
        }
    }
}

impl std::error::Error for BroadcastError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BroadcastError::Serialize(e) => Some(e),
            BroadcastError::Layer(e) => Some(e),
            BroadcastError::TooLarge | BroadcastError::OverBudget => None,
        }
    }
}

/// The form or data of a message did not fit the type asked for.
///
/// ```
/// #[derive(serde::Deserialize, Debug)]
/// struct Signup { email: String }
///
/// let content = liveview::Content::new("signup");
/// let err = content.form.deserialize::<Signup>().unwrap_err();
/// assert_eq!(err.to_string(), "form: missing field `email`");
/// ```
#[derive(Debug)]
pub struct ContentError {
    part: &'static str,
    path: String,
    message: String,
}

impl ContentError {
    pub(crate) fn new(part: &'static str, path: String, message: String) -> Self {
        Self {
            part,
            path,
            message,
        }
    }

    /// Which part of the content failed: `"form"` or `"data"`.
    pub fn part(&self) -> &'static str {
        self.part
    }

    /// The field that did not fit (`""` when the whole value did not).
    pub fn field(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}: {}", self.part, self.message)
        } else {
            write!(f, "{}.{}: {}", self.part, self.path, self.message)
        }
    }
}

impl std::error::Error for ContentError {}

/// The application could not be built.
///
/// Its `Debug` form is its message, so `main() -> Result<(), Box<dyn
/// Error>>` prints something readable:
///
/// ```
/// let err = liveview::BuildError::Env {
///     variable: "LIVEVIEW_TRUSTED_PROXIES",
///     reason: "\"proxy.internal\" is not an IP address".into(),
/// };
/// let err: Box<dyn std::error::Error> = Box::new(err);
/// assert_eq!(
///     format!("{err:?}"),
///     "LIVEVIEW_TRUSTED_PROXIES: \"proxy.internal\" is not an IP address"
/// );
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum BuildError {
    /// Two handlers were registered under one name.
    DuplicateHandler {
        /// The name both use.
        name: &'static str,
        /// The first Rust function (`module::function (file:line)`).
        first: String,
        /// The second Rust function.
        second: String,
    },
    /// An environment variable read by
    /// [`LiveViewBuilder::from_env`](crate::LiveViewBuilder::from_env) has
    /// a value that cannot be used.
    Env {
        /// The variable, e.g. `LIVEVIEW_REDIS_URL`.
        variable: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::DuplicateHandler {
                name,
                first,
                second,
            } => write!(
                f,
                "two handlers are registered as {name:?}: {first} and {second}; rename one"
            ),
            BuildError::Env { variable, reason } => write!(f, "{variable}: {reason}"),
        }
    }
}

/// The message, as `Display` writes it: `Debug` is what a `main` returning
/// `Result<(), Box<dyn Error>>` prints.
impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BuildError {}

/// A secret given to [`SessionAuth::new`](crate::session::SessionAuth::new)
/// or [`RoomSigner::new`](crate::session::RoomSigner::new) is shorter than
/// 32 bytes: too easy to guess.
///
/// ```
/// let err = liveview::session::RoomSigner::new(b"short").unwrap_err();
/// assert_eq!(err.len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretTooShort {
    len: usize,
}

impl SecretTooShort {
    pub(crate) fn new(len: usize) -> Self {
        Self { len }
    }

    /// The length of the secret that was given, in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }
}

impl fmt::Display for SecretTooShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the secret is {} bytes long; use at least {} random bytes",
            self.len,
            crate::session::MIN_SECRET_LEN
        )
    }
}

impl std::error::Error for SecretTooShort {}

#[cfg(test)]
mod tests {
    use super::*;

    fn anyhow_fails() -> anyhow::Result<()> {
        let io = std::io::Error::other("disk full");
        Err(anyhow::Error::new(io).context("saving the alert"))
    }

    fn boxed_fails() -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("no such alert".into())
    }

    fn handler(which: u8) -> Result {
        match which {
            0 => anyhow_fails()?,
            1 => boxed_fails()?,
            _ => "1x".parse::<u32>().map(drop)?,
        }
        Ok(())
    }

    #[test]
    fn anyhow_boxed_and_std_errors_convert_with_the_question_mark() {
        assert_eq!(
            handler(0).unwrap_err().to_string(),
            "saving the alert: disk full"
        );
        assert_eq!(handler(1).unwrap_err().to_string(), "no such alert");
        assert_eq!(
            handler(2).unwrap_err().to_string(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn a_build_error_debugs_as_its_message() {
        let err = BuildError::DuplicateHandler {
            name: "save",
            first: "app::a::save (src/a.rs:3)".into(),
            second: "app::b::save_draft (src/b.rs:9)".into(),
        };
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(
            format!("{boxed:?}"),
            "two handlers are registered as \"save\": app::a::save (src/a.rs:3) and \
             app::b::save_draft (src/b.rs:9); rename one"
        );
    }
}
