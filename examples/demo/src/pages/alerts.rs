//! The alert system.
//!
//! - A form (type, message, optional auto-dismiss) validated while the
//!   user types (`alerts_validate`, debounced in the page), published with
//!   `alerts_create`: stored in SQLite, then appended on every alerts page.
//! - Each alert has a delete button (`alerts_delete`, with
//!   `data-data-alert-id`) that removes it for everyone. Only signed-in
//!   visitors see it, and only their calls get through: the app's
//!   `require_user` middleware refuses the others, and the handler checks
//!   again.
//! - Alerts with auto-dismiss are removed from the database and from every
//!   page when their time is up, by a background task.
//! - Past alerts load ten at a time as the visitor scrolls
//!   (`alerts_load_more`, from a `data-liveview-intersect-appear` trigger).
//! - The list is rendered again by `alerts_refresh`, the list's
//!   `data-liveview-init` function: when the page connects (so an alert
//!   published between the page's render and its connection is not
//!   missed) and when the client resyncs after a disconnect whose updates
//!   the server could no longer replay.
//!
//! Every alerts page is in the room [`ROOM`], so updates reach exactly the
//! pages that show alerts. Newest alerts come first: those loaded with the
//! page are in `#alerts-list` (older ones appended below them), and those
//! published since are appended to `#alerts-live`, shown above it in
//! reverse order.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use liveview::{Broadcaster, Consumer, Content, Fields, LiveView, Update, html, liveview_handler};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::Notify;

use super::{FlashKind, Visitor, flash};
use crate::db::{Alert, AlertKind, MAX_DISMISS_SECONDS, MAX_MESSAGE_CHARS, NewAlert, now_ms};
use crate::{Demo, SIGN_IN_TO_DELETE};

/// The room of every alerts page.
pub const ROOM: &str = "alerts";

/// The name of the handler that deletes an alert, for signed-in visitors
/// only.
pub const DELETE: &str = "alerts_delete";

/// How many alerts the page shows at first, and each scroll loads.
pub const PAGE_SIZE: u32 = 10;

/// The auto-dismiss choices of the form: seconds and label.
const DISMISS_CHOICES: &[(&str, &str)] = &[
    ("", "Never"),
    ("5", "After 5 seconds"),
    ("10", "After 10 seconds"),
    ("30", "After 30 seconds"),
    ("60", "After 1 minute"),
    ("300", "After 5 minutes"),
];

/// `GET /alerts/`.
pub fn routes() -> Router<Demo> {
    Router::new().route("/alerts/", get(page))
}

async fn page(State(demo): State<Demo>, visitor: Visitor, live: LiveView) -> Response {
    let now = now_ms();
    let position = live.position(ROOM).await;
    let alerts = match demo.db().alerts(None, PAGE_SIZE + 1, now).await {
        Ok(alerts) => alerts,
        Err(err) => return super::unavailable("alerts", &err),
    };
    let (alerts, more) = split_page(alerts, 2);
    super::page(
        &demo,
        &visitor,
        "alerts/page.html",
        context! {
            nav => "alerts",
            room => ROOM,
            position,
            alerts => views(&alerts, now),
            can_delete => visitor.user.is_some(),
            more => Serde(more),
            ..form_context()
        },
    )
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// What is wrong with each field of the form, if anything.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct FieldErrors {
    /// The alert's type.
    pub kind: Option<String>,
    /// The message.
    pub message: Option<String>,
    /// The auto-dismiss delay.
    pub dismiss_after: Option<String>,
}

/// Check the whole form: the alert to store, or what to fix.
///
/// ```
/// use liveview::Content;
/// use serde_json::json;
///
/// let form = Content::new("alerts_create")
///     .with_form(json!({"kind": "warning", "message": "  Disk 90% full ", "dismissAfter": "30"}))
///     .form;
/// let alert = demo::pages::alerts::validate(&form).unwrap();
/// assert_eq!(alert.message, "Disk 90% full");
/// assert_eq!(alert.dismiss_after, Some(std::time::Duration::from_secs(30)));
///
/// let form = Content::new("alerts_create").with_form(json!({"kind": "critical", "message": ""})).form;
/// let errors = demo::pages::alerts::validate(&form).unwrap_err();
/// assert!(errors.kind.is_some() && errors.message.is_some() && errors.dismiss_after.is_none());
/// ```
pub fn validate(form: &Fields) -> Result<NewAlert, FieldErrors> {
    let kind = check_kind(form.get("kind"));
    let message = check_message(form.get("message"));
    let dismiss_after = check_dismiss_after(form.get("dismiss_after"));
    match (kind, message, dismiss_after) {
        (Ok(kind), Ok(message), Ok(dismiss_after)) => Ok(NewAlert {
            kind,
            message,
            dismiss_after,
        }),
        (kind, message, dismiss_after) => Err(FieldErrors {
            kind: kind.err(),
            message: message.err(),
            dismiss_after: dismiss_after.err(),
        }),
    }
}

/// The type: one of `info`, `warning`, `error`.
pub fn check_kind(value: Option<&Json>) -> Result<AlertKind, String> {
    value
        .and_then(Json::as_str)
        .and_then(|kind| kind.parse().ok())
        .ok_or_else(|| "Choose a type: info, warning or error.".to_owned())
}

/// The message: 1 to 500 characters once the spaces around it are removed.
pub fn check_message(value: Option<&Json>) -> Result<String, String> {
    let message = value.and_then(Json::as_str).unwrap_or("").trim();
    let chars = message.chars().count();
    if chars == 0 {
        Err("Write a message.".to_owned())
    } else if chars > MAX_MESSAGE_CHARS {
        Err(format!(
            "The message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}."
        ))
    } else {
        Ok(message.to_owned())
    }
}

/// The auto-dismiss delay: nothing (never), or 1 to 3600 seconds.
pub fn check_dismiss_after(value: Option<&Json>) -> Result<Option<Duration>, String> {
    let seconds = match value {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Json::String(s)) => s.trim().parse::<u32>().ok(),
        Some(Json::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(_) => None,
    };
    match seconds {
        Some(s) if (1..=MAX_DISMISS_SECONDS).contains(&s) => {
            Ok(Some(Duration::from_secs(u64::from(s))))
        }
        _ => Err(format!(
            "Auto-dismiss must be a number of seconds from 1 to {MAX_DISMISS_SECONDS}."
        )),
    }
}

fn error_update(field: &str, error: Option<&str>) -> Update {
    let html = error.map(|e| html!("{e}")).unwrap_or_default();
    Update::new(format!("#error-{}", field.replace('_', "-"))).html(html)
}

fn counter_update(form: &Fields) -> Update {
    let chars = form.str("message").unwrap_or("").trim().chars().count();
    let html = if chars > MAX_MESSAGE_CHARS {
        html!(r#"<strong class="over">{chars}</strong> / {MAX_MESSAGE_CHARS}"#)
    } else {
        html!("{chars} / {MAX_MESSAGE_CHARS}")
    };
    Update::new("#message-count").html(html)
}

fn send_errors(consumer: &Consumer, errors: &FieldErrors) -> liveview::Result {
    consumer.send(error_update("kind", errors.kind.as_deref()))?;
    consumer.send(error_update("message", errors.message.as_deref()))?;
    consumer.send(error_update(
        "dismiss_after",
        errors.dismiss_after.as_deref(),
    ))?;
    Ok(())
}

/// Check the field named by `data-data-field` while the user types, and
/// show its error (or clear it) under the field.
#[liveview_handler("alerts_validate")]
pub async fn validate_field(consumer: &Consumer, content: Content) -> liveview::Result {
    let form = &content.form;
    let field = content.data.str("field").unwrap_or("");
    let error = match field {
        "kind" => check_kind(form.get("kind")).err(),
        "message" => {
            consumer.send(counter_update(form))?;
            check_message(form.get("message")).err()
        }
        "dismiss_after" => check_dismiss_after(form.get("dismiss_after")).err(),
        _ => {
            tracing::debug!(field, "alerts_validate: no such field");
            return Ok(());
        }
    };
    consumer.send(error_update(field, error.as_deref()))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Publishing and deleting
// ---------------------------------------------------------------------------

/// Publish the form's alert: store it and append it on every alerts page;
/// or show what to fix, keeping what the user typed.
#[liveview_handler("alerts_create")]
pub async fn create(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let new = match validate(&content.form) {
        Ok(new) => new,
        Err(errors) => {
            send_errors(consumer, &errors)?;
            consumer.send(counter_update(&content.form))?;
            consumer.send(flash(
                demo,
                FlashKind::Error,
                "The alert was not published: please fix the fields marked in red.",
            )?)?;
            return Ok(());
        }
    };
    let now = now_ms();
    let alert = match demo.db().insert_alert(&new, now).await {
        Ok(alert) => alert,
        Err(err) => {
            tracing::error!(error = %err, "storing an alert failed");
            consumer.send(flash(
                demo,
                FlashKind::Error,
                "The alert could not be saved. Your text is still in the form: please try again.",
            )?)?;
            return Ok(());
        }
    };
    if alert.dismiss_at.is_some() {
        demo.dismissals().wake();
    }
    // One rendering for every page of the room: with the delete button,
    // which the stylesheet hides on the pages of anonymous visitors.
    let html = render_alerts(demo, std::slice::from_ref(&alert), now, true)?;
    let form = demo
        .templates()
        .render("alerts/form.html", form_context())?;
    consumer.send(Update::new("#alert-form").html(form))?;
    consumer.send(flash(demo, FlashKind::Success, "Alert published.")?)?;
    if let Err(err) = consumer
        .send_to_room(ROOM, Update::new("#alerts-live").html(html).append())
        .await
    {
        // Pages of this process have it; those of other processes will
        // see it when they reload.
        tracing::warn!(error = %err, "an alert reached this process only");
    }
    Ok(())
}

/// Delete the alert of `data-data-alert-id` for everyone: for signed-in
/// visitors only.
#[liveview_handler("alerts_delete")]
pub async fn delete(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    // The app's middleware refuses anonymous calls before they get here;
    // this holds even in an app built without it.
    if consumer.user().is_none() {
        consumer.send(flash(demo, FlashKind::Error, SIGN_IN_TO_DELETE)?)?;
        return Ok(());
    }
    let Some(id) = content.data.i64("alert_id") else {
        consumer.send(flash(demo, FlashKind::Error, "That alert does not exist.")?)?;
        return Ok(());
    };
    let remove = Update::new(format!("#alert-{id}")).remove();
    let deleted = match demo.db().delete_alert(id).await {
        Ok(deleted) => deleted,
        Err(err) => {
            tracing::error!(error = %err, id, "deleting an alert failed");
            consumer.send(flash(
                demo,
                FlashKind::Error,
                "The alert could not be deleted. Please try again.",
            )?)?;
            return Ok(());
        }
    };
    if deleted {
        if let Err(err) = consumer.send_to_room(ROOM, remove).await {
            tracing::warn!(error = %err, "a deletion reached this process only");
        }
    } else {
        // Someone else deleted it first, or it never existed: take it off
        // this page, if it is there, and say so.
        consumer.send(remove)?;
        consumer.send(flash(
            demo,
            FlashKind::Error,
            "That alert does not exist any more.",
        )?)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Infinite scroll
// ---------------------------------------------------------------------------

/// Where the next page of past alerts starts: the trigger's
/// `data-data-page` and `data-data-before` (the oldest alert shown).
/// Pages are found by id rather than by offset, so alerts published or
/// deleted meanwhile do not shift them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NextPage {
    /// The page number (2 for the first scroll).
    pub page: i64,
    /// Older alerts than this id.
    pub before: i64,
}

/// Append the next ten past alerts to the list and move the trigger below
/// them, or replace it with the end of the list.
#[liveview_handler("alerts_load_more")]
pub async fn load_more(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let (Some(page), Some(before)) = (content.data.i64("page"), content.data.i64("before")) else {
        consumer.send(Update::new("#alerts-more").html(
            r#"<p class="list-end">Older alerts could not be loaded. Reload the page to try again.</p>"#,
        ))?;
        return Ok(());
    };
    let now = now_ms();
    let alerts = demo.db().alerts(Some(before), PAGE_SIZE + 1, now).await?;
    let (alerts, more) = split_page(alerts, page.saturating_add(1));
    if !alerts.is_empty() {
        let html = render_alerts(demo, &alerts, now, consumer.user().is_some())?;
        consumer.send(Update::new("#alerts-list").html(html).append())?;
    }
    let trigger = demo.templates().render(
        "alerts/more.html",
        context! { more => Serde(more), shown => true },
    )?;
    consumer.send(Update::new("#alerts-more").html(trigger))?;
    Ok(())
}

/// Render the list as the database has it: the newest page, with the
/// trigger for older ones, and nothing in the part for alerts published
/// since (they are in the page now). The list's `data-liveview-init`.
#[liveview_handler("alerts_refresh")]
pub async fn refresh(consumer: &Consumer, _content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let now = now_ms();
    let alerts = demo.db().alerts(None, PAGE_SIZE + 1, now).await?;
    let (alerts, more) = split_page(alerts, 2);
    let list = render_alerts(demo, &alerts, now, consumer.user().is_some())?;
    let trigger = demo.templates().render(
        "alerts/more.html",
        context! { more => Serde(more), shown => false },
    )?;
    consumer.send(Update::new("#alerts-live").html(""))?;
    consumer.send(Update::new("#alerts-list").html(list))?;
    consumer.send(Update::new("#alerts-more").html(trigger))?;
    Ok(())
}

/// Keep the first [`PAGE_SIZE`] of `alerts` (fetched one more than a page)
/// and say where the page after them starts, if there is one.
fn split_page(mut alerts: Vec<Alert>, next_page: i64) -> (Vec<Alert>, Option<NextPage>) {
    let limit = PAGE_SIZE as usize;
    let more = alerts.len() > limit;
    alerts.truncate(limit);
    let next = match alerts.last() {
        Some(last) if more => Some(NextPage {
            page: next_page,
            before: last.id,
        }),
        _ => None,
    };
    (alerts, next)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// An alert as the templates show it.
#[derive(Debug, Serialize)]
struct AlertView<'a> {
    id: i64,
    kind: &'static str,
    message: &'a str,
    time: String,
    datetime: String,
    countdown: Option<Countdown>,
}

/// The auto-dismiss bar: how long is left, and how full it starts.
#[derive(Debug, Serialize)]
struct Countdown {
    seconds: i64,
    remaining_ms: i64,
    percent: i64,
}

fn views(alerts: &[Alert], now: i64) -> Value {
    let views: Vec<AlertView<'_>> = alerts
        .iter()
        .map(|alert| {
            let (time, datetime) = format_time(alert.created_at);
            AlertView {
                id: alert.id,
                kind: alert.kind.as_str(),
                message: &alert.message,
                time,
                datetime,
                countdown: alert.dismiss_at.map(|at| {
                    let total = (at - alert.created_at).max(1);
                    let remaining = (at - now).clamp(0, total);
                    Countdown {
                        seconds: (total + 999) / 1000,
                        remaining_ms: remaining,
                        percent: remaining * 100 / total,
                    }
                }),
            }
        })
        .collect();
    Value::from(Serde(&views))
}

/// The alerts' HTML, with delete buttons when `can_delete`.
fn render_alerts(
    demo: &Demo,
    alerts: &[Alert],
    now: i64,
    can_delete: bool,
) -> Result<String, minijinja::Error> {
    demo.templates().render(
        "alerts/list.html",
        context! { alerts => views(alerts, now), can_delete },
    )
}

/// What the form template needs besides errors.
fn form_context() -> Value {
    let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
    context! {
        kinds => Serde(kinds),
        dismiss_choices => Serde(DISMISS_CHOICES),
        max_message => MAX_MESSAGE_CHARS,
    }
}

/// `("25 Nov 14:03:07 UTC", "2026-11-25T14:03:07Z")` for a Unix time in
/// milliseconds.
fn format_time(ms: i64) -> (String, String) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    // Days to a civil date, proleptic Gregorian (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    (
        format!("{day} {name} {h:02}:{m:02}:{s:02} UTC"),
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

// ---------------------------------------------------------------------------
// Auto-dismissal
// ---------------------------------------------------------------------------

/// Wakes the dismissal task when an alert with auto-dismiss is published,
/// so it can sleep until the earliest one is due.
#[derive(Debug, Default)]
pub(crate) struct Dismissals {
    wake: Arc<Notify>,
}

impl Dismissals {
    pub(crate) fn wake(&self) {
        // A permit is kept if the task is busy, so no wake-up is lost.
        self.wake.notify_one();
    }
}

/// The longest the task sleeps without looking at the database.
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// Start the task that removes alerts whose time is up: from the database,
/// then from every alerts page. The database says what is due, so alerts
/// published before a restart are dismissed too. The task ends when the
/// demo is dropped.
pub(crate) fn spawn_dismisser(demo: &Demo, broadcaster: Broadcaster) {
    let weak = demo.downgrade();
    let wake = demo.dismissals().wake.clone();
    tokio::spawn(async move {
        loop {
            // Hold the demo only while working, not while sleeping.
            let wait = {
                let Some(demo) = Demo::upgrade(&weak) else {
                    return;
                };
                dismiss_due(&demo, &broadcaster).await
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
            }
        }
    });
}

/// Dismiss what is due; how long until the next alert is.
async fn dismiss_due(demo: &Demo, broadcaster: &Broadcaster) -> Duration {
    let now = now_ms();
    let ids = match demo.db().delete_due_alerts(now).await {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!(error = %err, "dismissing alerts failed; retrying");
            return Duration::from_secs(1);
        }
    };
    for id in ids {
        let remove = Update::new(format!("#alert-{id}")).remove();
        if let Err(err) = broadcaster.send_to_room(ROOM, remove).await {
            tracing::warn!(error = %err, id, "a dismissal reached this process only");
        }
    }
    match demo.db().next_dismissal().await {
        Ok(Some(at)) => {
            Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(IDLE_CHECK)
        }
        Ok(None) => IDLE_CHECK,
        Err(err) => {
            tracing::warn!(error = %err, "reading the next dismissal failed; retrying");
            Duration::from_secs(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(
            format_time(0),
            (
                "1 Jan 00:00:00 UTC".to_owned(),
                "1970-01-01T00:00:00Z".to_owned()
            )
        );
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(format_time(1_709_251_199_000).1, "2024-02-29T23:59:59Z");
        assert_eq!(format_time(1_764_079_387_000).0, "25 Nov 14:03:07 UTC");
    }

    #[test]
    fn dismiss_after_accepts_empty_and_range_only() {
        assert_eq!(check_dismiss_after(None), Ok(None));
        assert_eq!(check_dismiss_after(Some(&json!(""))), Ok(None));
        assert_eq!(
            check_dismiss_after(Some(&json!("5"))),
            Ok(Some(Duration::from_secs(5)))
        );
        assert_eq!(
            check_dismiss_after(Some(&json!(3600))),
            Ok(Some(Duration::from_secs(3600)))
        );
        for bad in [
            json!("0"),
            json!("-5"),
            json!("3601"),
            json!("soon"),
            json!(1.5),
            json!([5]),
        ] {
            assert!(check_dismiss_after(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_are_trimmed_and_limited_in_characters() {
        assert_eq!(check_message(Some(&json!("  hi \n"))), Ok("hi".to_owned()));
        assert!(check_message(Some(&json!("   "))).is_err());
        assert!(check_message(Some(&json!(42))).is_err());
        assert!(check_message(Some(&json!("é".repeat(500)))).is_ok());
        let err = check_message(Some(&json!("x".repeat(10_000)))).unwrap_err();
        assert_eq!(
            err,
            "The message is 10000 characters long; the limit is 500."
        );
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let alert = |id| Alert {
            id,
            kind: AlertKind::Info,
            message: String::new(),
            created_at: 0,
            dismiss_at: None,
        };
        let (page, next) = split_page((1..=11).rev().map(alert).collect(), 2);
        assert_eq!(page.len(), 10);
        assert_eq!(next, Some(NextPage { page: 2, before: 2 }));
        let (page, next) = split_page((1..=10).rev().map(alert).collect(), 2);
        assert_eq!(page.len(), 10);
        assert_eq!(next, None);
    }
}
