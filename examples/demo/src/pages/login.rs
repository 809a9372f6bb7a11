//! Signing in and out.
//!
//! The demo has no accounts and no passwords: a visitor picks a name on
//! `/login/` and gets a session cookie signed with the app's secret
//! ([`SessionAuth`](liveview::session::SessionAuth)). The LiveView
//! connection reads the same cookie when it opens (the session is the
//! app's authenticator), so handlers see the user in `consumer.user()`:
//! signed-in visitors may delete alerts, and are named among those
//! watching.
//!
//! Both forms are plain HTTP posts, so they are guarded against cross-site
//! requests: the cookie is `SameSite=Lax` (another site's page cannot send
//! it along with a post), and a post is accepted only when its `Origin` is
//! this host, so another site can neither sign a visitor in under a name
//! of its choosing nor sign them out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use liveview::{Consumer, User};
use minijinja::context;
use serde::Deserialize;

use super::Visitor;
use crate::Demo;
use crate::db::{Db, DbError, now_ms};

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 40;

/// `GET /login/`, `POST /login/` and `POST /logout/`.
pub fn routes() -> Router<Demo> {
    Router::new()
        .route("/login/", get(login_page).post(login))
        .route("/logout/", post(logout))
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(default)]
    next: String,
}

async fn login_page(
    State(demo): State<Demo>,
    visitor: Visitor,
    Query(params): Query<Params>,
) -> Response {
    render(
        &demo,
        &visitor,
        StatusCode::OK,
        local_path(&params.next),
        "",
        None,
    )
}

/// Sign in with the form's `name`, then go back to its `next` page.
async fn login(
    State(demo): State<Demo>,
    visitor: Visitor,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let form = Form::parse(&body);
    let next = local_path(&form.next);
    match check_name(&form.name) {
        Ok(name) => {
            let user = User::new(uuid::Uuid::new_v4().simple().to_string(), name);
            tracing::info!(user = %user.name, "signed in");
            let cookie = demo.sessions().set_cookie(&user);
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        Err(error) => render(
            &demo,
            &visitor,
            StatusCode::BAD_REQUEST,
            next,
            &form.name,
            Some(&error),
        ),
    }
}

/// Sign out, then go back to the form's `next` page.
async fn logout(
    State(demo): State<Demo>,
    visitor: Visitor,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    if let Some(user) = &visitor.user
        && let Err(err) = demo.live_sessions().sign_out(&user.id).await
    {
        // The cookie stays: the visitor is still signed in, and may try
        // again.
        return super::unavailable("signing out", &err);
    }
    let form = Form::parse(&body);
    let cookie = demo.sessions().clear_cookie();
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(local_path(&form.next)),
    )
        .into_response()
}

fn render(
    demo: &Demo,
    visitor: &Visitor,
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<&str>,
) -> Response {
    super::page_with_status(
        demo,
        visitor,
        status,
        "login.html",
        context! { nav => "login", next, name, error, max_name => MAX_NAME_CHARS },
    )
}

fn cross_site() -> Response {
    super::plain(
        StatusCode::FORBIDDEN,
        "This form was sent from another site, so it was refused.",
    )
}

/// The fields of the sign-in and sign-out forms.
#[derive(Debug, Default)]
struct Form {
    name: String,
    next: String,
}

impl Form {
    fn parse(body: &str) -> Self {
        let mut form = Self::default();
        for (key, value) in form_urlencoded::parse(body.as_bytes()) {
            match &*key {
                "name" => form.name = value.into_owned(),
                "next" => form.next = value.into_owned(),
                _ => {}
            }
        }
        form
    }
}

/// A name to sign in with: 1 to [`MAX_NAME_CHARS`] characters once the
/// spaces around it are removed, without control characters.
///
/// ```
/// use demo::pages::login::check_name;
///
/// assert_eq!(check_name("  Ada Lovelace "), Ok("Ada Lovelace".to_owned()));
/// assert!(check_name("   ").is_err());
/// assert!(check_name("Ada\u{0}").is_err());
/// assert!(check_name(&"x".repeat(41)).is_err());
/// ```
pub fn check_name(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Err("Write a name to sign in with.".to_owned());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("A name has at most {MAX_NAME_CHARS} characters."));
    }
    if name.chars().any(char::is_control) {
        return Err("A name cannot contain control characters.".to_owned());
    }
    Ok(name.to_owned())
}

/// `next` when it is a path of this site, `/` otherwise, so the forms
/// cannot send a visitor to another site (`//evil.example`,
/// `https://...`) or put anything but a URL in the `Location` header.
///
/// ```
/// use demo::pages::login::local_path;
///
/// assert_eq!(local_path("/search/?q=walnut+lamp"), "/search/?q=walnut+lamp");
/// assert_eq!(local_path("//evil.example/"), "/");
/// assert_eq!(local_path("/\\evil.example/"), "/");
/// assert_eq!(local_path("https://evil.example/"), "/");
/// assert_eq!(local_path("/a\r\nSet-Cookie: x=1"), "/");
/// assert_eq!(local_path(""), "/");
/// ```
pub fn local_path(next: &str) -> &str {
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(u8::is_ascii_graphic);
    if local { next } else { "/" }
}

/// Whether a form post comes from a page of this site: its `Origin`
/// header is `http(s)://` and this request's `Host`. Browsers send
/// `Origin` with every post; a post without one, or with `Origin: null`,
/// is refused.
///
/// ```
/// use axum::http::HeaderMap;
/// use demo::pages::login::same_origin;
///
/// let headers = |origin: &str| {
///     let mut h = HeaderMap::new();
///     h.insert("host", "demo.example:8000".parse().unwrap());
///     h.insert("origin", origin.parse().unwrap());
///     h
/// };
/// assert!(same_origin(&headers("http://demo.example:8000")));
/// assert!(same_origin(&headers("https://DEMO.example:8000")));
/// assert!(!same_origin(&headers("http://evil.example")));
/// assert!(!same_origin(&headers("http://demo.example:8001")));
/// assert!(!same_origin(&headers("null")));
/// ```
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(host), Some(origin)) = (text(header::HOST), text(header::ORIGIN)) else {
        return false;
    };
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let web = matches!(origin.scheme_str(), Some("http" | "https"));
    web && origin
        .authority()
        .is_some_and(|authority| authority.as_str().eq_ignore_ascii_case(host))
}

/// Signed-out sessions, which every process sharing the database refuses,
/// and the live connections of each signed-in session on this process, so
/// that signing out in one tab ends the session in every tab: their
/// connections close with 4401 and the pages show their "sign in again"
/// prompt instead of delete buttons that would fail.
///
/// A session is the user id a sign-in makes (a fresh one each time). It is
/// remembered as signed out in the database until the cookie would have
/// expired anyway, so a copy of the cookie is refused on every process. A
/// connection is known once it has made a call (the alerts page makes one
/// when it loads); every call of a signed-in connection looks its session
/// up, and [`close_signed_out`](Self::close_signed_out), which the demo runs
/// every [`Config::sign_out_check`](crate::Config::sign_out_check), closes
/// the connections of this process whose session another process signed
/// out.
///
/// ```
/// use std::time::Duration;
/// use demo::db::Db;
/// use demo::pages::login::LiveSessions;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), demo::db::DbError> {
/// # let dir = std::env::temp_dir().join(format!("demo-doc-{}", uuid::Uuid::new_v4().simple()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let db = Db::open(&dir.join("demo.sqlite3")).await?;
/// let here = LiveSessions::open(db.clone(), Duration::from_secs(60)).await?;
/// let elsewhere = LiveSessions::open(db, Duration::from_secs(60)).await?;
/// assert!(!elsewhere.is_signed_out("u1").await?);
/// here.sign_out("u1").await?;
/// assert!(elsewhere.is_signed_out("u1").await?);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LiveSessions {
    db: Db,
    /// The connections of each session on this process.
    open: Mutex<HashMap<String, Vec<Consumer>>>,
    /// The last sign-out whose connections this process has closed.
    seen: tokio::sync::Mutex<i64>,
    keep: Duration,
}

impl LiveSessions {
    /// Signed-out sessions in `db`, remembered for `keep` (the sessions'
    /// lifetime); sign-outs from before this call concern no connection of
    /// this process.
    pub async fn open(db: Db, keep: Duration) -> Result<Self, DbError> {
        let seen = db.last_sign_out().await?;
        Ok(Self {
            db,
            open: Mutex::default(),
            seen: tokio::sync::Mutex::new(seen),
            keep,
        })
    }

    /// Note the connection of a call; `false` when its session was signed
    /// out (after closing the connection with 4401), or cannot be looked up.
    pub async fn track(&self, consumer: &Consumer) -> bool {
        let Some(user) = consumer.user() else {
            return true;
        };
        match self.is_signed_out(&user.id).await {
            Ok(false) => {}
            Ok(true) => {
                consumer.expire();
                return false;
            }
            Err(err) => {
                tracing::warn!(error = %err, "a session could not be looked up; the call is refused");
                return false;
            }
        }
        let mut open = self.lock();
        let conns = open.entry(user.id.clone()).or_default();
        conns.retain(|c| !c.is_closed());
        if !conns.iter().any(|c| c.id() == consumer.id()) {
            conns.push(consumer.clone());
        }
        true
    }

    /// End the session `user_id` on every process; its connections on this
    /// one close with 4401 at once.
    pub async fn sign_out(&self, user_id: &str) -> Result<(), DbError> {
        let now = now_ms();
        let keep = i64::try_from(self.keep.as_millis()).unwrap_or(i64::MAX);
        self.db
            .sign_out(user_id, now.saturating_add(keep), now)
            .await?;
        self.close(user_id);
        Ok(())
    }

    /// Close this process's connections of the sessions signed out since the
    /// last time (on any process).
    pub async fn close_signed_out(&self) -> Result<(), DbError> {
        let mut seen = self.seen.lock().await;
        for (id, session) in self.db.signed_out_since(*seen).await? {
            self.close(&session);
            *seen = id;
        }
        Ok(())
    }

    /// Whether `user_id` was signed out, on any process.
    pub async fn is_signed_out(&self, user_id: &str) -> Result<bool, DbError> {
        self.db.is_signed_out(user_id, now_ms()).await
    }

    fn close(&self, user_id: &str) {
        let mut open = self.lock();
        let ended = open.remove(user_id).unwrap_or_default();
        open.retain(|_, conns| {
            conns.retain(|c| !c.is_closed());
            !conns.is_empty()
        });
        drop(open);
        for consumer in ended {
            consumer.expire();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Consumer>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}
