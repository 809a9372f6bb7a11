//! The in-memory layer: one process is the whole world.

use futures_util::future::BoxFuture;

use super::{ChannelLayer, Frame, LayerError, LocalDelivery};

/// The default channel layer: groups live in this process only.
///
/// Local fan-out is done by the application's group table before a layer is
/// asked to publish, so this layer has nothing left to carry. Use it for a
/// single server process and in tests; use the Redis layer to scale out.
///
/// ```
/// let live = liveview::LiveView::builder()
///     .channel_layer(liveview::layer::MemoryLayer)
///     .build()
///     .unwrap();
/// # drop(live);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryLayer;

impl ChannelLayer for MemoryLayer {
    fn start(&self, _local: LocalDelivery) {}

    fn subscribe(&self, _group: &str) {}

    fn unsubscribe(&self, _group: &str) {}

    fn is_local(&self) -> bool {
        true
    }

    fn publish<'a>(
        &'a self,
        _group: &'a str,
        _frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        Box::pin(async { Ok(()) })
    }
}
