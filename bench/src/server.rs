//! The bench server: the quick start's app (`say_hello`, `notify_all`) on
//! one of the channel layers (in-memory, Redis, Redis Cluster, NATS), with
//! `bench_to_rooms` for the many-rooms scenario of `layers`, and the
//! library's defaults except the
//! abuse limits, which a load test from a few addresses would trip. Its
//! socket buffers are the library's defaults, which the floor reads from
//! the library: should the defaults move, both servers still compare
//! alike.

use liveview::layer::{NatsLayer, RedisClusterLayer, RedisLayer};
use liveview::{Consumer, Content, LiveView, Update, liveview_handler};
// The handlers live in the quick start crate: naming it links them in.
use quickstart as _;

/// Which channel layer the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    Memory,
    Redis,
    RedisCluster,
    Nats,
}

impl Layer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layer::Memory => "memory",
            Layer::Redis => "redis",
            Layer::RedisCluster => "redis-cluster",
            Layer::Nats => "nats",
        }
    }
}

/// Sends one frame, `bench-round-<round>`, to each of `count` rooms from
/// `first` (the rooms of [`crate::client::room`]), all at once, then
/// answers the caller as `say_hello` does.
#[liveview_handler("bench_to_rooms")]
async fn bench_to_rooms(consumer: &Consumer, content: Content) -> liveview::Result {
    let number = |key: &str| usize::try_from(content.form.i64(key).unwrap_or(0)).unwrap_or(0);
    let (first, count, round) = (number("first"), number("count"), number("round"));
    let html = format!("{}{round}", crate::client::ROUND_TAG);
    let sends = (first..first + count.min(10_000)).map(|i| {
        let update = Update::new("#n").html(html.clone());
        async move { consumer.send_to_room(&crate::client::room(i), update).await }
    });
    for sent in futures_util::future::join_all(sends).await {
        sent?;
    }
    consumer.send(Update::new("#greeting").html("<h1>Hello, Ada!</h1>"))?;
    Ok(())
}

/// `liveview-bench server --layer memory|redis|redis-cluster|nats --addr
/// 127.0.0.1:9000 [--redis-url URL] [--seeds HOST:PORT,...] [--nats-url URL]
/// [--prefix PREFIX] [--defaults]`.
pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let mut layer = Layer::Memory;
    let mut addr = "127.0.0.1:9000".to_owned();
    let mut redis_url = "redis://127.0.0.1:6379".to_owned();
    let mut seeds = String::new();
    let mut nats_url = "nats://127.0.0.1:4222".to_owned();
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
                    "redis-cluster" => Layer::RedisCluster,
                    "nats" => Layer::Nats,
                    other => return Err(format!("unknown layer {other}")),
                }
            }
            "--addr" => addr = value()?,
            "--redis-url" => redis_url = value()?,
            "--seeds" => seeds = value()?,
            "--nats-url" => nats_url = value()?,
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
        builder = match layer {
            Layer::Memory => builder.channel_layer(liveview::layer::MemoryLayer),
            Layer::Redis => builder.channel_layer(
                RedisLayer::builder(redis_url)
                    .prefix(prefix)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            Layer::RedisCluster => builder.channel_layer(
                RedisClusterLayer::builder(seeds.split(',').map(str::trim))
                    .prefix(prefix)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            Layer::Nats => builder.channel_layer(
                NatsLayer::builder(&nats_url)
                    .prefix(prefix.trim_end_matches([':', '-']).replace([':', '-'], "_"))
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
        };
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
