//! One call: the wire protocol, the content a handler receives (with key
//! normalisation), dispatch to the registered handler, and middleware.

pub(crate) mod content;
pub(crate) mod dispatch;
pub(crate) mod handler;
pub(crate) mod log;
pub mod middleware;
pub mod protocol;
