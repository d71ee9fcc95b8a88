//! The console's session: a cookie signed with HMAC-SHA256 under a key of the secret store
//! ([`CONSOLE_SESSION_KEY`](optisync_ports::names::secret::CONSOLE_SESSION_KEY), made on first use). It
//! carries the tenant, the role, the CSRF token of the session's forms and its expiry; nothing personal
//! (the user is named by the identity provider's opaque `sub`).
//!
//! Cookies: `__Host-` (this host only, `Path=/`, `Secure`), `HttpOnly`, `SameSite=Lax` (the identity
//! provider's redirect back must carry the sign-in cookie; every form is checked by its CSRF token and
//! the request's origin instead).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use optisync_domain::TenantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-optisync-session";
/// The cookie of a sign-in under way: the PKCE verifier, the state and the nonce (or, for the local
/// token form, the form's CSRF token).
pub const SIGN_IN_COOKIE: &str = "__Host-optisync-sign-in";
/// The language cookie (`de` or `en`; not a secret).
pub const LANG_COOKIE: &str = "optisync-lang";
/// How long a session lasts: a working day. Signing in again starts a new one.
pub const SESSION_HOURS: i64 = 8;
/// How long a sign-in may take at the identity provider.
pub const SIGN_IN_MINUTES: i64 = 10;

/// What a user may do (Cognito groups `optisync-admin` and `optisync-approver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// The approval queue and the person lookup only.
    Approver,
}

/// A signed-in user's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The one tenant the user works for (R-K1).
    pub tenant: TenantId,
    /// The role.
    pub role: Role,
    /// The identity provider's opaque user id (`local` for the local token).
    pub sub: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// When the session ends.
    pub expires: DateTime<Utc>,
}

/// A sign-in under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The OAuth `state` (and, for the local form, its CSRF token).
    pub state: String,
    /// The PKCE code verifier (RFC 7636).
    pub verifier: String,
    /// The OpenID Connect nonce the ID token must carry.
    pub nonce: String,
    /// When the sign-in expires.
    pub expires: DateTime<Utc>,
}

impl SignIn {
    /// A fresh sign-in, valid for [`SIGN_IN_MINUTES`].
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            state: random_token(),
            verifier: random_token(),
            nonce: random_token(),
            expires: now + Duration::minutes(SIGN_IN_MINUTES),
        }
    }
}

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Signs and checks cookie values.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    /// Over a key.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    fn mac(&self, purpose: &str, body: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac
    }

    /// `{body}.{mac}`, both base64url; `purpose` keeps a sign-in cookie from passing as a session.
    pub fn seal<T: Serialize>(&self, purpose: &str, value: &T) -> String {
        let body = B64.encode(serde_json::to_vec(value).expect("plain data serialises"));
        let tag = B64.encode(self.mac(purpose, &body).finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The value a [`Signer::seal`] made for the same purpose, if the MAC is right.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, purpose: &str, sealed: &str) -> Option<T> {
        let (body, tag) = sealed.split_once('.')?;
        let tag = B64.decode(tag).ok()?;
        self.mac(purpose, body).verify_slice(&tag).ok()?;
        serde_json::from_slice(&B64.decode(body).ok()?).ok()
    }
}

/// A `Set-Cookie` value for one of the console's `__Host-` cookies (`max_age` 0 removes it).
pub fn host_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}")
}

/// The value of the cookie `name` among the request's `cookie` headers.
pub fn cookie(headers: &lambda_http::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires: DateTime<Utc>) -> Session {
        Session { tenant: TenantId::new("t1"), role: Role::Approver, sub: "u".into(), csrf: "c".into(), expires }
    }

    #[test]
    fn a_sealed_session_opens_with_the_same_key_and_purpose_only() {
        let signer = Signer::new(b"key".to_vec());
        let s = session(Utc::now());
        let sealed = signer.seal("session", &s);
        assert_eq!(signer.open::<Session>("session", &sealed), Some(s));
        assert_eq!(signer.open::<Session>("sign-in", &sealed), None);
        assert_eq!(Signer::new(b"other".to_vec()).open::<Session>("session", &sealed), None);
    }

    #[test]
    fn a_session_with_a_changed_role_or_tenant_does_not_open() {
        let signer = Signer::new(b"key".to_vec());
        let sealed = signer.seal("session", &session(Utc::now()));
        let (_, tag) = sealed.split_once('.').unwrap();
        let mut forged = session(Utc::now());
        forged.role = Role::Admin;
        let body = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(signer.open::<Session>("session", &format!("{body}.{tag}")), None);
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_example() {
        // RFC 7636, Appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
