//! Helpers for page templates: a fresh room id, and the script tag.

/// A new random room id (a UUID without dashes), the seed's
/// `{% liveview_room_uuid %}`: unguessable, so nobody can join another
/// page's room by trying ids.
///
/// ```
/// let room = liveview::room_uuid();
/// assert_eq!(room.len(), 32);
/// assert!(liveview::is_valid_room(&room));
/// ```
pub fn room_uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `<script>` tag that loads the client, with a cache-busting hash.
///
/// ```
/// let tag = liveview::script_tag();
/// assert!(tag.starts_with(r#"<script src="/static/liveview/liveview.min.js?v="#));
/// assert!(tag.ends_with(r#"" defer></script>"#));
/// ```
pub fn script_tag() -> String {
    format!(
        r#"<script src="{}" defer></script>"#,
        crate::escape(&crate::assets::script_url())
    )
}

/// Register the helpers with a minijinja environment: `liveview_room_uuid()`
/// and `liveview_script()` (which is marked safe, so it is not escaped).
///
/// ```
/// let mut env = minijinja::Environment::new();
/// liveview::template::register(&mut env);
/// env.add_template("page.html", r#"<html data-room="{{ liveview_room_uuid() }}">{{ liveview_script() }}"#).unwrap();
/// let html = env.get_template("page.html").unwrap().render(()).unwrap();
/// assert!(html.contains("<script src="));
/// ```
#[cfg(feature = "minijinja")]
pub fn register(env: &mut minijinja::Environment<'_>) {
    env.add_function("liveview_room_uuid", room_uuid);
    env.add_function("liveview_script", || {
        minijinja::Value::from_safe_string(script_tag())
    });
}

/// [`register`], with `liveview_room_uuid()` issuing rooms signed by
/// `signer`, for apps built with
/// [`LiveViewBuilder::signed_rooms`](crate::LiveViewBuilder::signed_rooms).
///
/// ```
/// use liveview::session::RoomSigner;
///
/// let signer = RoomSigner::new(b"a room secret of at least 32 bytes!!");
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
