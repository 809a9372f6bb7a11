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
use std::time::{Duration, Instant};

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
    if let Some(user) = &visitor.user {
        demo.live_sessions().sign_out(&user.id);
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

/// The live connections of each signed-in session, and the sessions that
/// were signed out, so that signing out in one tab ends the session in
/// every tab: their connections close with 4401 and the pages show their
/// "sign in again" prompt instead of delete buttons that would fail.
///
/// A session is the user id a sign-in makes (a fresh one each time). A
/// connection is known once it has made a call (the alerts page makes one
/// when it loads). Sessions signed out are remembered until the cookie
/// would have expired anyway, so a copy of the cookie is refused too.
///
/// ```
/// use std::time::Duration;
/// use demo::pages::login::LiveSessions;
///
/// let sessions = LiveSessions::new(Duration::from_secs(60));
/// assert!(!sessions.is_signed_out("u1"));
/// sessions.sign_out("u1");
/// assert!(sessions.is_signed_out("u1"));
/// ```
#[derive(Debug)]
pub struct LiveSessions {
    state: Mutex<SessionState>,
    keep: Duration,
}

#[derive(Debug, Default)]
struct SessionState {
    open: HashMap<String, Vec<Consumer>>,
    signed_out: HashMap<String, Instant>,
}

impl LiveSessions {
    /// Remember signed-out sessions for `keep` (the sessions' lifetime).
    pub fn new(keep: Duration) -> Self {
        Self {
            state: Mutex::default(),
            keep,
        }
    }

    /// Note the connection of a call; `false` when its session was signed
    /// out, after closing the connection with 4401.
    pub fn track(&self, consumer: &Consumer) -> bool {
        let Some(user) = consumer.user() else {
            return true;
        };
        let mut state = self.lock();
        if state.signed_out.contains_key(&user.id) {
            drop(state);
            consumer.expire();
            return false;
        }
        let open = state.open.entry(user.id.clone()).or_default();
        open.retain(|c| !c.is_closed());
        if !open.iter().any(|c| c.id() == consumer.id()) {
            open.push(consumer.clone());
        }
        true
    }

    /// End the session `user_id`: every connection of it closes with 4401.
    pub fn sign_out(&self, user_id: &str) {
        let now = Instant::now();
        let mut state = self.lock();
        let keep = self.keep;
        state
            .signed_out
            .retain(|_, at| now.duration_since(*at) < keep);
        state.signed_out.insert(user_id.to_owned(), now);
        let open = state.open.remove(user_id).unwrap_or_default();
        state.open.retain(|_, conns| {
            conns.retain(|c| !c.is_closed());
            !conns.is_empty()
        });
        drop(state);
        for consumer in open {
            consumer.expire();
        }
    }

    /// Whether `user_id` was signed out.
    pub fn is_signed_out(&self, user_id: &str) -> bool {
        self.lock().signed_out.contains_key(user_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
