//! OAuth 2 (authorization-code flow with CleverReach's `grant=basic`, refresh with rotation).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::lenient::{value_to_i64, value_to_string};
use crate::secret::{Secret, redact_emails};

/// An access token with its (optional) refresh token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// `expires_in` as given by CleverReach (seconds).
    pub expires_in: i64,
    /// Unix seconds when the token was obtained.
    pub obtained_at: i64,
}

impl TokenSet {
    /// Unix seconds at which the token should be refreshed: the earlier of CleverReach's
    /// `expires_in` and `max_age` (the official core treats tokens as valid for 7 days only).
    pub fn refresh_due_at(&self, max_age_secs: i64, skew_secs: i64) -> i64 {
        let lifetime = if self.expires_in > 0 { self.expires_in.min(max_age_secs) } else { max_age_secs };
        // Never refresh "before" the token was obtained, even for very short lifetimes.
        let skew = skew_secs.min(lifetime / 2);
        self.obtained_at + lifetime - skew
    }
}

/// Where the caller persists rotated tokens. Called with every new token set **before** the
/// client uses the new access token (the old refresh token is void once CleverReach rotated it).
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn save(&self, tokens: &TokenSet) -> std::result::Result<(), String>;

    /// The token set kept now, read again (M5): several processes share one account's tokens, and the
    /// one that refreshed first kept the rotated set here. `None` when the store keeps none or cannot
    /// read back; the client then refreshes with what it holds.
    async fn load(&self) -> std::result::Result<Option<TokenSet>, String> {
        Ok(None)
    }
}

/// In-memory [`TokenStore`] that keeps every saved set (tests, sandbox).
#[derive(Debug, Clone, Default)]
pub struct MemoryTokenStore {
    saved: Arc<Mutex<Vec<TokenSet>>>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// All token sets saved so far, oldest first.
    pub fn saved(&self) -> Vec<TokenSet> {
        self.saved.lock().expect("token store poisoned").clone()
    }

    pub fn latest(&self) -> Option<TokenSet> {
        self.saved().pop()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn save(&self, tokens: &TokenSet) -> std::result::Result<(), String> {
        self.saved.lock().map_err(|_| "token store poisoned".to_owned())?.push(tokens.clone());
        Ok(())
    }

    async fn load(&self) -> std::result::Result<Option<TokenSet>, String> {
        Ok(self.latest())
    }
}

/// [`TokenStore`] over the secret store (Secrets Manager in AWS, memory or the embedded store locally):
/// one secret per CleverReach account holds the latest token set, so a rotated refresh token survives
/// the process (R-H1).
#[derive(Clone)]
pub struct SecretTokenStore {
    secrets: Arc<dyn optisync_ports::SecretStore>,
    name: String,
}

impl SecretTokenStore {
    /// Tokens of one account, kept in the secret `name` (e.g. `cleverreach/<account>/tokens`).
    pub fn new(secrets: Arc<dyn optisync_ports::SecretStore>, name: impl Into<String>) -> Self {
        Self { secrets, name: name.into() }
    }

    /// The saved token set, if the account was authorised.
    pub async fn load(&self) -> std::result::Result<Option<TokenSet>, String> {
        match self.secrets.get(&self.name).await.map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(json) => {
                serde_json::from_str(&json).map(Some).map_err(|_| "stored token set is unreadable".to_owned())
            }
        }
    }
}

#[async_trait]
impl TokenStore for SecretTokenStore {
    async fn save(&self, tokens: &TokenSet) -> std::result::Result<(), String> {
        let json = serde_json::to_string(tokens).map_err(|_| "token set could not be encoded".to_owned())?;
        self.secrets.put(&self.name, &json).await.map_err(|e| e.to_string())
    }

    async fn load(&self) -> std::result::Result<Option<TokenSet>, String> {
        SecretTokenStore::load(self).await
    }
}

/// OAuth app settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Base of `/oauth/authorize.php` and `/oauth/token.php`, e.g. `https://rest.cleverreach.com`.
    pub oauth_base: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
}

impl OAuthConfig {
    fn endpoint(&self, name: &str) -> String {
        format!("{}/oauth/{name}", self.oauth_base.trim_end_matches('/'))
    }

    /// The browser URL that starts the authorization-code flow.
    pub fn authorize_url(&self, state: &str) -> Result<String> {
        let mut url = url::Url::parse(&self.endpoint("authorize.php")).map_err(|e| Error::Config(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("grant", "basic")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", state);
        Ok(url.into())
    }

    /// `POST /oauth/token.php` with `grant_type=authorization_code` (JSON body).
    pub async fn exchange_code(&self, http: &reqwest::Client, code: &str) -> Result<TokenSet> {
        let body = serde_json::json!({
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "client_secret": self.client_secret.expose(),
            "code": code,
            "redirect_uri": self.redirect_uri,
        });
        let req = http.post(self.endpoint("token.php")).json(&body);
        let (status, value) = send_token_request(req).await?;
        if !(200..300).contains(&status) {
            return Err(Error::OAuth { status, error: token_error(&value) });
        }
        parse_token_response(&value)
    }

    /// `POST /oauth/token.php` with `grant_type=refresh_token` (form body, client credentials
    /// as HTTP Basic). 400/401/403 → [`Error::ReauthorizationRequired`].
    pub async fn refresh(&self, http: &reqwest::Client, refresh_token: &Secret) -> Result<TokenSet> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose())
            .finish();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose()
        ));
        let req = http
            .post(self.endpoint("token.php"))
            .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        let (status, value) = send_token_request(req).await?;
        match status {
            200..=299 => parse_token_response(&value),
            400..=499 => {
                Err(Error::ReauthorizationRequired { reason: format!("refresh refused: {}", token_error(&value)) })
            }
            _ => Err(Error::OAuth { status, error: token_error(&value) }),
        }
    }
}

async fn send_token_request(req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let resp = req
        .send()
        .await
        .map_err(|e| Error::Transport { operation: "oauth_token", message: e.without_url().to_string() })?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Error::Transport { operation: "oauth_token", message: e.without_url().to_string() })?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

fn token_error(v: &Value) -> String {
    let code = v.get("error").map(value_to_string).unwrap_or_else(|| "unknown".into());
    match v.get("error_description").map(value_to_string) {
        Some(d) if !d.is_empty() => redact_emails(&format!("{code}: {d}")),
        _ => redact_emails(&code),
    }
}

fn parse_token_response(v: &Value) -> Result<TokenSet> {
    let access = v
        .get("access_token")
        .map(value_to_string)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Decode { operation: "oauth_token", message: "no access_token in answer".into() })?;
    let refresh = v.get("refresh_token").map(value_to_string).filter(|s| !s.is_empty()).map(Secret::new);
    let expires_in = v.get("expires_in").and_then(value_to_i64).unwrap_or(0);
    Ok(TokenSet {
        access_token: Secret::new(access),
        refresh_token: refresh,
        expires_in,
        obtained_at: chrono::Utc::now().timestamp(),
    })
}
