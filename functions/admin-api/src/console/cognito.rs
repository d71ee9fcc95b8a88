//! Sign-in through Cognito's hosted pages: the authorization code flow with PKCE (RFC 7636, S256).
//!
//! The ID token comes straight from the token endpoint over TLS, so its signature need not be checked
//! (OpenID Connect Core 1.0, §3.1.3.7, item 6); its claims are: issuer, audience, `token_use`, expiry
//! and the nonce of this sign-in. The role comes from the groups (`optisync-admin` wins over
//! `optisync-approver`), the tenant from the user's attribute `custom:tenant`.

use super::session::{Role, SignIn, pkce_challenge};
use chrono::{DateTime, Utc};
use optisync_domain::TenantId;
use serde::Deserialize;

/// The group whose members may do everything.
pub const ADMIN_GROUP: &str = "optisync-admin";
/// The group whose members may use the approval queue and the person lookup.
pub const APPROVER_GROUP: &str = "optisync-approver";

/// The user pool's client, as the template wires it into admin-api.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoConfig {
    /// The hosted sign-in's base URL (`https://{prefix}.auth.{region}.amazoncognito.com`).
    pub domain: String,
    /// The app client's id.
    pub client_id: String,
    /// The user pool's issuer (`https://cognito-idp.{region}.amazonaws.com/{pool id}`).
    pub issuer: String,
    /// Where Cognito sends the browser back: `{public base URL}/console/callback`.
    pub redirect_uri: String,
}

/// Why a sign-in was refused (shown to the user; nothing personal in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The identity provider could not be reached or refused the code.
    #[error("the sign-in service refused the code or could not be reached")]
    Exchange,
    /// A claim does not fit.
    #[error("the sign-in is not valid: {0}")]
    Claim(&'static str),
    /// The user is in neither group.
    #[error("the user is in neither optisync group")]
    NoRole,
    /// The user has no (valid) tenant.
    #[error("the user has no tenant")]
    NoTenant,
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's opaque id.
    pub sub: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The role.
    pub role: Role,
}

impl CognitoConfig {
    /// Where the browser goes to sign in.
    pub fn authorize_url(&self, sign_in: &SignIn) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth2/authorize", self.domain.trim_end_matches('/')))
            .expect("the configured domain is a URL (checked at start)");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &sign_in.state)
            .append_pair("nonce", &sign_in.nonce)
            .append_pair("code_challenge", &pkce_challenge(&sign_in.verifier))
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// Where the browser goes to sign out at Cognito, and back to the console.
    pub fn logout_url(&self, back: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/logout", self.domain.trim_end_matches('/')))
            .expect("the configured domain is a URL (checked at start)");
        url.query_pairs_mut().append_pair("client_id", &self.client_id).append_pair("logout_uri", back);
        url.into()
    }

    /// Exchanges the code for an ID token and checks it.
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        code: &str,
        sign_in: &SignIn,
        now: DateTime<Utc>,
    ) -> Result<Identity, SignInError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", sign_in.verifier.as_str()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = http
            .post(format!("{}/oauth2/token", self.domain.trim_end_matches('/')))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|_| SignInError::Exchange)?;
        if !response.status().is_success() {
            return Err(SignInError::Exchange);
        }
        let tokens: TokenResponse = response.json().await.map_err(|_| SignInError::Exchange)?;
        self.identity(&tokens.id_token, sign_in, now)
    }

    /// The identity in an ID token from the token endpoint, if its claims fit this client and sign-in.
    pub fn identity(&self, id_token: &str, sign_in: &SignIn, now: DateTime<Utc>) -> Result<Identity, SignInError> {
        use base64::Engine as _;
        let payload = id_token.split('.').nth(1).ok_or(SignInError::Claim("not a JWT"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| SignInError::Claim("not a JWT"))?;
        let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| SignInError::Claim("unreadable claims"))?;
        if claims.iss != self.issuer {
            return Err(SignInError::Claim("another issuer"));
        }
        if claims.aud != self.client_id {
            return Err(SignInError::Claim("another audience"));
        }
        if claims.token_use != "id" {
            return Err(SignInError::Claim("not an ID token"));
        }
        if claims.exp <= now.timestamp() {
            return Err(SignInError::Claim("expired"));
        }
        if claims.nonce.as_deref() != Some(sign_in.nonce.as_str()) {
            return Err(SignInError::Claim("another sign-in's nonce"));
        }
        let role = if claims.groups.iter().any(|g| g == ADMIN_GROUP) {
            Role::Admin
        } else if claims.groups.iter().any(|g| g == APPROVER_GROUP) {
            Role::Approver
        } else {
            return Err(SignInError::NoRole);
        };
        let tenant = claims.tenant.as_deref().and_then(|t| TenantId::parse(t).ok()).ok_or(SignInError::NoTenant)?;
        Ok(Identity { sub: claims.sub, tenant, role })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    token_use: String,
    exp: i64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
    #[serde(default, rename = "custom:tenant")]
    tenant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    fn config() -> CognitoConfig {
        CognitoConfig {
            domain: "https://example.auth.eu-central-1.amazoncognito.com".into(),
            client_id: "client".into(),
            issuer: "https://cognito-idp.eu-central-1.amazonaws.com/pool".into(),
            redirect_uri: "https://api.example.org/console/callback".into(),
        }
    }

    fn token(claims: serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", b64.encode(br#"{"alg":"RS256"}"#), b64.encode(claims.to_string()))
    }

    fn claims(sign_in: &SignIn, now: DateTime<Utc>) -> serde_json::Value {
        json!({
            "iss": "https://cognito-idp.eu-central-1.amazonaws.com/pool", "aud": "client", "sub": "u-1",
            "token_use": "id", "exp": now.timestamp() + 3600, "nonce": sign_in.nonce,
            "cognito:groups": ["optisync-approver"], "custom:tenant": "gemeinde-1"
        })
    }

    #[test]
    fn the_authorize_url_asks_for_a_code_with_an_s256_challenge_of_the_verifier() {
        let sign_in = SignIn::new(Utc::now());
        let url = url::Url::parse(&config().authorize_url(&sign_in)).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), "/oauth2/authorize");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge(&sign_in.verifier));
        assert_eq!(q["state"], sign_in.state);
        assert!(!url.as_str().contains(&sign_in.verifier), "the verifier never leaves the server");
    }

    #[test]
    fn a_fitting_id_token_gives_the_tenant_and_role() {
        let now = Utc::now();
        let sign_in = SignIn::new(now);
        let id = config().identity(&token(claims(&sign_in, now)), &sign_in, now).unwrap();
        assert_eq!((id.tenant.as_str(), id.role, id.sub.as_str()), ("gemeinde-1", Role::Approver, "u-1"));
        let mut both = claims(&sign_in, now);
        both["cognito:groups"] = json!(["optisync-approver", "optisync-admin"]);
        assert_eq!(config().identity(&token(both), &sign_in, now).unwrap().role, Role::Admin);
    }

    #[test]
    fn a_token_of_another_issuer_audience_use_nonce_or_an_expired_one_is_refused() {
        let now = Utc::now();
        let sign_in = SignIn::new(now);
        for (field, value) in [
            ("iss", json!("https://cognito-idp.eu-central-1.amazonaws.com/other")),
            ("aud", json!("other-client")),
            ("token_use", json!("access")),
            ("exp", json!(now.timestamp() - 1)),
            ("nonce", json!("another")),
        ] {
            let mut c = claims(&sign_in, now);
            c[field] = value;
            assert!(matches!(config().identity(&token(c), &sign_in, now), Err(SignInError::Claim(_))), "{field}");
        }
    }

    #[test]
    fn a_user_without_group_or_tenant_is_refused() {
        let now = Utc::now();
        let sign_in = SignIn::new(now);
        let mut c = claims(&sign_in, now);
        c["cognito:groups"] = json!(["someone-else"]);
        assert_eq!(config().identity(&token(c), &sign_in, now), Err(SignInError::NoRole));
        let mut c = claims(&sign_in, now);
        c["custom:tenant"] = json!("../other");
        assert_eq!(config().identity(&token(c), &sign_in, now), Err(SignInError::NoTenant));
    }
}
