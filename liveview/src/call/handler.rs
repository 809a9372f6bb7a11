//! Handlers and their registry.
//!
//! `#[liveview_handler("name")]` submits a [`HandlerEntry`] that is collected
//! at link time; the registry is built from them once, refusing two handlers
//! with one name.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use crate::call::content::Content;
use crate::consumer::Consumer;
use crate::error::{BuildError, Error, Result};

/// The boxed future of an async handler: it owns its content and borrows
/// the connection's consumer. Once done, it can start the same handler
/// again in its box (`HandlerTask::restart`).
pub type HandlerFuture<'a> = Pin<Box<dyn HandlerTask<'a> + 'a>>;

/// An async handler's future that, once done, starts its handler again in
/// the place it takes: a connection that calls one handler time after time
/// reuses the box of its previous call rather than allocating another.
pub trait HandlerTask<'a>: Future<Output = Result> + Send {
    /// Start the handler again for another call on the same connection,
    /// where this future stands: the future it was is dropped.
    fn restart(self: Pin<&mut Self>, consumer: &'a Consumer, content: Content);
}

/// How a registered handler is called. Written by the macro.
#[derive(Clone, Copy)]
pub enum Handler {
    /// An `async fn`, polled on the connection's task. It borrows the
    /// connection's consumer, which outlives the call, and is given the
    /// content to own: the call's future holds the content only in the
    /// handler's.
    Async(for<'a> fn(&'a Consumer, Content) -> HandlerFuture<'a>),
    /// A plain `fn`, run on tokio's blocking pool.
    Blocking(fn(&Consumer, Content) -> Result),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Async(_) => "Handler::Async",
            Handler::Blocking(_) => "Handler::Blocking",
        })
    }
}

/// A handler as registered by `#[liveview_handler]`.
#[derive(Debug)]
pub struct HandlerEntry {
    /// The name the client calls.
    pub name: &'static str,
    /// The Rust name of the function.
    pub function: &'static str,
    /// `module_path!()` of the function.
    pub module: &'static str,
    /// `file!()` of the function.
    pub file: &'static str,
    /// `line!()` of the attribute.
    pub line: u32,
    /// The function.
    pub handler: Handler,
}

impl HandlerEntry {
    fn location(&self) -> String {
        format!(
            "{}::{} ({}:{})",
            self.module, self.function, self.file, self.line
        )
    }
}

inventory::collect!(HandlerEntry);

/// The future of the async handler `handler` called with `consumer` and
/// `content`, boxed, its output made the library's result by `finish`: no
/// `async` block around the handler, which would hold the content once
/// more. The box is allocated first and the handler's future made in it,
/// not made aside and moved in. The box keeps `handler` and `finish`, to
/// start the handler again in it (`HandlerTask::restart`).
pub fn boxed<'a, H, F, M>(
    handler: H,
    consumer: &'a Consumer,
    content: Content,
    finish: M,
) -> HandlerFuture<'a>
where
    H: Fn(&'a Consumer, Content) -> F + Copy + Send + 'a,
    F: Future + Send + 'a,
    M: FnMut(F::Output) -> Result + Copy + Send + 'a,
{
    let boxed = Box::<Finish<F, M, H>>::new_uninit();
    let boxed: Box<Finish<F, M, H>> = Box::write(
        boxed,
        Finish {
            handler: handler(consumer, content),
            finish,
            start: handler,
        },
    );
    Box::into_pin(boxed)
}

pin_project_lite::pin_project! {
    /// A handler's future whose output `finish` maps, and the handler that
    /// made it (`start`).
    struct Finish<F, M, H> {
        #[pin]
        handler: F,
        finish: M,
        start: H,
    }
}

impl<F, M, H> Future for Finish<F, M, H>
where
    F: Future,
    M: FnMut(F::Output) -> Result,
{
    type Output = Result;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result> {
        let this = self.project();
        this.handler.poll(cx).map(this.finish)
    }
}

impl<'a, F, M, H> HandlerTask<'a> for Finish<F, M, H>
where
    H: Fn(&'a Consumer, Content) -> F + Copy + Send + 'a,
    F: Future + Send + 'a,
    M: FnMut(F::Output) -> Result + Copy + Send + 'a,
{
    fn restart(mut self: Pin<&mut Self>, consumer: &'a Consumer, content: Content) {
        let (start, finish) = (self.start, self.finish);
        self.set(Finish {
            handler: start(consumer, content),
            finish,
            start,
        });
    }
}

/// What a handler may return: `()` or `Result<(), E>` with `E: Into<Error>`.
#[diagnostic::on_unimplemented(
    message = "a LiveView handler cannot return `{Self}`",
    label = "the handler's return type",
    note = "a handler returns `()` or `liveview::Result` (`Result<(), E>` for any error `E` that converts into `liveview::Error`)"
)]
pub trait IntoHandlerResult {
    /// Convert to the library's result.
    fn into_handler_result(self) -> Result;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result {
        Ok(())
    }
}

impl<E: Into<Error>> IntoHandlerResult for std::result::Result<(), E> {
    fn into_handler_result(self) -> Result {
        self.map_err(Into::into)
    }
}

/// Hashes the names of a fixed table (the registry), looked up once per
/// call: eight bytes at a time, each word mixed in with a rotation, an xor
/// and a multiplication, a fraction of the default SipHash's cost on names
/// of a few bytes. A client cannot add names to these tables, so it cannot
/// flood them with collisions.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl NameHasher {
    /// An odd constant with its bits spread (the golden ratio's).
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut le = [0; 8];
            le.copy_from_slice(word);
            self.add(u64::from_le_bytes(le));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // Byte by byte: a copy of a few bytes would call memcpy.
            self.add(
                rest.iter()
                    .rev()
                    .fold(0, |word, &b| word << 8 | u64::from(b)),
            );
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The table takes its index from the low bits, which the
        // multiplications fill from the low bits of the words only.
        self.0 ^ (self.0 >> 29)
    }
}

/// A table keyed by handler name.
pub(crate) type NameMap<V> = HashMap<&'static str, V, std::hash::BuildHasherDefault<NameHasher>>;

/// Handlers by name.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Each handler and the index of its name in [`Registry::names`].
    handlers: NameMap<(&'static HandlerEntry, usize)>,
}

impl Registry {
    pub(crate) fn from_entries(
        entries: impl IntoIterator<Item = &'static HandlerEntry>,
    ) -> std::result::Result<Self, BuildError> {
        let mut handlers: NameMap<(&'static HandlerEntry, usize)> = NameMap::default();
        for entry in entries {
            if let Some((first, _)) = handlers.insert(entry.name, (entry, 0)) {
                let (first, second) = ordered(first, entry);
                return Err(BuildError::DuplicateHandler {
                    name: entry.name,
                    first: first.location(),
                    second: second.location(),
                });
            }
        }
        let mut registry = Self { handlers };
        for (index, name) in registry.names().into_iter().enumerate() {
            if let Some((_, at)) = registry.handlers.get_mut(name) {
                *at = index;
            }
        }
        Ok(registry)
    }

    /// The registry of every handler linked into the program, built once.
    pub(crate) fn global() -> std::result::Result<&'static Registry, BuildError> {
        static GLOBAL: OnceLock<std::result::Result<Registry, BuildError>> = OnceLock::new();
        let built = GLOBAL.get_or_init(|| {
            let registry = Registry::from_entries(inventory::iter::<HandlerEntry>)?;
            registry.log();
            Ok(registry)
        });
        built.as_ref().map_err(Clone::clone)
    }

    /// The handler called `name`, and the index of its name in
    /// [`names`](Self::names) (its series in the metrics).
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<(&'static HandlerEntry, usize)> {
        self.handlers.get(name).copied()
    }

    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.handlers.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// One line per handler, the counterpart of Django LiveView's
    /// "✓ Imported:" lines; a loud warning when there are none.
    fn log(&self) {
        let mut entries: Vec<_> = self.handlers.values().map(|(entry, _)| entry).collect();
        entries.sort_by_key(|e| (e.module, e.name));
        for entry in &entries {
            tracing::info!(target: "liveview", "✓ Registered: {} ({}, {}:{})", entry.name, entry.module, entry.file, entry.line);
        }
        if entries.is_empty() {
            tracing::warn!(
                target: "liveview",
                "no LiveView handlers are registered: if they live in another crate, \
                 name it in the binary (`use that_crate as _;`)"
            );
        } else {
            tracing::info!(target: "liveview", "{} LiveView handlers registered", entries.len());
        }
    }
}

/// Report a duplicate in source order, so the message is stable.
fn ordered(
    a: &'static HandlerEntry,
    b: &'static HandlerEntry,
) -> (&'static HandlerEntry, &'static HandlerEntry) {
    if (a.file, a.line) <= (b.file, b.line) {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &Consumer, _: Content) -> Result {
        Ok(())
    }

    static FIRST: HandlerEntry = HandlerEntry {
        name: "twice",
        function: "twice_a",
        module: "app::a",
        file: "src/a.rs",
        line: 3,
        handler: Handler::Blocking(noop),
    };
    static SECOND: HandlerEntry = HandlerEntry {
        name: "twice",
        function: "twice_b",
        module: "app::b",
        file: "src/b.rs",
        line: 9,
        handler: Handler::Blocking(noop),
    };
    static OTHER: HandlerEntry = HandlerEntry {
        name: "other",
        function: "other",
        module: "app::b",
        file: "src/b.rs",
        line: 20,
        handler: Handler::Blocking(noop),
    };

    #[tokio::test]
    async fn a_handler_started_again_runs_in_the_same_box_with_the_new_content() {
        static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        async fn record(_: &Consumer, content: Content) -> Result {
            SEEN.lock().unwrap().push(content.function().to_owned());
            Ok(())
        }
        let (consumer, _recorder) = crate::testing::consumer("room");
        let mut future = boxed(
            record,
            &consumer,
            Content::new("first"),
            std::convert::identity,
        );
        let at = std::ptr::from_ref(&*future).cast::<()>();
        future.as_mut().await.unwrap();
        future.as_mut().restart(&consumer, Content::new("second"));
        future.as_mut().await.unwrap();
        assert_eq!(*SEEN.lock().unwrap(), ["first", "second"]);
        assert_eq!(std::ptr::from_ref(&*future).cast::<()>(), at);
    }

    #[test]
    fn two_handlers_with_one_name_are_refused_naming_both() {
        let err = Registry::from_entries([&SECOND, &OTHER, &FIRST]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"twice\""), "{message}");
        assert!(
            message.contains("app::a::twice_a (src/a.rs:3)"),
            "{message}"
        );
        assert!(
            message.contains("app::b::twice_b (src/b.rs:9)"),
            "{message}"
        );
    }

    #[test]
    fn names_are_sorted_and_a_handler_is_found_with_the_index_of_its_name() {
        let registry = Registry::from_entries([&FIRST, &OTHER]).unwrap();
        assert_eq!(registry.names(), ["other", "twice"]);
        assert_eq!(
            registry
                .get("twice")
                .map(|(entry, index)| (entry.name, index)),
            Some(("twice", 1))
        );
        assert_eq!(registry.get("other").map(|(_, index)| index), Some(0));
        assert!(registry.get("missing").is_none());
    }
}
