//! The announce function: the upload script's first step, over the socket.
//!
//! `{"function": "liveview_upload", "data": {"upload": "photo", "id": "x1",
//! "files": [{"name": "a.png", "size": 1234}]}}` is answered, to the caller
//! only, with `{"upload": {"id": "x1", "chunk": 65536, "files": [{"token":
//! "...", "url": "/liveview/upload/..."}, {"error": "File too large (at most
//! 10 MB)"}]}}`: one entry per announced file, in order.

use serde::Deserialize;
use serde_json::json;

use super::ANNOUNCE;
use super::service::UploadService;
use crate::__private::{Handler, HandlerEntry, HandlerFuture};
use crate::call::content::Content;
use crate::consumer::Consumer;
use crate::update::Update;

/// Files one announcement may name, whatever the rules say.
const MAX_FILES: usize = 100;

#[derive(Deserialize)]
struct Announce {
    upload: String,
    id: String,
    files: Vec<File>,
}

#[derive(Deserialize)]
struct File {
    name: String,
    size: u64,
}

async fn announce(consumer: &Consumer, content: Content) -> crate::Result {
    let request: Announce = content.data.deserialize()?;
    if request.files.len() > MAX_FILES || request.id.len() > 64 {
        return Err(crate::Error::msg("upload announcement too large"));
    }
    let files: Vec<(String, u64)> = request
        .files
        .into_iter()
        .map(|file| (file.name, file.size))
        .collect();
    let answers = match consumer.app_state::<UploadService>() {
        Some(service) => service.0.announce(
            consumer.id(),
            consumer.scope().client_ip(),
            consumer.room(),
            &request.upload,
            &files,
        ),
        None => files
            .iter()
            .map(|_| json!({"error": "Uploads are not accepted here"}))
            .collect(),
    };
    let chunk = consumer
        .app_state::<UploadService>()
        .map_or(0, |service| service.0.chunk_size);
    consumer.send(Update::empty().extra(
        "upload",
        json!({"id": request.id, "chunk": chunk, "files": answers}),
    ))?;
    Ok(())
}

fn adapter(consumer: &Consumer, content: Content) -> HandlerFuture<'_> {
    crate::__private::boxed(announce, consumer, content, std::convert::identity)
}

inventory::submit! {
    HandlerEntry {
        name: ANNOUNCE,
        function: "announce",
        module: module_path!(),
        file: file!(),
        line: line!(),
        handler: Handler::Async(adapter),
    }
}
