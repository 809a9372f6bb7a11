//! The bench server: the quick start's app (`say_hello`, `notify_all`) on
//! the in-memory or the Redis layer, with the library's defaults except the
//! abuse limits, which a load test from a few addresses would trip. Its
//! socket buffers are the library's defaults, which the floor reads from
//! the library: should the defaults move, both servers still compare
//! alike.

use liveview::LiveView;
use liveview::layer::RedisLayer;
// The handlers live in the quick start crate: naming it links them in.
use quickstart as _;

/// Which channel layer the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    Memory,
    Redis,
}

impl Layer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layer::Memory => "memory",
            Layer::Redis => "redis",
        }
    }
}

/// `liveview-bench server --layer memory|redis --addr 127.0.0.1:9000
/// [--redis-url URL] [--prefix PREFIX] [--defaults]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut layer = Layer::Memory;
    let mut addr = "127.0.0.1:9000".to_owned();
    let mut redis_url = "redis://127.0.0.1:6379".to_owned();
    let mut prefix = "liveview-bench:".to_owned();
    let mut defaults = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--layer" => {
                layer = match value()?.as_str() {
                    "memory" => Layer::Memory,
                    "redis" => Layer::Redis,
                    other => return Err(format!("unknown layer {other}")),
                }
            }
            "--addr" => addr = value()?,
            "--redis-url" => redis_url = value()?,
            "--prefix" => prefix = value()?,
            // Keep the abuse limits too: every default of the library.
            "--defaults" => defaults = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    crate::raise_fd_limit();
    let runtime = crate::server_runtime()?;
    runtime.block_on(async move {
        let mut builder = if defaults {
            LiveView::builder()
        } else {
            LiveView::builder()
                .rate_limit(None)
                .address_rate_limit(None)
                .max_connections_per_address(None)
        };
        if layer == Layer::Redis {
            let redis = RedisLayer::builder(redis_url)
                .prefix(prefix)
                .build()
                .map_err(|e| e.to_string())?;
            builder = builder.channel_layer(redis);
        } else {
            builder = builder.channel_layer(liveview::layer::MemoryLayer);
        }
        let live = builder.build().map_err(|e| e.to_string())?;
        let functions = live.functions();
        if !functions.contains(&"say_hello") || !functions.contains(&"notify_all") {
            return Err(format!(
                "the quick start's handlers are missing: {functions:?}"
            ));
        }
        let app = quickstart::app(&live);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        eprintln!(
            "bench server ({} layer) on {}",
            layer.as_str(),
            listener.local_addr().map_err(|e| e.to_string())?
        );
        liveview::serve(listener, app, live)
            .await
            .map_err(|e| e.to_string())
    })
}
