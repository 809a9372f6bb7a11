//! Error types. Each failure has its own type with a message a user can act
//! on; none of them is ever sent to a browser.

use std::fmt;

/// The error a handler returns: any error type converts into it with `?`.
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

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        Self {
            inner: Box::new(err),
        }
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
        }
    }
}

impl std::error::Error for BroadcastError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BroadcastError::Serialize(e) => Some(e),
            BroadcastError::Layer(e) => Some(e),
            BroadcastError::TooLarge => None,
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
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// Two handlers were registered under one name.
    DuplicateHandler {
        /// The name both use.
        name: &'static str,
        /// Where the first one is (`module::path (file:line)`).
        first: String,
        /// Where the second one is.
        second: String,
    },
    /// The channel layer named by the environment could not be set up.
    Layer(crate::layer::LayerError),
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
            BuildError::Layer(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for BuildError {}
