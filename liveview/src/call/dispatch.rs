//! One call, from text frame to `done`: parse, middleware, handler, errors.
//! Shared by real sockets and the in-process test client.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::app::Shared;
use crate::call::handler::Handler;
use crate::call::protocol::{self, errors};
use crate::consumer::{CallRef, Connection, Consumer};
use crate::layer::Frame;
use crate::metrics::Outcome;

/// Handle one text frame of `conn`. Never fails: every problem becomes one
/// of the protocol's error frames and a log line.
pub(crate) async fn handle_text(shared: &Shared, conn: &Arc<Connection>, text: &str) -> Outcome {
    if let Some(n) = protocol::ping(text) {
        let _ = conn.outbox.push(Frame::from(protocol::pong_frame(n)));
        return Outcome::Ok;
    }
    let call = match protocol::parse(text, &conn.room) {
        Ok(call) => call,
        Err(invalid) => {
            tracing::debug!(target: "liveview", connection = conn.id, reason = %invalid.0, "invalid message");
            let _ = conn.outbox.push(Frame::from(protocol::error_frame(
                errors::INVALID_MESSAGE,
                None,
            )));
            shared
                .metrics
                .call("", Outcome::Invalid, std::time::Duration::ZERO);
            return Outcome::Invalid;
        }
    };
    let reference = call.reference;
    let content = call.content;
    let function = content.function.clone();
    let started = Instant::now();
    let call_ref = reference.map(CallRef::new);
    let consumer = Consumer::new(conn.clone(), call_ref.clone());

    let span = tracing::info_span!(
        target: "liveview",
        "call",
        function = %function,
        outcome = tracing::field::Empty,
    );
    let outcome = async {
        match shared.registry.get(&function) {
            None => {
                tracing::warn!(target: "liveview", connection = conn.id, function = %function, "unknown function");
                let _ = conn.outbox.push(Frame::from(protocol::error_frame(
                    errors::UNKNOWN_FUNCTION,
                    reference,
                )));
                Outcome::Unknown
            }
            Some(entry) => {
                let mut allowed = true;
                for middleware in &shared.middleware {
                    if !middleware.allows(&consumer, &content, &function).await {
                        allowed = false;
                        break;
                    }
                }
                if allowed {
                    let outcome = run(shared, entry.handler, &consumer, content).await;
                    if outcome != Outcome::Ok {
                        let _ = conn.outbox.push(Frame::from(protocol::error_frame(
                            errors::INTERNAL,
                            reference,
                        )));
                    }
                    outcome
                } else {
                    Outcome::Refused
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    span.record("outcome", outcome.as_str());

    if let Some(call) = &call_ref {
        call.finish();
    }
    if let Some(reference) = reference {
        let _ = conn
            .outbox
            .push(Frame::from(protocol::done_frame(reference)));
    }
    shared.metrics.call(&function, outcome, started.elapsed());
    tracing::debug!(
        target: "liveview",
        connection = conn.id,
        room = %conn.room,
        function = %function,
        outcome = outcome.as_str(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "call"
    );
    outcome
}

/// Answer a call refused by a rate limit: the fixed error, with the call's
/// `ref` and `done` when it has one, so the page's loading state ends.
pub(crate) fn refuse_rate_limited(conn: &Connection, text: &str) {
    let reference = protocol::parse(text, &conn.room)
        .ok()
        .and_then(|call| call.reference);
    let _ = conn.outbox.push(Frame::from(protocol::error_frame(
        errors::RATE_LIMITED,
        reference,
    )));
    if let Some(reference) = reference {
        let _ = conn
            .outbox
            .push(Frame::from(protocol::done_frame(reference)));
    }
}

/// Run a handler with the timeout, catching panics and errors; the detail
/// goes to the log only.
async fn run(
    shared: &Shared,
    handler: Handler,
    consumer: &Consumer,
    content: crate::Content,
) -> Outcome {
    let function = content.function.clone();
    let timeout = shared.config.handler_timeout;
    let result = match handler {
        Handler::Async(f) => {
            let fut = AssertUnwindSafe(f(consumer, content)).catch_unwind();
            match tokio::time::timeout(timeout, fut).await {
                Err(_) => Err(Outcome::TimedOut),
                Ok(Err(panic)) => {
                    log_panic(&function, consumer.id(), &panic);
                    Err(Outcome::Panicked)
                }
                Ok(Ok(result)) => Ok(result),
            }
        }
        Handler::Blocking(f) => {
            let owned = consumer.clone();
            let task = tokio::task::spawn_blocking(move || f(&owned, content));
            match tokio::time::timeout(timeout, task).await {
                Err(_) => Err(Outcome::TimedOut),
                Ok(Err(join)) => {
                    match join.try_into_panic() {
                        Ok(panic) => log_panic(&function, consumer.id(), &panic),
                        Err(join) => {
                            tracing::error!(target: "liveview", function = %function, error = %join, "handler task failed")
                        }
                    }
                    Err(Outcome::Panicked)
                }
                Ok(Ok(result)) => Ok(result),
            }
        }
    };
    match result {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(err)) => {
            tracing::error!(target: "liveview", connection = consumer.id(), function = %function, error = %err, "handler failed");
            Outcome::Failed
        }
        Err(Outcome::TimedOut) => {
            tracing::error!(target: "liveview", connection = consumer.id(), function = %function, timeout_ms = timeout.as_millis() as u64, "handler timed out");
            Outcome::TimedOut
        }
        Err(outcome) => outcome,
    }
}

fn log_panic(function: &str, connection: u64, panic: &Box<dyn std::any::Any + Send>) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    tracing::error!(target: "liveview", connection, function, panic = %message, "handler panicked");
}
