//! The chunk route: `HEAD`, `PATCH` (or `POST`) and `DELETE` on
//! `/liveview/upload/{token}`, as PROTOCOL.md's "Uploads" describes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::head;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::Progress;
use super::magic::FileType;
use super::service::{Service, TokenError};
use crate::broadcast::Broadcaster;

/// The header carrying an upload's offset, both ways.
pub(crate) const OFFSET: &str = "upload-offset";
/// The header carrying an upload's total size in `HEAD` answers.
pub(crate) const LENGTH: &str = "upload-length";

#[derive(Clone)]
struct Ctx {
    service: Arc<Service>,
    broadcaster: Broadcaster,
}

pub(crate) fn router<S>(service: Arc<Service>, broadcaster: Broadcaster) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/liveview/upload/{token}",
            head(status).patch(chunk).post(chunk).delete(cancel),
        )
        .with_state(Ctx {
            service,
            broadcaster,
        })
}

fn answer(status: StatusCode, offset: Option<u64>, error: Option<&str>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(offset) = offset {
        headers.insert(OFFSET, HeaderValue::from(offset));
    }
    match error {
        Some(error) => (
            status,
            headers,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": error }).to_string(),
        )
            .into_response(),
        None => (status, headers).into_response(),
    }
}

fn refused(err: TokenError) -> Response {
    match err {
        TokenError::Invalid => answer(StatusCode::NOT_FOUND, None, Some("Unknown upload")),
        TokenError::Expired => answer(StatusCode::GONE, None, Some("Upload expired")),
    }
}

fn storage_failed(err: &std::io::Error) -> Response {
    tracing::error!(target: "liveview", error = %err, "upload storage failed");
    answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        Some("Internal error"),
    )
}

/// `HEAD`: the acknowledged offset, to resume from.
async fn status(State(ctx): State<Ctx>, Path(token): Path<String>) -> Response {
    let ticket = match ctx.service.ticket(&token) {
        Ok(ticket) => ticket,
        Err(err) => return refused(err),
    };
    let entry = ctx.service.entry(&ticket);
    let mut state = entry.state.lock().await;
    if state.gone || entry.cancelled.load(Ordering::Acquire) {
        return answer(StatusCode::GONE, None, None);
    }
    match ctx.service.offset(&ticket.id, &mut state).await {
        Ok(offset) => {
            let mut response = answer(StatusCode::NO_CONTENT, Some(offset), None);
            response
                .headers_mut()
                .insert(LENGTH, HeaderValue::from(ticket.size));
            response
        }
        Err(err) => storage_failed(&err),
    }
}

/// `PATCH`/`POST`: one chunk at the offset given in `Upload-Offset`.
async fn chunk(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let service = &ctx.service;
    let ticket = match service.ticket(&token) {
        Ok(ticket) => ticket,
        Err(err) => return refused(err),
    };
    let Some(offset) = headers
        .get(OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return answer(StatusCode::BAD_REQUEST, None, Some("Upload-Offset missing"));
    };
    // Taken before the body is read: memory is bounded by the permits.
    let Ok(_permit) = service.transfers.acquire().await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, None, None);
    };
    let entry = service.entry(&ticket);
    let mut state = entry.state.lock().await;
    if state.gone || entry.cancelled.load(Ordering::Acquire) {
        return answer(StatusCode::GONE, None, Some("Upload cancelled"));
    }
    let stored = match service.offset(&ticket.id, &mut state).await {
        Ok(stored) => stored,
        Err(err) => return storage_failed(&err),
    };
    if offset != stored {
        return answer(StatusCode::CONFLICT, Some(stored), Some("Wrong offset"));
    }
    let room = usize::try_from(ticket.size - stored).unwrap_or(usize::MAX);
    let limit = service.chunk_size.min(room);
    let bytes = match tokio::time::timeout(service.chunk_timeout, axum::body::to_bytes(body, limit))
        .await
    {
        Err(_) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                Some(stored),
                Some("Chunk too slow"),
            );
        }
        Ok(Err(_)) => {
            // Longer than a chunk, past the announced size, or cut off.
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(stored),
                Some("Chunk too large"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    if bytes.is_empty() {
        return answer(StatusCode::NO_CONTENT, Some(stored), None);
    }
    let rule = service.rules.get(&ticket.upload).cloned();
    if stored == 0 {
        // The first bytes decide the type: refused at once, nothing kept.
        let detected = FileType::detect(&bytes);
        let short = bytes.len() < FileType::HEAD && (bytes.len() as u64) < ticket.size;
        if short || !rule.as_ref().is_some_and(|rule| rule.accepts(detected)) {
            state.gone = true;
            drop(state);
            service.forget(&ticket);
            if let Err(err) = service.storage.remove(&ticket.id).await {
                return storage_failed(&err);
            }
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                Some("File type not accepted"),
            );
        }
        state.detected = detected;
    }
    let len = bytes.len() as u64;
    if let Err(err) = service.storage.append(&ticket.id, stored, bytes).await {
        state.offset = None; // read it again from storage next time
        return storage_failed(&err);
    }
    let received = stored + len;
    state.offset = Some(received);
    if entry.cancelled.load(Ordering::Acquire) {
        // Cancelled while this chunk arrived: nothing of it stays.
        state.gone = true;
        drop(state);
        if let Err(err) = service.storage.remove(&ticket.id).await {
            return storage_failed(&err);
        }
        return answer(StatusCode::GONE, None, Some("Upload cancelled"));
    }
    drop(state);
    service.received.fetch_add(len, Ordering::Relaxed);
    if let Some(update) = rule.as_ref().and_then(|rule| {
        rule.on_progress.as_ref().and_then(|f| {
            f(&Progress {
                upload: &ticket.upload,
                name: &ticket.name,
                room: &ticket.room,
                received,
                size: ticket.size,
            })
        })
    }) && let Err(err) = ctx.broadcaster.send_to_room(&ticket.room, update).await
    {
        tracing::warn!(target: "liveview", error = %err, "upload progress not sent");
    }
    answer(StatusCode::NO_CONTENT, Some(received), None)
}

/// `DELETE`: cancel, and remove what arrived.
async fn cancel(State(ctx): State<Ctx>, Path(token): Path<String>) -> Response {
    let ticket = match ctx.service.ticket(&token) {
        Ok(ticket) => ticket,
        Err(TokenError::Invalid) => return refused(TokenError::Invalid),
        // An expired upload is removed by the sweeper anyway.
        Err(TokenError::Expired) => return answer(StatusCode::NO_CONTENT, None, None),
    };
    // Not waiting for a chunk being received (it may be stalled): the
    // chunk sees the flag and removes what it wrote.
    let entry = ctx.service.entry(&ticket);
    entry.cancelled.store(true, Ordering::Release);
    ctx.service.forget(&ticket);
    match ctx.service.storage.remove(&ticket.id).await {
        Ok(()) => answer(StatusCode::NO_CONTENT, None, None),
        Err(err) => storage_failed(&err),
    }
}
