//! Upload tokens: what the server promised about one announced file,
//! signed so that the chunk route and the handler can trust it without a
//! lookup, and without anything kept in memory across a restart.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The signed content of an upload token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ticket {
    /// The upload's id: 32 hex digits made by the server, the name in storage.
    #[serde(rename = "i")]
    pub id: String,
    /// The upload's declared name (`Upload::new(name)`).
    #[serde(rename = "u")]
    pub upload: String,
    /// The announced size in bytes.
    #[serde(rename = "s")]
    pub size: u64,
    /// The room of the page that announced it.
    #[serde(rename = "r")]
    pub room: String,
    /// Seconds since the Unix epoch after which the token is refused.
    #[serde(rename = "e")]
    pub expires: u64,
    /// The file's name as the browser gave it (display only).
    #[serde(rename = "n")]
    pub name: String,
}

/// Signs and checks tokens with HMAC-SHA256.
#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A signer with a random key, for one process's life.
    pub(crate) fn random() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// `payload.signature`, both base64url.
    pub(crate) fn sign(&self, ticket: &Ticket) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(ticket).expect("a ticket serialises"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The ticket of a token signed with this key (expired or not).
    pub(crate) fn verify(&self, token: &str) -> Option<Ticket> {
        if token.len() > 2048 {
            return None;
        }
        let (payload, signature) = token.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let ticket: Ticket = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        is_id(&ticket.id).then_some(ticket)
    }
}

/// A new upload id: 32 lowercase hex digits, safe as a file name.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            id: new_id(),
            upload: "photo".into(),
            size: 10,
            room: "lobby".into(),
            expires: 1,
            name: "a.png".into(),
        }
    }

    #[test]
    fn a_signed_ticket_verifies_and_a_changed_one_does_not() {
        let signer = Signer::random();
        let t = ticket();
        let token = signer.sign(&t);
        assert_eq!(signer.verify(&token), Some(t.clone()));
        assert_eq!(Signer::random().verify(&token), None);
        let mut other = t;
        other.size = 11;
        let forged = format!(
            "{}.{}",
            signer.sign(&other).split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(signer.verify(&forged), None);
        assert_eq!(signer.verify("nonsense"), None);
    }
}
