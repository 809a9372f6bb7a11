//! Helpers for page templates: a fresh room id, the script tag, and the
//! page's position in its groups.

use std::fmt;

use crate::layer::GroupPosition;

/// Where a page stood in its groups when it was rendered, from
/// [`LiveView::position`](crate::LiveView::position): rendered into the
/// page's script tag (`data-liveview-resume`), it lets the client's first
/// connection resume from there. Displays as the `resume` parameter's
/// syntax, `GROUP:SEQ:EPOCH,...` (`GROUP:SEQ` for a group not numbered
/// yet), and serialises as that string, so it goes into a template context
/// as it is.
///
/// ```
/// let position = liveview::template::Position::default();
/// assert!(position.is_empty());
/// assert_eq!(position.to_string(), "");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    groups: Vec<GroupPosition>,
}

impl Position {
    pub(crate) fn new(groups: Vec<GroupPosition>) -> Self {
        Self { groups }
    }

    /// Whether there is nothing to resume from (replay off, or the log
    /// could not be read).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Each group's position.
    pub fn groups(&self) -> &[GroupPosition] {
        &self.groups
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, position) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}", position.group, position.seq)?;
            if let Some(epoch) = &position.epoch {
                write!(f, ":{epoch}")?;
            }
        }
        Ok(())
    }
}

#[cfg(feature = "minijinja")]
impl From<Position> for minijinja::Value {
    fn from(position: Position) -> Self {
        Self::from(position.to_string())
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A new random room id (a UUID without dashes), Django LiveView's
/// `{% liveview_room_uuid %}`: unguessable, so nobody can join another
/// page's room by trying ids.
///
/// ```
/// let room = liveview::template::room_uuid();
/// assert_eq!(room.len(), 32);
/// assert!(liveview::is_valid_room(&room));
/// ```
pub fn room_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `<script>` tag that loads the client, with a cache-busting hash.
///
/// ```
/// let tag = liveview::template::script_tag();
/// assert!(tag.starts_with(r#"<script src="/static/liveview/liveview.min.js?v="#));
/// assert!(tag.ends_with(r#"" defer></script>"#));
/// ```
pub fn script_tag() -> String {
    script_tag_resuming("")
}

/// The `<script>` tag that loads the client, carrying the page's
/// `position` (`data-liveview-resume`): the client's first connection
/// resumes from there.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = liveview::LiveView::builder().build().unwrap();
/// let tag = liveview::template::script_tag_at(&live.position("lobby").await);
/// assert!(tag.starts_with(r#"<script src="/static/liveview/liveview.min.js?v="#));
/// assert!(tag.contains(r#" data-liveview-resume="room_lobby:0:"#));
/// # }
/// ```
pub fn script_tag_at(position: &Position) -> String {
    script_tag_resuming(&position.to_string())
}

/// The `<script>` tag that loads the client, with the page's `position`
/// when given and a Content-Security-Policy `nonce` when given. Under a
/// strict policy (`script-src 'nonce-…'`, no `unsafe-inline`, no
/// `unsafe-eval`) the client reads the nonce from this tag and runs the
/// inline scripts of updates and the `script` key through script elements
/// carrying it, never through `eval`. Use a fresh random nonce per response.
///
/// ```
/// let tag = liveview::template::script_tag_with(None, Some("r4nd0m"));
/// assert!(tag.starts_with(r#"<script src="/static/liveview/liveview.min.js?v="#));
/// assert!(tag.ends_with(r#"" nonce="r4nd0m" defer></script>"#));
/// assert_eq!(liveview::template::script_tag_with(None, None), liveview::template::script_tag());
/// ```
pub fn script_tag_with(position: Option<&Position>, nonce: Option<&str>) -> String {
    let resume = position.map(Position::to_string).unwrap_or_default();
    script_tag_full(&resume, nonce.unwrap_or(""))
}

fn script_tag_resuming(resume: &str) -> String {
    script_tag_full(resume, "")
}

fn script_tag_full(resume: &str, nonce: &str) -> String {
    let url = crate::assets::script_url();
    let mut tag = format!(r#"<script src="{}""#, crate::escape(&url));
    if !resume.is_empty() {
        tag.push_str(&format!(
            r#" data-liveview-resume="{}""#,
            crate::escape(resume)
        ));
    }
    if !nonce.is_empty() {
        tag.push_str(&format!(r#" nonce="{}""#, crate::escape(nonce)));
    }
    tag.push_str(" defer></script>");
    tag
}

/// Register the helpers with a minijinja environment: `liveview_room_uuid()`
/// and `liveview_script(position)` (marked safe, so it is not escaped),
/// where `position` is the page's [`Position`] in the template's context;
/// `liveview_script()` without it renders a tag without a position,
/// `liveview_script(position, nonce=csp_nonce)` adds a CSP nonce (see
/// [`script_tag_with`]); and `liveview_upload_script()`, the upload
/// add-on's tag ([`upload::script_tag`](crate::upload::script_tag)), also
/// marked safe.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let live = liveview::LiveView::builder().build().unwrap();
/// let mut env = minijinja::Environment::new();
/// liveview::template::register(&mut env);
/// env.add_template("page.html", r#"<html data-room="{{ room }}">{{ liveview_script(position) }}"#).unwrap();
/// let room = liveview::template::room_uuid();
/// let position = live.position(&room).await;
/// let context = minijinja::context! { room, position };
/// let html = env.get_template("page.html").unwrap().render(context).unwrap();
/// assert!(html.contains("<script src="));
/// assert!(html.contains("data-liveview-resume=\"room_"));
///
/// env.add_template("strict.html", r#"{{ liveview_script(nonce=nonce) }}"#).unwrap();
/// let html = env.get_template("strict.html").unwrap().render(minijinja::context! { nonce => "n0nce" }).unwrap();
/// assert!(html.contains(r#" nonce="n0nce""#));
/// # }
/// ```
#[cfg(feature = "minijinja")]
pub fn register(env: &mut minijinja::Environment<'_>) {
    env.add_function("liveview_room_uuid", room_uuid);
    env.add_function(
        "liveview_script",
        |position: Option<String>, kwargs: minijinja::value::Kwargs| {
            let nonce: Option<String> = kwargs.get("nonce")?;
            kwargs.assert_all_used()?;
            let resume = position.unwrap_or_default();
            Ok::<_, minijinja::Error>(minijinja::Value::from_safe_string(script_tag_full(
                &resume,
                nonce.as_deref().unwrap_or(""),
            )))
        },
    );
    env.add_function("liveview_upload_script", || {
        minijinja::Value::from_safe_string(crate::upload::script_tag())
    });
}

/// [`register`], with `liveview_room_uuid()` issuing rooms signed by
/// `signer`, for apps built with
/// [`LiveViewBuilder::signed_rooms`](crate::LiveViewBuilder::signed_rooms).
///
/// ```
/// use liveview::session::RoomSigner;
///
/// let signer = RoomSigner::new(b"a room secret of at least 32 bytes!!").unwrap();
/// let mut env = minijinja::Environment::new();
/// liveview::template::register_signed(&mut env, signer.clone());
/// env.add_template("page.html", r#"{{ liveview_room_uuid() }}"#).unwrap();
/// let room = env.get_template("page.html").unwrap().render(()).unwrap();
/// assert!(signer.verify(&room));
/// ```
#[cfg(feature = "minijinja")]
pub fn register_signed(env: &mut minijinja::Environment<'_>, signer: crate::session::RoomSigner) {
    register(env);
    env.add_function("liveview_room_uuid", move || signer.new_room());
}
