//! Signed session cookies and signed room ids: who a connection is, and
//! which rooms it may join, without server-side state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, Key, SameSite};
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{Authenticator, Identity};
pub use crate::error::SecretTooShort;
use crate::scope::{Scope, User};

/// The shortest secret [`SessionAuth::new`] and [`RoomSigner::new`] accept.
pub const MIN_SECRET_LEN: usize = 32;

fn check_secret(secret: &[u8]) -> Result<(), SecretTooShort> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SecretTooShort::new(secret.len()));
    }
    Ok(())
}

/// An authenticator reading the user from a cookie signed with the app's
/// secret key (HMAC-SHA256, through the `cookie` crate). The login handler
/// of the app sets the cookie with [`SessionAuth::set_cookie`]; a forged or
/// altered cookie is an anonymous user. A genuine cookie past its end
/// refuses the connection as [`Identity::Expired`] (close code 4401), so a
/// page left open after its session ended says so.
///
/// ```
/// use liveview::{session::SessionAuth, Authenticator, Scope, User};
///
/// let auth = SessionAuth::new(b"a secret of at least thirty-two bytes!!")?;
/// let set_cookie = auth.set_cookie(&User::new("7", "Ada"));
/// let pair = set_cookie.split(';').next().unwrap();
/// let scope = Scope::builder().header("cookie", pair).build();
/// assert_eq!(auth.user(&scope).unwrap().name, "Ada");
///
/// let forged = Scope::builder().header("cookie", "liveview_session=eyJ1Ijp7fX0").build();
/// assert!(auth.user(&forged).is_none());
/// # Ok::<(), liveview::session::SecretTooShort>(())
/// ```
#[derive(Clone)]
pub struct SessionAuth {
    key: Key,
    name: String,
    max_age: Duration,
    secure: bool,
}

impl std::fmt::Debug for SessionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAuth")
            .field("cookie", &self.name)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Session {
    user: User,
    /// Seconds since the Unix epoch after which the session is invalid.
    expires: u64,
}

impl SessionAuth {
    /// Sessions signed with a key derived from `secret` (use at least 32
    /// random bytes, kept out of the repository), in the cookie
    /// `liveview_session`, valid for 14 days.
    ///
    /// # Errors
    ///
    /// [`SecretTooShort`] when `secret` is shorter than
    /// [`MIN_SECRET_LEN`] (32) bytes.
    ///
    /// ```
    /// use liveview::session::SessionAuth;
    ///
    /// let err = SessionAuth::new(b"hunter2").unwrap_err();
    /// assert_eq!(err.to_string(), "the secret is 7 bytes long; use at least 32 random bytes");
    /// ```
    pub fn new(secret: &[u8]) -> Result<Self, SecretTooShort> {
        check_secret(secret)?;
        Ok(Self {
            key: Key::derive_from(secret),
            name: "liveview_session".to_owned(),
            max_age: Duration::from_secs(14 * 24 * 3600),
            secure: false,
        })
    }

    /// Use another cookie name.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long a session lasts.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Mark the cookie `Secure` (HTTPS only): do this in production.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `Set-Cookie` header value that signs `user` in.
    pub fn set_cookie(&self, user: &User) -> String {
        let session = Session {
            user: user.clone(),
            expires: now().saturating_add(self.max_age.as_secs()),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&session).unwrap_or_default());
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key)
            .add(Cookie::new(self.name.clone(), payload));
        let value = jar
            .get(&self.name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
            .to_string()
    }

    /// The `Set-Cookie` header value that signs the user out.
    pub fn clear_cookie(&self) -> String {
        Cookie::build((self.name.clone(), ""))
            .path("/")
            .http_only(true)
            .max_age(cookie::time::Duration::ZERO)
            .build()
            .to_string()
    }

    /// The user of a request, if it carries a valid, unexpired session.
    pub fn user(&self, scope: &Scope) -> Option<User> {
        self.user_from_cookie(&scope.cookie(&self.name)?)
    }

    /// The user of a signed cookie value, if valid and unexpired.
    pub fn user_from_cookie(&self, value: &str) -> Option<User> {
        let session = self.session(value)?;
        (session.expires > now()).then_some(session.user)
    }

    /// Who a request is: the user of a valid session, [`Identity::Expired`]
    /// for a genuine session past its end, else [`Identity::Anonymous`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use liveview::{session::SessionAuth, Identity, Scope, User};
    ///
    /// let auth = SessionAuth::new(b"a secret of at least thirty-two bytes!!")?.max_age(Duration::ZERO);
    /// let set_cookie = auth.set_cookie(&User::new("7", "Ada"));
    /// let scope = Scope::builder().header("cookie", set_cookie.split(';').next().unwrap()).build();
    /// assert_eq!(auth.identity(&scope), Identity::Expired);
    /// assert_eq!(auth.identity(&Scope::builder().build()), Identity::Anonymous);
    /// # Ok::<(), liveview::session::SecretTooShort>(())
    /// ```
    pub fn identity(&self, scope: &Scope) -> Identity {
        match scope.cookie(&self.name).and_then(|v| self.session(&v)) {
            Some(session) if session.expires > now() => Identity::User(session.user),
            Some(_) => Identity::Expired,
            None => Identity::Anonymous,
        }
    }

    /// The session of a cookie value whose signature holds, expired or not.
    fn session(&self, value: &str) -> Option<Session> {
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(self.name.clone(), value.to_owned()));
        let verified = jar.signed(&self.key).get(&self.name)?;
        let bytes = URL_SAFE_NO_PAD.decode(verified.value()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

impl Authenticator for SessionAuth {
    fn authenticate<'a>(&'a self, scope: &'a Scope) -> BoxFuture<'a, Identity> {
        let identity = self.identity(scope);
        Box::pin(async move { identity })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Issues and checks signed room ids, so a room id cannot be guessed: with
/// [`LiveViewBuilder::signed_rooms`](crate::LiveViewBuilder::signed_rooms)
/// the server refuses (HTTP 403) any room it did not sign.
///
/// ```
/// use liveview::session::RoomSigner;
///
/// let signer = RoomSigner::new(b"another secret of at least 32 bytes!!")?;
/// let room = signer.new_room();
/// assert!(liveview::is_valid_room(&room));
/// assert!(signer.verify(&room));
///
/// // A predictable id (a user's) is safe once signed.
/// let user_room = signer.sign("user-42");
/// assert!(signer.verify(&user_room));
/// assert!(!signer.verify("user-42"));
/// assert!(!signer.verify("user-43.AAAAAAAAAAAAAAAAAAAAAA"));
/// # Ok::<(), liveview::session::SecretTooShort>(())
/// ```
#[derive(Clone)]
pub struct RoomSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for RoomSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomSigner { .. }")
    }
}

/// Bytes of the HMAC kept in a room id: 128 bits.
const ROOM_MAC_LEN: usize = 16;

impl RoomSigner {
    /// A signer with a key derived from `secret`.
    ///
    /// # Errors
    ///
    /// [`SecretTooShort`] when `secret` is shorter than
    /// [`MIN_SECRET_LEN`] (32) bytes.
    pub fn new(secret: &[u8]) -> Result<Self, SecretTooShort> {
        check_secret(secret)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"liveview room signing")
            .expect("HMAC takes keys of any length");
        mac.update(secret);
        Ok(Self {
            key: mac.finalize().into_bytes().into(),
        })
    }

    /// A fresh random room, signed: `<uuid>.<mac>`.
    pub fn new_room(&self) -> String {
        self.sign(&crate::template::room_uuid())
    }

    /// Sign an id of your own (at most 60 characters of `[A-Za-z0-9_-]`).
    pub fn sign(&self, id: &str) -> String {
        format!(
            "{id}.{}",
            URL_SAFE_NO_PAD.encode(&self.mac(id)[..ROOM_MAC_LEN])
        )
    }

    /// Whether `room` was signed by this signer.
    pub fn verify(&self, room: &str) -> bool {
        let Some((id, tag)) = room.rsplit_once('.') else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        if tag.len() != ROOM_MAC_LEN {
            return false;
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(id.as_bytes());
        mac.verify_truncated_left(&tag).is_ok()
    }

    fn mac(&self, id: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_altered_or_expired_session_is_anonymous() {
        let auth = SessionAuth::new(&[7; 32]).unwrap();
        let header = auth.set_cookie(&User::new("1", "Ada"));
        let value = header.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(auth.user_from_cookie(value).unwrap().id, "1");
        let mut tampered = value.to_owned();
        tampered.pop();
        tampered.push('A');
        assert!(auth.user_from_cookie(&tampered).is_none() || tampered == value);
        let other_key = SessionAuth::new(&[8; 32]).unwrap();
        assert!(other_key.user_from_cookie(value).is_none());
        let expired = SessionAuth::new(&[7; 32]).unwrap().max_age(Duration::ZERO);
        let header = expired.set_cookie(&User::new("1", "Ada"));
        let value = header.split(';').next().unwrap().split_once('=').unwrap().1;
        assert!(expired.user_from_cookie(value).is_none());
        assert!(header.contains("HttpOnly") && header.contains("SameSite=Lax"));
    }

    #[test]
    fn room_signatures_are_bound_to_key_and_id() {
        let signer = RoomSigner::new(&[1; 32]).unwrap();
        let room = signer.new_room();
        assert!(room.len() <= 94);
        assert!(!RoomSigner::new(&[2; 32]).unwrap().verify(&room));
        let (id, tag) = room.rsplit_once('.').unwrap();
        assert!(!signer.verify(&format!("{id}x.{tag}")));
        assert!(!signer.verify(id));
        assert!(!signer.verify(""));
    }

    #[test]
    fn a_short_secret_is_an_error_not_a_panic() {
        assert_eq!(SessionAuth::new(&[0; 31]).unwrap_err().len(), 31);
        assert_eq!(RoomSigner::new(b"").unwrap_err().len(), 0);
        assert!(SessionAuth::new(&[0; 32]).is_ok());
        assert!(RoomSigner::new(&[0; 32]).is_ok());
    }
}
