//! ESP accounts (R-H1): Brevo by API key, CleverReach by OAuth, and what an account offers a link.
//!
//! The CleverReach flow (M4): the admin API hands out a start link with a signed single-use ticket; the
//! browser that opens it gets a random cookie and goes to CleverReach with a signed single-use state that
//! holds the cookie's hash; the callback needs that state, once, from that browser. Each token carries a
//! random nonce whose hash names a pending authorisation in the store (tenant, account, expiry), taken by a
//! conditional delete, so neither a ticket nor a state works twice.

use super::{Admin, AdminError, OAUTH_STATE_KEY, OAUTH_STATE_MINUTES, OAUTH_TICKET_MINUTES, valid_id};
use base64::Engine as _;
use chrono::Duration;
use hmac::{Hmac, Mac};
use optisync_domain::{AccountId, AccountRecord, AccountStatus, EspAccount, Provider, TenantId};
use optisync_ports::names::secret;
use optisync_ports::tokens::BrevoHookTokens;
use optisync_ports::{EspCatalog, EspError, PendingAuthorisation, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// What a rotation or a retirement of a Brevo webhook token did (M3). It never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrevoTokenState {
    /// The account.
    pub account: AccountId,
    /// When the previous token stops being accepted; `None`: only the current one is.
    pub previous_valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// How many of the account's webhooks at Brevo now carry the new token (rotation only; 0 when no
    /// link syncs, the next registration takes the new one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhooks_updated: Option<usize>,
}

/// Where a CleverReach authorisation sends the admin's browser, and the cookie that binds it (M4).
#[derive(Debug, Clone)]
pub struct BrowserStart {
    /// CleverReach's authorize URL, with the state.
    pub authorize_url: String,
    /// The random value the browser keeps in a cookie until the callback; the state holds its hash.
    pub cookie: String,
}

/// What a signed OAuth token is for: the start link the admin API hands out, or the `state` that goes to
/// CleverReach and comes back with the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Purpose {
    Ticket,
    State,
}

impl Purpose {
    /// The query parameter that carries it.
    fn field(self) -> &'static str {
        match self {
            Self::Ticket => "ticket",
            Self::State => "state",
        }
    }
}

/// The signed body of an OAuth token (M4): purpose, tenant, account, a random nonce whose hash names the
/// pending authorisation, the SHA-256 of the browser's cookie (states only), expiry (epoch seconds).
#[derive(Serialize, Deserialize)]
struct OAuthToken {
    p: Purpose,
    t: String,
    a: String,
    n: String,
    #[serde(default)]
    c: String,
    e: i64,
}

/// SHA-256, hex.
fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

impl Admin {
    /// The tenant's ESP accounts.
    pub async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, AdminError> {
        Ok(self.store.accounts(tenant).await?)
    }

    /// The account if it is the tenant's; [`AdminError::NotFound`] otherwise.
    async fn own_account(&self, tenant: &TenantId, esp: &EspAccount) -> Result<AccountRecord, AdminError> {
        match self.store.account(esp).await? {
            Some(record) if &record.tenant == tenant => Ok(record),
            _ => Err(AdminError::NotFound("account")),
        }
    }

    /// Refuses an account id another tenant holds (its secrets are named by it).
    async fn claimable(&self, tenant: &TenantId, esp: &EspAccount) -> Result<Option<AccountRecord>, AdminError> {
        match self.store.account(esp).await? {
            Some(record) if &record.tenant != tenant => {
                Err(AdminError::Conflict("this account id is taken: choose another".into()))
            }
            found => Ok(found),
        }
    }

    /// Connects a Brevo account by API key, after Brevo accepted the key (R-H1).
    pub async fn connect_brevo(
        &self,
        tenant: &TenantId,
        account: &str,
        api_key: &str,
    ) -> Result<AccountRecord, AdminError> {
        if !valid_id(account) {
            return Err(AdminError::NotFound("account"));
        }
        if api_key.trim().is_empty() || api_key.len() > 512 {
            return Err(AdminError::invalid("api_key", "required: the account's API key"));
        }
        let esp = EspAccount { provider: Provider::Brevo, account: AccountId::new(account) };
        self.claimable(tenant, &esp).await?;
        match self.directory.connect_brevo(&esp.account, api_key.trim()).await {
            Ok(()) => {}
            Err(EspError::Unauthorized) => return Err(AdminError::invalid("api_key", "Brevo refused this key")),
            Err(e) => return Err(AdminError::esp(e)),
        }
        self.save_account(tenant, esp, AccountStatus::Connected).await
    }

    /// The tenant's Brevo account and its webhook tokens as kept (the raw secret too, to put it back).
    async fn brevo_tokens(
        &self,
        tenant: &TenantId,
        account: &str,
    ) -> Result<(EspAccount, Option<String>, Option<BrevoHookTokens>), AdminError> {
        if !valid_id(account) {
            return Err(AdminError::NotFound("account"));
        }
        let esp = EspAccount { provider: Provider::Brevo, account: AccountId::new(account) };
        self.own_account(tenant, &esp).await?;
        let raw = self.secrets.get(&secret::brevo_webhook_token(&esp.account)).await?;
        let tokens = raw.as_deref().and_then(BrevoHookTokens::parse);
        Ok((esp, raw, tokens))
    }

    /// Rotates the bearer token of the account's Brevo webhook (M3). A new token becomes current and
    /// the old one stays valid for `BREVO_TOKEN_OVERLAP_HOURS` (24 h), or until
    /// [`Self::retire_previous_brevo_webhook_token`]; then Brevo's webhook is given the new token. The
    /// secret accepts the new token before Brevo sends it, and the old one while Brevo may still send
    /// it, so no event is refused. While an overlap runs, another rotation is refused (409): it would
    /// end the overlap of the token before. Should Brevo refuse the update, the old state is put back.
    pub async fn rotate_brevo_webhook_token(
        &self,
        tenant: &TenantId,
        account: &str,
    ) -> Result<BrevoTokenState, AdminError> {
        let (esp, raw, tokens) = self.brevo_tokens(tenant, account).await?;
        let now = self.clock.now();
        if let Some(until) = tokens.as_ref().and_then(|t| t.previous_valid_until(now)) {
            return Err(AdminError::Conflict(format!(
                "the previous token is valid until {}: retire it first (DELETE …/webhook-token/previous)",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let next = format!("{:032x}", rand::random::<u128>());
        let rotated = match &tokens {
            Some(tokens) => tokens.rotated(next.clone(), now),
            None => BrevoHookTokens::new(next.clone()), // no webhook has a token yet
        };
        let name = secret::brevo_webhook_token(&esp.account);
        self.secrets.put(&name, &rotated.to_secret()).await?;
        let hook_url = self.hook_url_of(tenant, &esp);
        let updated = match self.directory.set_brevo_hook_token(&esp.account, &hook_url, &next).await {
            Ok(n) => n,
            Err(e) => {
                // An account has one webhook at its URL, so a failure means Brevo still has the old token.
                if let Some(raw) = raw {
                    self.secrets.put(&name, &raw).await?;
                }
                return Err(AdminError::esp(e));
            }
        };
        tracing::info!(account = %esp.account, webhooks = updated, "brevo webhook token rotated");
        Ok(BrevoTokenState {
            account: esp.account,
            previous_valid_until: rotated.previous_valid_until(now),
            webhooks_updated: Some(updated),
        })
    }

    /// Ends the overlap of a rotation now (M3): only the current token is accepted from here on (for a
    /// token that leaked). Nothing to retire is no error.
    pub async fn retire_previous_brevo_webhook_token(
        &self,
        tenant: &TenantId,
        account: &str,
    ) -> Result<BrevoTokenState, AdminError> {
        let (esp, _, tokens) = self.brevo_tokens(tenant, account).await?;
        if let Some(tokens) = tokens
            && tokens.previous.is_some()
        {
            let name = secret::brevo_webhook_token(&esp.account);
            self.secrets.put(&name, &tokens.without_previous().to_secret()).await?;
            tracing::info!(account = %esp.account, "previous brevo webhook token retired");
        }
        Ok(BrevoTokenState { account: esp.account, previous_valid_until: None, webhooks_updated: None })
    }

    /// Starts a CleverReach authorisation (R-H1): the URL to send the admin's browser to. It points at
    /// this service's `GET /oauth/cleverreach/start` with a single-use ticket (M4), which binds the flow to
    /// the browser that opens it and sends that browser on to CleverReach. The account is listed as
    /// awaiting authorisation until the callback comes (a connected one stays connected meanwhile).
    pub async fn start_cleverreach(&self, tenant: &TenantId, account: &str) -> Result<String, AdminError> {
        if !valid_id(account) {
            return Err(AdminError::NotFound("account"));
        }
        let esp = EspAccount { provider: Provider::CleverReach, account: AccountId::new(account) };
        let existing = self.claimable(tenant, &esp).await?;
        // A misconfigured OAuth app is the admin's error here, not the browser's later.
        self.directory.cleverreach_authorize_url("").map_err(AdminError::esp)?;
        let ticket = self.issue(Purpose::Ticket, tenant, &esp, None, OAUTH_TICKET_MINUTES).await?;
        if existing.is_none() {
            self.save_account(tenant, esp, AccountStatus::AwaitingAuthorisation).await?;
        }
        let base = self.config.public_base_url.trim_end_matches('/');
        Ok(format!("{base}/oauth/cleverreach/start?ticket={ticket}"))
    }

    /// `GET /oauth/cleverreach/start`: takes the ticket (once, M4), and gives the browser a fresh random
    /// cookie value and CleverReach's authorize URL with a single-use state that holds the cookie's hash.
    pub async fn open_cleverreach_ticket(&self, ticket: &str) -> Result<BrowserStart, AdminError> {
        let (opened, esp) = self.open(Purpose::Ticket, ticket).await?;
        let tenant = TenantId::new(opened.t.clone());
        self.take(&tenant, &esp, &opened, "ticket").await?;
        self.claimable(&tenant, &esp).await?;
        let cookie = hex::encode(rand::random::<[u8; 32]>());
        let state = self.issue(Purpose::State, &tenant, &esp, Some(&cookie), OAUTH_STATE_MINUTES).await?;
        let authorize_url = self.directory.cleverreach_authorize_url(&state).map_err(AdminError::esp)?;
        Ok(BrowserStart { authorize_url, cookie })
    }

    /// The OAuth callback: checks the state and that it comes back to the browser it was issued to, takes
    /// it (once, M4), exchanges the code and keeps the tokens (R-H1). `cookie`: the browser's
    /// [`BrowserStart::cookie`], if it sent one.
    pub async fn finish_cleverreach(
        &self,
        code: &str,
        state: &str,
        cookie: Option<&str>,
    ) -> Result<AccountRecord, AdminError> {
        let (opened, esp) = self.open(Purpose::State, state).await?;
        if code.is_empty() {
            return Err(AdminError::invalid("code", "required: the authorisation code"));
        }
        // Checked before the state is taken: a callback from another browser leaves the admin's own
        // flow usable.
        let same_browser = cookie.is_some_and(|c| bool::from(hash(c).as_bytes().ct_eq(opened.c.as_bytes())));
        if !same_browser {
            return Err(AdminError::invalid("state", "this authorisation was started in another browser: start again"));
        }
        let tenant = TenantId::new(opened.t.clone());
        self.take(&tenant, &esp, &opened, "state").await?;
        self.claimable(&tenant, &esp).await?;
        match self.directory.connect_cleverreach(&esp.account, code).await {
            Ok(()) => {}
            Err(EspError::Unauthorized | EspError::Rejected(_)) => {
                return Err(AdminError::invalid("code", "CleverReach refused the authorisation code"));
            }
            Err(e) => return Err(AdminError::esp(e)),
        }
        self.save_account(&tenant, esp, AccountStatus::Connected).await
    }

    /// Saves the tenant's account record with this status, changed now.
    async fn save_account(
        &self,
        tenant: &TenantId,
        esp: EspAccount,
        status: AccountStatus,
    ) -> Result<AccountRecord, AdminError> {
        let record = AccountRecord { tenant: tenant.clone(), esp, status, changed_at: self.clock.now() };
        self.store.put_account(&record).await?;
        Ok(record)
    }

    async fn state_key(&self) -> Result<Vec<u8>, AdminError> {
        if let Some(key) = self.secrets.get(OAUTH_STATE_KEY).await? {
            return Ok(key.into_bytes());
        }
        let key = hex::encode(rand::random::<[u8; 32]>());
        self.secrets.put(OAUTH_STATE_KEY, &key).await?;
        Ok(key.into_bytes())
    }

    /// A signed single-use token for this step of the flow, its pending authorisation stored (M4):
    /// `{body}.{mac}`, both base64url, the body the JSON of [`OAuthToken`].
    async fn issue(
        &self,
        purpose: Purpose,
        tenant: &TenantId,
        esp: &EspAccount,
        cookie: Option<&str>,
        minutes: i64,
    ) -> Result<String, AdminError> {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let expires_at = self.clock.now() + Duration::minutes(minutes);
        let token = OAuthToken {
            p: purpose,
            t: tenant.to_string(),
            a: esp.account.to_string(),
            n: nonce.clone(),
            c: cookie.map(hash).unwrap_or_default(),
            e: expires_at.timestamp(),
        };
        let body = serde_json::to_vec(&token).map_err(|e| StoreError::Permanent(e.to_string()))?;
        let pending =
            PendingAuthorisation { tenant: tenant.clone(), account: esp.clone(), nonce_hash: hash(&nonce), expires_at };
        self.store.put_authorisation(&pending).await?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = self.keyed_mac(&body).await?.finalize().into_bytes();
        Ok(format!("{}.{}", b64.encode(&body), b64.encode(mac)))
    }

    /// The HMAC of a token body under the state key, to finish or to verify.
    async fn keyed_mac(&self, body: &[u8]) -> Result<Hmac<Sha256>, AdminError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.state_key().await?).expect("HMAC takes any key length");
        mac.update(body);
        Ok(mac)
    }

    /// A token this service issued for `purpose` and not expired, with its account; 422 naming the
    /// token's field otherwise (a ticket is no state, and a state no ticket).
    async fn open(&self, purpose: Purpose, token: &str) -> Result<(OAuthToken, EspAccount), AdminError> {
        let field = purpose.field();
        let bad = || AdminError::invalid(field, format!("not a {field} this service issued, or expired: start again"));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (body, mac) = token.split_once('.').ok_or_else(bad)?;
        let body = b64.decode(body).map_err(|_| bad())?;
        let mac = b64.decode(mac).map_err(|_| bad())?;
        self.keyed_mac(&body).await?.verify_slice(&mac).map_err(|_| bad())?;
        let opened: OAuthToken = serde_json::from_slice(&body).map_err(|_| bad())?;
        if opened.p != purpose
            || opened.e < self.clock.now().timestamp()
            || !valid_id(&opened.t)
            || !valid_id(&opened.a)
        {
            return Err(bad());
        }
        let esp = EspAccount { provider: Provider::CleverReach, account: AccountId::new(opened.a.clone()) };
        Ok((opened, esp))
    }

    /// Takes the pending authorisation of an opened token: refused when it was used already, or was not
    /// started for this account, or ran out (M4).
    async fn take(
        &self,
        tenant: &TenantId,
        esp: &EspAccount,
        opened: &OAuthToken,
        field: &str,
    ) -> Result<(), AdminError> {
        match self.store.take_authorisation(tenant, &hash(&opened.n)).await? {
            Some(p) if &p.account == esp && &p.tenant == tenant && p.expires_at >= self.clock.now() => Ok(()),
            Some(_) => Err(AdminError::invalid(field, "not started for this account, or expired: start again")),
            None => Err(AdminError::invalid(field, "already used: start again")),
        }
    }

    /// What an account offers a link: lists (with segments) and attributes (R-D6, R-H2).
    pub async fn catalog(&self, tenant: &TenantId, esp: &EspAccount) -> Result<EspCatalog, AdminError> {
        if !valid_id(esp.account.as_str()) {
            return Err(AdminError::NotFound("account"));
        }
        let record = self.own_account(tenant, esp).await?;
        if record.status != AccountStatus::Connected {
            return Err(AdminError::Conflict("the account's authorisation has not finished".into()));
        }
        self.directory.catalog(esp).await.map_err(AdminError::esp)
    }
}
