//! The admin API route by route, over the in-memory store and secrets and the real ESP clients against
//! the fake Brevo and CleverReach: what each endpoint answers, what it refuses (naming the field), and
//! that a refusal writes nothing. Linking a CleverReach group (whose webhook registration calls back into
//! hook-cleverreach) is covered end to end in `tests/e2e/tests/admin.rs`.

use admin_api::{Auth, Deps, handle};
use lambda_http::{Body, Request};
use optisync_app::admin::AdminConfig;
use optisync_domain::*;
use optisync_esp::{EspRouter, EspSettings};
use optisync_fakes::brevo::FakeBrevo;
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_ports::prelude::*;
use optisync_ports::{BusEvent, Clock, Commit, SecretStore, SystemClock};
use optisync_testkit::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use serde_json::{Value, json};
use std::sync::Arc;

const TOKEN: &str = "admin-token-for-tests";
const TENANT: &str = "gemeinde-1";

struct Api {
    deps: Deps,
    store: Arc<MemoryStore>,
    secrets: Arc<MemorySecrets>,
    bus: Arc<MemoryBus>,
    brevo: FakeBrevo,
    cleverreach: FakeCleverReach,
}

impl Api {
    async fn start() -> Api {
        Self::start_with(Arc::new(SystemClock)).await
    }

    async fn start_with(clock: Arc<dyn Clock>) -> Api {
        let store = Arc::new(MemoryStore::new());
        let secrets = Arc::new(MemorySecrets::default());
        let bus = Arc::new(MemoryBus::default());
        let brevo = FakeBrevo::start().await;
        let cleverreach = FakeCleverReach::start().await;
        let settings =
            EspSettings { brevo_base_url: brevo.base_url().to_owned(), cleverreach: cleverreach.client_config() };
        let esp = Arc::new(EspRouter::new(secrets.clone(), settings));
        let deps = Deps::new(
            store.clone(),
            store.clone(),
            secrets.clone(),
            esp,
            bus.clone(),
            clock,
            AdminConfig { public_base_url: "https://sync.example.org/".into() },
            Auth::Token(TOKEN.into()),
        );
        Api { deps, store, secrets, bus, brevo, cleverreach }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://sync.example.org{path}"))
            .header("authorization", format!("Bearer {TOKEN}"));
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Body::Text(v.to_string())
            }
            None => Body::Empty,
        };
        self.send(builder.body(body).unwrap()).await
    }

    async fn send(&self, req: Request) -> (u16, Value) {
        let response = handle(&self.deps, req).await;
        let status = response.status().as_u16();
        let body: &[u8] = response.body().as_ref();
        (status, if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap() })
    }

    /// Connects the fake Brevo account as `brevo-main`.
    async fn connect_brevo(&self) {
        let (status, _) = self
            .call(
                "PUT",
                &format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main"),
                Some(json!({"api_key": self.brevo.api_key()})),
            )
            .await;
        assert_eq!(status, 200);
    }

    /// Creates a Brevo link to a new list; returns the list id.
    async fn brevo_link(&self, id: &str) -> i64 {
        self.connect_brevo().await;
        let list = self.brevo.add_list("Rundbrief");
        let (status, body) =
            self.call("PUT", &format!("/admin/tenants/{TENANT}/links/{id}"), Some(link_body(list, json!({})))).await;
        assert_eq!(status, 201, "{body}");
        list
    }
}

/// What the start route gave the admin's browser (M4).
struct BrowserStart {
    /// Where it sends the browser: CleverReach's authorize URL with the state.
    location: String,
    /// The cookie value it set.
    cookie: String,
}

impl Api {
    /// `POST …/authorize` for an account: the link for the admin's browser.
    async fn authorize(&self, account: &str) -> String {
        let path = format!("/admin/tenants/{TENANT}/accounts/cleverreach/{account}/authorize");
        let (status, body) = self.call("POST", &path, None).await;
        assert_eq!(status, 200, "{body}");
        body["authorize_url"].as_str().unwrap().to_owned()
    }

    /// The browser's request to the start link, without the admin token: the status and, on 302, what
    /// the browser was given.
    async fn start_link(&self, url: &str) -> (u16, Value, Option<BrowserStart>) {
        let path = url.strip_prefix("https://sync.example.org").expect("a link to this service");
        let req = lambda_http::http::Request::builder().method("GET").uri(path).body(Body::Empty).unwrap();
        let response = handle(&self.deps, req).await;
        let status = response.status().as_u16();
        if status != 302 {
            let body: &[u8] = response.body().as_ref();
            return (status, serde_json::from_slice(body).unwrap(), None);
        }
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        let cookie = header("set-cookie");
        let attributes: Vec<&str> = cookie.split("; ").collect();
        assert_eq!(&attributes[1..], ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600"], "{cookie}");
        let value = attributes[0].strip_prefix("__Host-optisync-oauth=").expect("the cookie's name").to_owned();
        assert!(value.len() >= 32, "a random value: {value}");
        (status, Value::Null, Some(BrowserStart { location: header("location"), cookie: value }))
    }

    /// Opens the start link, which must answer 302.
    async fn open_start(&self, url: &str) -> BrowserStart {
        let (status, body, start) = self.start_link(url).await;
        assert_eq!(status, 302, "{body}");
        start.unwrap()
    }

    /// The browser at CleverReach's authorize URL: the code and state it is sent back with.
    async fn cleverreach_code(&self, authorize_url: &str) -> (String, String) {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let answer = http.get(authorize_url).send().await.unwrap();
        let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        let param = |name: &str| back.query_pairs().find(|(k, _)| k == name).unwrap().1.into_owned();
        (param("code"), param("state"))
    }

    /// The browser back at the callback, with the cookie if given, without the admin token.
    async fn callback(&self, code: &str, state: &str, cookie: Option<&str>) -> (u16, Value) {
        let path = format!(
            "/oauth/cleverreach/callback?code={}&state={}",
            urlencoding::encode(code),
            urlencoding::encode(state)
        );
        let mut req = lambda_http::http::Request::builder().method("GET").uri(path);
        if let Some(value) = cookie {
            req = req.header("cookie", format!("theme=dark; __Host-optisync-oauth={value}"));
        }
        self.send(req.body(Body::Empty).unwrap()).await
    }

    async fn tokens(&self, account: &str) -> Option<String> {
        self.secrets.get(&format!("cleverreach/{account}/tokens")).await.unwrap()
    }
}

/// The token with one character of its MAC (the part after the `.`, base64url) changed.
fn flip_mac(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = chars.len() - 10;
    assert!(token[token.rfind('.').unwrap()..].len() > 10, "inside the MAC");
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

fn problem_of(body: &Value) -> String {
    body["error"]["fields"][0]["problem"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn m4_a_state_works_once_and_a_second_callback_keeps_the_tokens() {
    let api = Api::start().await;
    let browser = api.open_start(&api.authorize("cr-main").await).await;
    // Two codes for the same state (the URL was reused at CleverReach, T16).
    let (first, state) = api.cleverreach_code(&browser.location).await;
    let (second, again) = api.cleverreach_code(&browser.location).await;
    assert_eq!(state, again);
    assert_ne!(first, second);
    let (status, body) = api.callback(&first, &state, Some(&browser.cookie)).await;
    assert_eq!(status, 200, "{body}");
    let tokens = api.tokens("cr-main").await;
    assert!(tokens.is_some());

    let (status, body) = api.callback(&second, &state, Some(&browser.cookie)).await;
    assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]), "{body}");
    assert_eq!(problem_of(&body), "already used: start again");
    assert_eq!(api.tokens("cr-main").await, tokens, "the tokens stay those of the first callback");
}

#[tokio::test]
async fn m4_a_callback_without_the_starting_browsers_cookie_saves_nothing() {
    let api = Api::start().await;
    let admin = api.open_start(&api.authorize("cr-main").await).await;
    let (code, state) = api.cleverreach_code(&admin.location).await;
    // Someone else's browser: no cookie, or its own cookie from a flow it started itself.
    let other = api.open_start(&api.authorize("cr-other").await).await;
    for cookie in [None, Some(other.cookie.as_str()), Some("")] {
        let (status, body) = api.callback(&code, &state, cookie).await;
        assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]), "{body}");
        assert_eq!(problem_of(&body), "this authorisation was started in another browser: start again");
    }
    assert_eq!(api.tokens("cr-main").await, None);
    let (_, listed) = api.call("GET", &format!("/admin/tenants/{TENANT}/accounts"), None).await;
    assert!(listed["accounts"].as_array().unwrap().iter().all(|a| a["status"] == "awaiting_authorisation"), "{listed}");

    // The refusals did not use the state up: the admin's own browser still finishes.
    let (status, body) = api.callback(&code, &state, Some(&admin.cookie)).await;
    assert_eq!(status, 200, "{body}");
    assert!(api.tokens("cr-main").await.is_some());
    assert_eq!(api.tokens("cr-other").await, None);
}

#[tokio::test]
async fn m4_a_connected_account_keeps_its_tokens_against_a_state_of_another_flow() {
    let api = Api::start().await;
    let browser = api.open_start(&api.authorize("cr-main").await).await;
    let (code, state) = api.cleverreach_code(&browser.location).await;
    assert_eq!(api.callback(&code, &state, Some(&browser.cookie)).await.0, 200);
    let tokens = api.tokens("cr-main").await;
    // A new flow for the account, then the old state with a fresh code: refused, tokens kept.
    let next = api.open_start(&api.authorize("cr-main").await).await;
    let (fresh, _) = api.cleverreach_code(&browser.location).await;
    let (status, body) = api.callback(&fresh, &state, Some(&browser.cookie)).await;
    assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]), "{body}");
    assert_eq!(api.tokens("cr-main").await, tokens);
    let (_, listed) = api.call("GET", &format!("/admin/tenants/{TENANT}/accounts"), None).await;
    assert_eq!(listed["accounts"][0]["status"], "connected", "{listed}");
    // The flow started for it replaces them.
    let (code, state) = api.cleverreach_code(&next.location).await;
    assert_eq!(api.callback(&code, &state, Some(&next.cookie)).await.0, 200);
    assert_ne!(api.tokens("cr-main").await, tokens);
}

#[tokio::test]
async fn m4_a_state_expires_after_ten_minutes() {
    let clock = Arc::new(optisync_testkit::memory::FixedClock::new(chrono::Utc::now()));
    let api = Api::start_with(clock.clone()).await;
    let started = clock.now();
    let browser = api.open_start(&api.authorize("cr-main").await).await;
    let (code, state) = api.cleverreach_code(&browser.location).await;
    clock.set(started + chrono::Duration::minutes(10) + chrono::Duration::seconds(1));
    let (status, body) = api.callback(&code, &state, Some(&browser.cookie)).await;
    assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]), "{body}");
    assert_eq!(api.tokens("cr-main").await, None);

    // Within the ten minutes, it works.
    clock.set(started);
    let browser = api.open_start(&api.authorize("cr-main").await).await;
    let (code, state) = api.cleverreach_code(&browser.location).await;
    clock.set(started + chrono::Duration::minutes(10));
    let (status, body) = api.callback(&code, &state, Some(&browser.cookie)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn m4_a_start_link_works_once_and_only_as_issued() {
    let clock = Arc::new(optisync_testkit::memory::FixedClock::new(chrono::Utc::now()));
    let api = Api::start_with(clock.clone()).await;
    let link = api.authorize("cr-main").await;
    assert!(link.starts_with("https://sync.example.org/oauth/cleverreach/start?ticket="), "{link}");
    api.open_start(&link).await;
    let (status, body, _) = api.start_link(&link).await;
    assert_eq!((status, fields(&body)), (422, vec!["ticket".to_owned()]), "{body}");
    assert_eq!(problem_of(&body), "already used: start again");

    // A flipped MAC character, a state in place of a ticket, no ticket, an expired one.
    let fresh = api.authorize("cr-main").await;
    let (status, body, _) = api.start_link(&flip_mac(&fresh)).await;
    assert_eq!((status, fields(&body)), (422, vec!["ticket".to_owned()]), "{body}");
    let browser = api.open_start(&fresh).await;
    let (_, state) = api.cleverreach_code(&browser.location).await;
    let as_ticket = format!("https://sync.example.org/oauth/cleverreach/start?ticket={}", urlencoding::encode(&state));
    assert_eq!(api.start_link(&as_ticket).await.0, 422);
    let (status, body, _) = api.start_link("https://sync.example.org/oauth/cleverreach/start").await;
    assert_eq!((status, fields(&body)), (400, vec!["ticket".to_owned()]), "{body}");
    let late = api.authorize("cr-main").await;
    clock.set(clock.now() + chrono::Duration::minutes(11));
    assert_eq!(api.start_link(&late).await.0, 422);
    assert_eq!(api.tokens("cr-main").await, None);
}

#[tokio::test]
async fn m4_a_state_with_a_flipped_mac_character_is_refused() {
    let api = Api::start().await;
    let browser = api.open_start(&api.authorize("cr-main").await).await;
    let (code, state) = api.cleverreach_code(&browser.location).await;
    let (status, body) = api.callback(&code, &flip_mac(&state), Some(&browser.cookie)).await;
    assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]), "{body}");
    assert_eq!(api.callback(&code, "garbage", Some(&browser.cookie)).await.0, 422);
    assert_eq!(api.tokens("cr-main").await, None);
    // The refusals did not use it up.
    assert_eq!(api.callback(&code, &state, Some(&browser.cookie)).await.0, 200);
}

fn link_body(list: i64, settings: Value) -> Value {
    json!({"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": list.to_string(),
           "settings": settings})
}

fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|f| f.iter().map(|p| p["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_admin_route_needs_the_admin_token() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}");
    for auth in [None, Some("Bearer wrong-token"), Some(TOKEN)] {
        let mut req = lambda_http::http::Request::builder().method("GET").uri(&path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = api.send(req.body(Body::Empty).unwrap()).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    assert_eq!(api.call("GET", &path, None).await.0, 200);
    // A refused request changes nothing.
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("{path}/signing-secrets"))
        .body(Body::Empty)
        .unwrap();
    assert_eq!(api.send(req).await.0, 401);
    assert_eq!(api.secrets.get("connector/gemeinde-1/signing-secrets").await.unwrap(), None);
}

#[tokio::test]
async fn in_aws_only_iam_signed_requests_pass() {
    use lambda_http::RequestExt;
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequestContext,
    };
    let mut api = Api::start().await;
    api.deps.auth = Auth::Iam;
    let request = |iam: bool| {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        if iam {
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.iam = Some(ApiGatewayRequestAuthorizerIamDescription::default());
            ctx.authorizer = Some(authorizer);
        }
        lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!("/admin/tenants/{TENANT}"))
            .body(Body::Empty)
            .unwrap()
            .with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(ctx))
    };
    assert_eq!(api.send(request(false)).await.0, 403);
    assert_eq!(api.send(request(true)).await.0, 200);
}

/// The retention periods a tenant gets unless it chooses others (R-J6, `docs/privacy.md`).
fn default_retention() -> Value {
    json!({"inbox_days": 7, "commands_days": 30, "approvals_days": 90, "dry_run_days": 7, "recipients_days": 30})
}

/// R-J6: the retention periods are tenant settings with safe defaults; a period left out keeps its
/// default, one out of its range is a 422 naming the field, one that is not a number of days a 400
/// naming it, and a refusal saves nothing.
#[tokio::test]
async fn r_j6_retention_periods_are_tenant_settings_checked_by_the_admin_api() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}/settings");
    let with = |retention: Value| {
        json!({"no_statement_blocks": false, "approved_email_target": "assignment",
        "retention": retention})
    };
    for (retention, field) in [
        (json!({"inbox_days": 0}), "retention.inbox_days"),
        (json!({"inbox_days": 91}), "retention.inbox_days"),
        (json!({"commands_days": 3}), "retention.commands_days"),
        (json!({"approvals_days": 4000}), "retention.approvals_days"),
        (json!({"dry_run_days": 31}), "retention.dry_run_days"),
        (json!({"recipients_days": 0}), "retention.recipients_days"),
    ] {
        let (status, body) = api.call("PUT", &path, Some(with(retention))).await;
        assert_eq!((status, fields(&body)), (422, vec![field.to_owned()]), "{body}");
    }
    for (retention, field) in [
        (json!({"inbox_days": -1}), "retention.inbox_days"),
        (json!({"inbox_days": "a week"}), "retention.inbox_days"),
        (json!({"forever": true}), "retention"),
    ] {
        let (status, body) = api.call("PUT", &path, Some(with(retention))).await;
        assert_eq!(status, 400, "{body}");
        assert!(fields(&body).iter().any(|f| f.starts_with(field)), "{body}");
    }
    assert_eq!(api.store.tenant_settings(&TenantId::new(TENANT)).await.unwrap(), TenantSettings::default());

    let (status, body) =
        api.call("PUT", &path, Some(with(json!({"recipients_days": 14, "approvals_days": 365})))).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = default_retention();
    expected["recipients_days"] = json!(14);
    expected["approvals_days"] = json!(365);
    assert_eq!(body["settings"]["retention"], expected);
    let saved = api.store.tenant_settings(&TenantId::new(TENANT)).await.unwrap().retention;
    assert_eq!((saved.recipients_days, saved.approvals_days, saved.inbox_days), (14, 365, 7));
}

#[tokio::test]
async fn tenant_settings_are_validated_and_saved() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}/settings");
    let (status, body) = api.call("GET", &format!("/admin/tenants/{TENANT}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["settings"],
        json!({"no_statement_blocks": false, "approved_email_target": "assignment", "retention": default_retention()})
    );

    let (status, body) = api.call("PUT", &path, Some(json!({"no_statement_blocks": true}))).await;
    assert_eq!((status, fields(&body)), (400, vec!["approved_email_target".to_owned()]), "{body}");
    let (status, body) =
        api.call("PUT", &path, Some(json!({"no_statement_blocks": true, "approved_email_target": "fax"}))).await;
    assert_eq!((status, fields(&body)), (400, vec!["approved_email_target".to_owned()]), "{body}");
    let extra = json!({"no_statement_blocks": true, "approved_email_target": "assignment", "colour": "red"});
    assert_eq!(api.call("PUT", &path, Some(extra)).await.0, 400);
    assert_eq!(api.store.tenant_settings(&TenantId::new(TENANT)).await.unwrap(), TenantSettings::default());

    // R-A6 ("no statement" blocks) and R-B3 (where an approved signup's e-mail goes).
    let good = json!({"no_statement_blocks": true, "approved_email_target": "standard_communication"});
    let (status, body) = api.call("PUT", &path, Some(good.clone())).await;
    let mut answered = good.clone();
    answered["retention"] = default_retention();
    assert_eq!((status, &body["settings"]), (200, &answered));
    let saved = api.store.tenant_settings(&TenantId::new(TENANT)).await.unwrap();
    assert!(saved.no_statement_blocks);
    assert_eq!(saved.approved_email_target, EmailTarget::StandardCommunication);

    let req = lambda_http::http::Request::builder()
        .method("PUT")
        .uri(&path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::Text(good.to_string()))
        .unwrap();
    assert_eq!(api.send(req).await.0, 415, "a body without its JSON content type");
}

#[tokio::test]
async fn signing_secrets_rotate_with_old_and_new_valid_together() {
    use optisync_connector::signature::{SignedHeaders, SigningSecret, sign};
    let api = Api::start().await;
    let base = format!("/admin/tenants/{TENANT}/signing-secrets");
    let (status, first) = api.call("POST", &base, None).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = api.call("POST", &base, None).await;
    assert_eq!(status, 201);
    assert_eq!(second["valid"], json!([first["id"], second["id"]]));
    let (_, tenant) = api.call("GET", &format!("/admin/tenants/{TENANT}"), None).await;
    assert_eq!(tenant["signing_secrets"], second["valid"]);
    assert!(!tenant.to_string().contains("whsec_"), "secrets are shown once, never listed");

    // The connector's requests pass with either secret while both are valid, and only the new one after.
    let verify = |secret: &str| {
        let secret = SigningSecret::parse(secret).unwrap();
        let now = chrono::Utc::now();
        let signature = sign(&secret, "msg_1", now.timestamp(), b"{}");
        let ts = now.timestamp().to_string();
        let secrets = api.secrets.clone();
        async move {
            let headers = SignedHeaders { id: Some("msg_1"), timestamp: Some(&ts), signature: Some(&signature) };
            optisync_app::optigem::authenticate(secrets.as_ref(), &TenantId::new(TENANT), headers, b"{}", now)
                .await
                .is_ok()
        }
    };
    let (old, new) = (first["secret"].as_str().unwrap(), second["secret"].as_str().unwrap());
    assert!(verify(old).await && verify(new).await);
    assert_eq!(api.call("DELETE", &format!("{base}/{}", first["id"].as_str().unwrap()), None).await.0, 200);
    assert!(!verify(old).await && verify(new).await);

    assert_eq!(api.call("DELETE", &format!("{base}/000000000000"), None).await.0, 404);
    let (status, _) = api.call("DELETE", &format!("{base}/{}", second["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 409, "the last secret stays");
    api.call("POST", &base, None).await;
    api.call("POST", &base, None).await;
    assert_eq!(api.call("POST", &base, None).await.0, 409, "at most three at once");
}

#[tokio::test]
async fn r_h1_a_brevo_key_is_checked_with_brevo_before_it_is_saved() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main");
    let (status, body) = api.call("PUT", &path, Some(json!({"api_key": "xkeysib-wrong"}))).await;
    assert_eq!((status, fields(&body)), (422, vec!["api_key".to_owned()]), "{body}");
    assert_eq!(api.secrets.get("brevo/brevo-main/api-key").await.unwrap(), None, "nothing saved");
    assert!(api.store.accounts(&TenantId::new(TENANT)).await.unwrap().is_empty());
    assert_eq!(api.call("PUT", &path, Some(json!({"key": "x"}))).await.0, 400);

    let key = api.brevo.api_key();
    let (status, body) = api.call("PUT", &path, Some(json!({"api_key": key}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["status"], "connected");
    assert!(!body.to_string().contains(&key), "the key never comes back");
    assert_eq!(api.secrets.get("brevo/brevo-main/api-key").await.unwrap(), Some(key.clone()));
    let (_, listed) = api.call("GET", &format!("/admin/tenants/{TENANT}/accounts"), None).await;
    assert_eq!(listed["accounts"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&key));

    // The account id names its secrets: another tenant cannot take it.
    let (status, _) =
        api.call("PUT", "/admin/tenants/other/accounts/brevo/brevo-main", Some(json!({"api_key": key}))).await;
    assert_eq!(status, 409);

    // What the account offers a link: its lists and its global attributes (R-D6).
    let list = api.brevo.add_list("Rundbrief");
    let (status, catalog) = api.call("GET", &format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main"), None).await;
    assert_eq!(status, 200, "{catalog}");
    assert!(catalog["lists"].as_array().unwrap().iter().any(|l| l["id"].as_str() == Some(&*list.to_string())));
    assert!(catalog["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "FIRSTNAME"));
    assert_eq!(api.call("GET", "/admin/tenants/other/accounts/brevo/brevo-main", None).await.0, 404);
    assert_eq!(api.call("GET", &format!("/admin/tenants/{TENANT}/accounts/brevo/nope"), None).await.0, 404);
    assert_eq!(api.call("GET", &format!("/admin/tenants/{TENANT}/accounts/mailchimp/x"), None).await.0, 404);
}

#[tokio::test]
async fn r_h1_cleverreach_is_connected_by_oauth() {
    let api = Api::start().await;
    let (status, body) =
        api.call("POST", &format!("/admin/tenants/{TENANT}/accounts/cleverreach/cr-main/authorize"), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, listed) = api.call("GET", &format!("/admin/tenants/{TENANT}/accounts"), None).await;
    assert_eq!(listed["accounts"][0]["status"], "awaiting_authorisation");

    // The admin's browser opens the link: optisync sets its cookie and sends it on to CleverReach, which
    // sends it back with a code and our state (M4).
    let browser = api.open_start(body["authorize_url"].as_str().unwrap()).await;
    let (code, state) = api.cleverreach_code(&browser.location).await;

    let mut forged = state.clone();
    forged.insert(0, 'x');
    let (status, body) = api.callback(&code, &forged, Some(&browser.cookie)).await;
    assert_eq!((status, fields(&body)), (422, vec!["state".to_owned()]));
    assert_eq!(api.call("GET", "/oauth/cleverreach/callback?state=x", None).await.0, 400);
    assert_eq!(api.secrets.get("cleverreach/cr-main/tokens").await.unwrap(), None);

    // The callback needs no admin token: the signed state and the browser's cookie are its authorisation.
    let (status, body) = api.callback(&code, &state, Some(&browser.cookie)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["status"], "connected");
    assert!(api.secrets.get("cleverreach/cr-main/tokens").await.unwrap().is_some());
    assert!(!body.to_string().contains("token"), "{body}");
    let group = api.cleverreach.add_group("Rundbrief");
    api.cleverreach.add_global_attribute("vorname", "text");
    let (status, catalog) =
        api.call("GET", &format!("/admin/tenants/{TENANT}/accounts/cleverreach/cr-main"), None).await;
    assert_eq!(status, 200, "{catalog}");
    assert!(catalog["lists"].as_array().unwrap().iter().any(|l| l["id"] == group.as_str()));
    assert!(catalog["attributes"].as_array().unwrap().iter().any(|a| a["name"] == "vorname"));
}

#[tokio::test]
async fn links_are_checked_against_the_account_and_nothing_is_half_saved() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}/links/rundbrief-brevo");
    let list = api.brevo.add_list("Rundbrief");
    let (status, body) = api.call("PUT", &path, Some(link_body(list, json!({})))).await;
    assert_eq!((status, fields(&body)), (422, vec!["account".to_owned()]), "no such account yet");
    api.connect_brevo().await;

    let cases = [
        (json!({"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": "999"}), "list"),
        (
            json!({"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": list.to_string(),
                "segment": "7"}),
            "segment",
        ),
        (link_body(list, json!({"mapping": {"first_name": "VORNAME"}})), "settings.mapping.first_name"),
        (
            link_body(list, json!({"mapping": {"first_name": "FIRSTNAME", "last_name": "FIRSTNAME"}})),
            "settings.mapping.last_name",
        ),
        (json!({"newsletter": "rund brief", "provider": "brevo", "account": "brevo-main", "list": "1"}), "newsletter"),
    ];
    for (body, field) in cases {
        let (status, answer) = api.call("PUT", &path, Some(body)).await;
        assert_eq!((status, fields(&answer)), (422, vec![field.to_owned()]), "{answer}");
    }
    let cases = [
        (link_body(list, json!({"unsubscribe_mode": "shred"})), "settings.unsubscribe_mode"),
        (json!({"newsletter": "rundbrief", "provider": "mailchimp", "account": "a", "list": "1"}), "provider"),
        (json!({"newsletter": 5, "provider": "brevo", "account": "a", "list": "1"}), "newsletter"),
    ];
    for (body, field) in cases {
        let (status, answer) = api.call("PUT", &path, Some(body)).await;
        assert_eq!((status, fields(&answer)), (400, vec![field.to_owned()]), "{answer}");
    }
    assert!(api.store.links(&TenantId::new(TENANT)).await.unwrap().is_empty(), "nothing saved");

    // R-H2 settings; R-A8: nothing relevant unless chosen; R-J2: the unsubscribe mode (erasure needs the
    // tenant's deletion reports' target).
    let tenant_settings = json!({"no_statement_blocks": false, "approved_email_target": "assignment",
                                 "deletion_report_email": "datenschutz@example.org"});
    assert_eq!(api.call("PUT", &format!("/admin/tenants/{TENANT}/settings"), Some(tenant_settings)).await.0, 200);
    let settings = json!({"mapping": {"first_name": "FIRSTNAME", "last_name": "LASTNAME"},
                          "relevant_privacy": ["newsletter"], "unsubscribe_mode": "erasure"});
    let (status, body) = api.call("PUT", &path, Some(link_body(list, settings))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["link"]["status"], "not_linked");
    assert_eq!(body["link"]["settings"]["relevant_blocks"], json!([]));
    let (status, _) = api.call("PUT", &path, Some(link_body(list, json!({})))).await;
    assert_eq!(status, 200, "saved again: changed, not created");
    let saved = api.store.links(&TenantId::new(TENANT)).await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].settings, LinkSettings::default());

    let (status, status_body) = api.call("GET", &path, None).await;
    assert_eq!((status, &status_body["link"]["status"]), (200, &json!("not_linked")));
    assert_eq!(api.call("GET", &format!("/admin/tenants/{TENANT}/links/nope"), None).await.0, 404);
    let (_, all) = api.call("GET", &format!("/admin/tenants/{TENANT}/links"), None).await;
    assert_eq!(all["links"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn r_j2_a_link_in_erasure_mode_needs_the_tenants_deletion_report_email() {
    let api = Api::start().await;
    api.connect_brevo().await;
    let list = api.brevo.add_list("Rundbrief");
    let path = format!("/admin/tenants/{TENANT}/links/rundbrief");
    let erasure = link_body(list, json!({"unsubscribe_mode": "erasure"}));
    let (status, body) = api.call("PUT", &path, Some(erasure.clone())).await;
    assert_eq!((status, fields(&body)), (422, vec!["deletion_report_email".to_owned()]), "{body}");
    assert!(api.store.links(&TenantId::new(TENANT)).await.unwrap().is_empty(), "nothing saved");
    assert_eq!(api.call("PUT", &path, Some(link_body(list, json!({})))).await.0, 201, "classic needs none");

    let settings = format!("/admin/tenants/{TENANT}/settings");
    let with_target = json!({"no_statement_blocks": false, "approved_email_target": "assignment",
                             "deletion_report_email": "datenschutz@example.org"});
    let (status, body) = api.call("PUT", &settings, Some(with_target)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["deletion_report_email"], "datenschutz@example.org");
    let (status, body) = api.call("PUT", &path, Some(erasure)).await;
    assert_eq!((status, &body["link"]["settings"]["unsubscribe_mode"]), (200, &json!("erasure")), "{body}");

    // The target cannot go while a link erases.
    let without = json!({"no_statement_blocks": false, "approved_email_target": "assignment"});
    let (status, body) = api.call("PUT", &settings, Some(without)).await;
    assert_eq!((status, fields(&body)), (422, vec!["deletion_report_email".to_owned()]), "{body}");
    let kept = api.store.tenant_settings(&TenantId::new(TENANT)).await.unwrap();
    assert!(kept.deletion_report_email.is_some());
}

#[tokio::test]
async fn r_f8_r_f1_preview_then_save_starts_the_first_sync_and_unlink_stops_it() {
    let api = Api::start().await;
    api.brevo_link("rundbrief-brevo").await;
    let base = format!("/admin/tenants/{TENANT}/links/rundbrief-brevo");
    assert_eq!(api.call("GET", &format!("{base}/preview"), None).await.0, 404, "no dry run yet");

    // The dry run runs under a shadow tenant; nothing is registered at Brevo.
    assert_eq!(api.call("POST", &format!("{base}/preview"), None).await.0, 202);
    let events = api.bus.drain();
    assert!(matches!(&events[..], [BusEvent::ReconcileLink { tenant, .. }] if tenant.as_str().ends_with("~preview")));
    let (status, preview) = api.call("GET", &format!("{base}/preview"), None).await;
    assert_eq!((status, &preview["finished"]), (200, &json!(false)), "{preview}");
    assert!(api.brevo.webhooks().is_empty());

    // Saving: the account's webhook is registered at our hook URL, the first sync is announced.
    let (status, body) = api.call("POST", &format!("{base}/sync"), None).await;
    assert_eq!((status, &body["link"]["status"]), (202, &json!("linking")), "{body}");
    let hooks = api.brevo.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].url, "https://sync.example.org/hooks/brevo/gemeinde-1/brevo-main");
    assert!(api.secrets.get("brevo/brevo-main/webhook-token").await.unwrap().is_some());
    let events = api.bus.drain();
    assert_eq!(
        events,
        vec![BusEvent::ReconcileLink { tenant: TenantId::new(TENANT), link: LinkId::new("rundbrief-brevo") }]
    );
    assert_eq!(api.call("POST", &format!("{base}/sync"), None).await.0, 202, "saving twice is harmless");
    assert_eq!(api.brevo.webhooks().len(), 1);
    assert!(api.bus.drain().is_empty());

    // A syncing link keeps its list; its settings may change.
    let (status, _) = api.call("PUT", &base, Some(link_body(api.brevo.add_list("Andere"), json!({})))).await;
    assert_eq!(status, 409);
    assert_eq!(api.call("POST", &format!("{base}/confirm"), None).await.0, 409, "no run is held");

    let (status, body) = api.call("POST", &format!("{base}/unlink"), None).await;
    assert_eq!((status, &body["webhooks_removed"]), (200, &json!(true)), "{body}");
    assert_eq!(body["link"]["status"], "not_linked");
    assert!(api.brevo.webhooks().is_empty(), "the account's last syncing link took its webhook along");
    assert_eq!(api.call("POST", &format!("{base}/sync"), None).await.0, 202, "and it can be linked again");
    assert_eq!(api.brevo.webhooks().len(), 1);
}

#[tokio::test]
async fn r_a10_saving_the_settings_of_a_syncing_link_or_the_tenant_answers_with_the_re_plan_it_started() {
    let api = Api::start().await;
    let list = api.brevo_link("rundbrief-brevo").await;
    let base = format!("/admin/tenants/{TENANT}/links/rundbrief-brevo");
    let ticked = json!({"relevant_privacy": ["E-Mail"]});
    // Not syncing yet: the first sync plans everything, no re-plan.
    let (status, body) = api.call("PUT", &base, Some(link_body(list, ticked.clone()))).await;
    assert_eq!((status, &body["replan"]), (200, &Value::Null), "{body}");
    assert_eq!(api.call("POST", &format!("{base}/sync"), None).await.0, 202);
    api.bus.drain();
    let tenant = TenantId::new(TENANT);
    let replan = BusEvent::ReconcileLink { tenant: tenant.clone(), link: LinkId::new("rundbrief-brevo") };

    // Syncing: unticking "E-Mail" re-plans the link's assignments.
    let (status, body) = api.call("PUT", &base, Some(link_body(list, json!({})))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replan"], json!({"link": "rundbrief-brevo", "state": "started"}), "{body}");
    assert_eq!(api.bus.drain(), vec![replan.clone()], "the settings run is announced");
    // The same settings again, or only the unsubscribe mode: nothing that decides a verdict changed.
    let (status, body) = api.call("PUT", &base, Some(link_body(list, json!({"unsubscribe_mode": "classic"})))).await;
    assert_eq!((status, &body["replan"]), (200, &Value::Null), "{body}");
    assert!(api.bus.drain().is_empty());

    // The tenant's R-A6 setting: every syncing link is re-planned; the other setting alone re-plans none.
    let path = format!("/admin/tenants/{TENANT}/settings");
    let no_statement = json!({"no_statement_blocks": true, "approved_email_target": "assignment"});
    let (status, body) = api.call("PUT", &path, Some(no_statement)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replan"], json!([{"link": "rundbrief-brevo", "state": "started"}]), "{body}");
    assert_eq!(api.bus.drain(), vec![replan]);
    let target = json!({"no_statement_blocks": true, "approved_email_target": "standard_communication"});
    let (status, body) = api.call("PUT", &path, Some(target)).await;
    assert_eq!((status, body.get("replan")), (200, None), "{body}");
    assert!(api.bus.drain().is_empty());
}

#[tokio::test]
async fn r_c3_the_approval_queue_pages_oldest_first_and_decisions_are_idempotent() {
    let api = Api::start().await;
    api.brevo_link("rundbrief-brevo").await;
    let link = LinkId::new("rundbrief-brevo");
    let t0 = chrono::Utc::now() - chrono::Duration::days(3);
    let mut writes = Vec::new();
    for (n, name) in ["anna", "bernd", "clara"].iter().enumerate() {
        let entry = ApprovalEntry {
            link: link.clone(),
            email: Email::parse(&format!("{name}@example.org")).unwrap(),
            signup: Signup {
                first_name: Some(PersonalText::new(name.to_uppercase())),
                evidence: ConsentEvidence { source: Some("form".into()), ..Default::default() },
                ..Default::default()
            },
            first_seen: t0 + chrono::Duration::hours(n as i64),
            last_seen: t0,
            signups: 1,
            status: ApprovalStatus::Pending,
            match_command: CommandId::new(format!("match-{name}")),
            decision: None,
            created: None,
        };
        writes.push((StateWrite::Approval { entry }, None));
    }
    api.store.commit(&TenantId::new(TENANT), Commit { writes, ..Commit::default() }).await.unwrap();
    let base = format!("/admin/tenants/{TENANT}/links/rundbrief-brevo/approvals");

    let (status, page) = api.call("GET", &format!("{base}?limit=2"), None).await;
    assert_eq!(status, 200, "{page}");
    let emails =
        |page: &Value| page["entries"].as_array().unwrap().iter().map(|e| e["email"].clone()).collect::<Vec<_>>();
    assert_eq!(emails(&page), vec![json!("anna@example.org"), json!("bernd@example.org")]);
    assert_eq!(page["entries"][0]["first_name"], "ANNA");
    assert_eq!(page["entries"][0]["consent"]["source"], "form");
    let next = page["next"].as_str().unwrap();
    let (_, rest) = api.call("GET", &format!("{base}?limit=2&after={}", urlencoding::encode(next)), None).await;
    assert_eq!(emails(&rest), vec![json!("clara@example.org")]);
    assert_eq!(rest["next"], Value::Null);
    assert_eq!(api.call("GET", &format!("{base}?limit=0"), None).await.0, 400);
    assert_eq!(api.call("GET", &format!("/admin/tenants/{TENANT}/links/nope/approvals"), None).await.0, 404);

    let decisions = format!("{base}/decisions");
    let decide = |body: Value| api.call("POST", &decisions, Some(body));
    let (status, body) = decide(json!({"decision": "link", "email": "anna@example.org", "person": "p-17"})).await;
    assert_eq!((status, &body["status"]), (200, &json!("approved")), "{body}");
    let feed = api.store.commands(&TenantId::new(TENANT), 0, 10).await.unwrap();
    assert!(
        matches!(&feed[..], [(_, OptigemCommand::CreateAssignment { person: PersonChoice::Existing { person }, .. })]
        if person.as_str() == "p-17")
    );
    let (status, _) = decide(json!({"decision": "link", "email": "anna@example.org", "person": "p-17"})).await;
    assert_eq!(status, 200, "deciding twice is harmless");
    assert_eq!(api.store.commands(&TenantId::new(TENANT), 0, 10).await.unwrap().len(), 1, "one command");
    assert_eq!(decide(json!({"decision": "reject", "email": "anna@example.org"})).await.0, 409);
    assert_eq!(decide(json!({"decision": "reject", "email": "nobody@example.org"})).await.0, 404);
    let (status, body) = decide(json!({"decision": "maybe", "email": "bernd@example.org"})).await;
    assert_eq!((status, fields(&body)), (400, vec!["decision".to_owned()]), "{body}");
    assert_eq!(decide(json!({"decision": "reject", "email": "not-an-address"})).await.0, 422);
    assert_eq!(decide(json!({"decision": "create", "email": "bernd@example.org"})).await.0, 200);

    let (_, page) = api.call("GET", &base, None).await;
    assert_eq!(emails(&page), vec![json!("clara@example.org")], "decided entries leave the queue");
}

#[tokio::test]
async fn unknown_routes_and_ids_are_404() {
    let api = Api::start().await;
    for path in ["/admin", "/admin/tenants", "/admin/tenants/x/nothing", "/admin/tenants/bad%20id", "/else"] {
        assert_eq!(api.call("GET", path, None).await.0, 404, "{path}");
    }
    assert_eq!(api.call("DELETE", &format!("/admin/tenants/{TENANT}/links"), None).await.0, 404);
}

#[tokio::test]
async fn r_k2_dot_and_overlong_ids_in_admin_paths_are_404_and_store_nothing() {
    let api = Api::start().await;
    let good = json!({"no_statement_blocks": true, "approved_email_target": "standard_communication"});
    for tenant in ["..", ".", ".hidden", "a~preview"] {
        let (status, _) = api.call("PUT", &format!("/admin/tenants/{tenant}/settings"), Some(good.clone())).await;
        assert_eq!(status, 404, "{tenant}");
        let saved = api.store.tenant_settings(&TenantId::new(tenant)).await.unwrap();
        assert_eq!(saved, TenantSettings::default(), "{tenant}");
    }
    api.connect_brevo().await;
    let list = api.brevo.add_list("Rundbrief");
    for link in ["..", &"a".repeat(65)] {
        let path = format!("/admin/tenants/{TENANT}/links/{link}");
        assert_eq!(api.call("PUT", &path, Some(link_body(list, json!({})))).await.0, 404, "{link}");
    }
    assert!(api.store.links(&TenantId::new(TENANT)).await.unwrap().is_empty());
}

#[tokio::test]
async fn r_j5_admin_refusals_never_echo_a_submitted_value() {
    let api = Api::start().await;
    let path = format!("/admin/tenants/{TENANT}/settings");
    let bodies = [
        json!({"no_statement_blocks": "lena@example.org", "approved_email_target": "assignment"}),
        json!({"no_statement_blocks": true, "approved_email_target": "lena@example.org"}),
        json!({"no_statement_blocks": true, "approved_email_target": "assignment", "lena@example.org": 1}),
    ];
    for body in bodies {
        let (status, answer) = api.call("PUT", &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(!answer.to_string().contains('@'), "{answer}");
    }
    api.brevo_link("rundbrief").await;
    let decision = json!({"decision": "lena@example.org", "email": "x@y.de"});
    let (status, answer) =
        api.call("POST", &format!("/admin/tenants/{TENANT}/links/rundbrief/approvals/decisions"), Some(decision)).await;
    assert!(status == 400 || status == 404, "{status} {answer}");
    assert!(!answer.to_string().contains('@'), "{answer}");
    let link_body = json!({"newsletter": "lena@example.org", "account": "brevo-main", "list": "1"});
    let (status, answer) = api.call("PUT", &format!("/admin/tenants/{TENANT}/links/other"), Some(link_body)).await;
    assert!(status == 400 || status == 422, "{status} {answer}");
    assert!(!answer.to_string().contains('@'), "{answer}");
}

/// Whether hook-brevo's check (the intake's Brevo source over the same secrets) accepts this token at `now`.
async fn brevo_accepts(secrets: &Arc<MemorySecrets>, token: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    use optisync_ports::intake::{Hook, WebhookSource};
    let source = optisync_brevo::BrevoSource::new(secrets.clone());
    let (tenant, account) = (TenantId::new(TENANT), AccountId::new("brevo-main"));
    let authorization = format!("Bearer {token}");
    let header = |name: &str| (name == "authorization").then_some(authorization.as_str());
    source.verify(&Hook { tenant: &tenant, account: Some(&account), header: &header, body: b"{}", now }).await.is_ok()
}

async fn brevo_tokens(api: &Api) -> optisync_ports::tokens::BrevoHookTokens {
    let raw = api.secrets.get("brevo/brevo-main/webhook-token").await.unwrap().expect("a token");
    optisync_ports::tokens::BrevoHookTokens::parse(&raw).expect("readable")
}

#[tokio::test]
async fn m3_a_rotation_keeps_the_old_token_for_its_overlap_and_gives_brevo_the_new_one() {
    let t0 = chrono::Utc::now();
    let clock = Arc::new(FixedClock::new(t0));
    let api = Api::start_with(clock.clone()).await;
    api.brevo_link("rundbrief-brevo").await;
    let (status, body) = api.call("POST", &format!("/admin/tenants/{TENANT}/links/rundbrief-brevo/sync"), None).await;
    assert_eq!(status, 202, "{body}");
    let old = brevo_tokens(&api).await.current;
    assert_eq!(api.brevo.webhooks()[0].bearer_token.as_deref(), Some(old.as_str()));

    let path = format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main/webhook-token");
    let (status, body) = api.call("POST", &path, None).await;
    assert_eq!(status, 200, "{body}");
    let until = t0 + chrono::Duration::hours(24);
    assert_eq!(body["previous_valid_until"], json!(until));
    assert_eq!(body["webhooks_updated"], json!(1));
    let tokens = brevo_tokens(&api).await;
    let new = tokens.current.clone();
    assert_ne!(new, old);
    assert!(!body.to_string().contains(&old) && !body.to_string().contains(&new), "the answer holds no token");
    // Brevo's webhook now carries the new token (the fake keeps what the update call set).
    let hooks = api.brevo.webhooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].bearer_token.as_deref(), Some(new.as_str()));
    assert_eq!(hooks[0].url, "https://sync.example.org/hooks/brevo/gemeinde-1/brevo-main", "nothing else changed");

    // During the overlap both are accepted; at its end only the new one.
    let during = t0 + chrono::Duration::hours(23);
    assert!(brevo_accepts(&api.secrets, &old, during).await);
    assert!(brevo_accepts(&api.secrets, &new, during).await);
    assert!(!brevo_accepts(&api.secrets, "neither", during).await);
    assert!(!brevo_accepts(&api.secrets, &old, until).await);
    assert!(brevo_accepts(&api.secrets, &new, until).await);

    // Another rotation while the overlap runs is refused and changes nothing.
    clock.set(during);
    let (status, body) = api.call("POST", &path, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(brevo_tokens(&api).await, tokens);

    // Retiring the previous token ends the overlap at once; then rotating works again.
    let (status, body) = api.call("DELETE", &format!("{path}/previous"), None).await;
    assert_eq!((status, &body["previous_valid_until"]), (200, &Value::Null), "{body}");
    assert!(!brevo_accepts(&api.secrets, &old, during).await);
    assert!(brevo_accepts(&api.secrets, &new, during).await);
    assert_eq!(api.call("DELETE", &format!("{path}/previous"), None).await.0, 200, "retiring twice is harmless");
    let (status, body) = api.call("POST", &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["previous_valid_until"], json!(during + chrono::Duration::hours(24)));
    assert!(brevo_accepts(&api.secrets, &new, during).await, "the token before is the previous one now");
}

#[tokio::test]
async fn m3_a_rotation_brevo_refuses_keeps_the_old_token_alone() {
    let api = Api::start().await;
    api.brevo_link("rundbrief-brevo").await;
    assert_eq!(api.call("POST", &format!("/admin/tenants/{TENANT}/links/rundbrief-brevo/sync"), None).await.0, 202);
    let before = api.secrets.get("brevo/brevo-main/webhook-token").await.unwrap();
    api.brevo.inject_failures(&[400]);
    let (status, body) =
        api.call("POST", &format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main/webhook-token"), None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(api.secrets.get("brevo/brevo-main/webhook-token").await.unwrap(), before);
}

#[tokio::test]
async fn m3_another_tenants_or_an_unknown_account_is_404_and_nothing_changes() {
    let api = Api::start().await;
    api.connect_brevo().await;
    api.secrets.put("brevo/brevo-main/webhook-token", "kept-token").await.unwrap();
    for path in [
        "/admin/tenants/gemeinde-2/accounts/brevo/brevo-main/webhook-token".to_owned(),
        format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-other/webhook-token"),
        format!("/admin/tenants/{TENANT}/accounts/brevo/../webhook-token"),
    ] {
        let (status, body) = api.call("POST", &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        let (status, body) = api.call("DELETE", &format!("{path}/previous"), None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(api.secrets.get("brevo/brevo-main/webhook-token").await.unwrap().as_deref(), Some("kept-token"));
    // The plain form of before is read as the current token: a rotation of an account without a syncing
    // link updates no webhook and keeps it valid for the overlap.
    let (status, body) =
        api.call("POST", &format!("/admin/tenants/{TENANT}/accounts/brevo/brevo-main/webhook-token"), None).await;
    assert_eq!((status, &body["webhooks_updated"]), (200, &json!(0)), "{body}");
    assert_eq!(brevo_tokens(&api).await.previous.as_deref(), Some("kept-token"));
}

/// R-J7: Max Muster's state on the Brevo link "Rundbrief": on the list, with his assignment A-1 that
/// ended with April 2024 in the mirror; the fake Brevo holds his contact.
/// The mirror entry of an assignment that uses `email`, with this verdict, subscribed at `at`.
fn mirror_entry(
    snapshot: Assignment,
    email: &Email,
    reasons: Vec<rules::InactiveReason>,
    at: chrono::DateTime<chrono::Utc>,
) -> MirrorEntry {
    MirrorEntry {
        id: snapshot.id.clone(),
        version: snapshot.version,
        email: Some(email.clone()),
        verdict: rules::Verdict { reasons },
        snapshot: Some(snapshot),
        next_transition: None,
        subscribed_at: Some(at),
        end_requested: None,
        email_since: None,
    }
}

async fn max_on_rundbrief(api: &Api) -> i64 {
    let list = api.brevo_link("rundbrief-brevo").await;
    api.brevo.add_contact("max@example.org", serde_json::Map::new(), &[list]);
    let link = LinkId::new("rundbrief-brevo");
    let at = chrono::Utc::now() - chrono::Duration::days(30);
    let mut snapshot = optisync_testkit::build::assignment("A-1", "rundbrief", "max@example.org", at);
    snapshot.end = Some("2024-04".parse().unwrap());
    let email = Email::parse("max@example.org").unwrap();
    let entry =
        mirror_entry(snapshot, &email, vec![rules::InactiveReason::EndPassed { end: "2024-04".parse().unwrap() }], at);
    let state =
        RecipientState { listed: true, active: true, linked: true, subscribed_at: Some(at), ..Default::default() };
    let writes = vec![
        (StateWrite::Mirror { link: link.clone(), entry: Box::new(entry) }, None),
        (StateWrite::Recipient { link, email, state }, None),
    ];
    api.store.commit(&TenantId::new(TENANT), Commit { writes, ..Commit::default() }).await.unwrap();
    list
}

#[tokio::test]
async fn r_j7_subject_lookup_takes_the_address_in_the_body_and_answers_per_link() {
    let api = Api::start().await;
    max_on_rundbrief(&api).await;
    let path = format!("/admin/tenants/{TENANT}/subjects/lookup");
    let (status, body) = api.call("POST", &path, Some(json!({"email": "max@example.org"}))).await;
    assert_eq!(status, 200, "{body}");
    let link = &body["links"][0];
    assert_eq!(link["link"], "rundbrief-brevo");
    assert_eq!(link["recipient"]["listed"], true);
    assert_eq!(link["assignments"][0]["id"], "A-1");
    assert_eq!(link["assignments"][0]["reasons"][0]["code"], "end_passed");
    assert!(link["assignments"][0]["reasons"][0]["text"].as_str().unwrap().contains("April 2024"), "{body}");
    assert_eq!(body["erased"], Value::Null);

    // An address the service does not know: 200 with empty sections, not 404.
    let (status, body) = api.call("POST", &path, Some(json!({"email": "erika.muster@example.org"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["links"][0]["recipient"], Value::Null);
    assert_eq!(body["links"][0]["assignments"], json!([]));
    assert_eq!(body["links"][0]["audit"], json!([]));

    // A malformed address is 422 naming the field, without echoing it (R-J5); other bodies are 400.
    let (status, body) = api.call("POST", &path, Some(json!({"email": "max-at-example"}))).await;
    assert_eq!((status, fields(&body)), (422, vec!["email".to_owned()]), "{body}");
    assert!(!body.to_string().contains("max-at-example"), "{body}");
    let (status, body) = api.call("POST", &path, Some(json!({"mail": "max@example.org"}))).await;
    assert_eq!(status, 400, "{body}");
    // No GET with the address in the query: the route does not exist.
    assert_eq!(api.call("GET", &format!("{path}?email=max@example.org"), None).await.0, 404);
}

#[tokio::test]
async fn r_j7_subject_erase_deletes_the_brevo_contact_and_a_second_request_finds_nothing() {
    let api = Api::start().await;
    max_on_rundbrief(&api).await;
    assert!(api.brevo.contact("max@example.org").is_some());
    let path = format!("/admin/tenants/{TENANT}/subjects/erase");
    let (status, body) = api.call("POST", &path, Some(json!({"email": "max@example.org"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["erased"], true);
    let request = body["request"].as_str().unwrap().to_owned();
    let link = &body["links"][0];
    assert_eq!(link["link"], "rundbrief-brevo");
    assert!(link["deleted"].as_array().unwrap().contains(&json!({"system": "brevo", "item": "contact"})), "{body}");
    assert!(link["kept"].as_array().unwrap().iter().any(|k| k["item"] == "keyed_hash"), "{body}");
    assert!(api.brevo.contact("max@example.org").is_none(), "deleted in Brevo");
    let feed = api.store.commands(&TenantId::new(TENANT), 0, 100).await.unwrap();
    assert!(
        feed.iter().any(|(_, c)| matches!(c, OptigemCommand::ErasureReport { ended, .. } if ended.as_str() == request)),
        "{feed:?}"
    );

    let (status, body) = api.call("POST", &path, Some(json!({"email": "max@example.org"}))).await;
    assert_eq!((status, &body["erased"], &body["links"]), (200, &json!(false), &json!([])), "{body}");
    let (status, body) = api.call("POST", &path, Some(json!({"email": "nope"}))).await;
    assert_eq!((status, fields(&body)), (422, vec!["email".to_owned()]), "{body}");
}

fn erasure_report(n: u32, day: u32) -> OptigemCommand {
    use chrono::TimeZone;
    OptigemCommand::ErasureReport {
        id: CommandId::new(format!("erasure-{n}")),
        link: LinkId::new("rundbrief"),
        newsletter: NewsletterId::new("NL-1"),
        email: Email::parse(&format!("max.muster{n}@example.com")).unwrap(),
        ended: CommandId::new(format!("end-{n}")),
        deleted: vec![ErasedItem { system: "cleverreach".into(), item: "receiver".into() }],
        kept: vec![KeptItem { system: "optisync".into(), item: "keyed_hash".into(), reason: "R-J3".into() }],
        notify: None,
        at: chrono::Utc.with_ymd_and_hms(2024, 5, day, 10, 0, 0).unwrap(),
    }
}

/// R-J2: the tenant's deletion reports are listed newest first, paged, only the tenant's own.
#[tokio::test]
async fn r_j2_the_admin_api_lists_a_tenants_deletion_reports_newest_first() {
    let api = Api::start().await;
    let commands = (1..=3).map(|n| erasure_report(n, 10 + n)).collect();
    api.store.commit(&TenantId::new(TENANT), Commit { commands, ..Default::default() }).await.unwrap();
    api.store
        .commit(&TenantId::new("gemeinde-2"), Commit { commands: vec![erasure_report(9, 20)], ..Default::default() })
        .await
        .unwrap();
    let base = format!("/admin/tenants/{TENANT}/erasure-reports");
    let (status, body) = api.call("GET", &format!("{base}?limit=2"), None).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["reports"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["erasure-3", "erasure-2"]);
    let first = &body["reports"][0];
    assert_eq!(first["email"], "max.muster3@example.com");
    assert_eq!(first["link"], "rundbrief");
    assert_eq!(first["deleted"][0]["item"], "receiver");
    assert_eq!(first["kept"][0]["item"], "keyed_hash");
    assert_eq!(first["at"], "2024-05-13T10:00:00Z");
    let next = body["next"].as_str().expect("a next page");
    let (status, rest) = api.call("GET", &format!("{base}?limit=2&after={}", urlencode(next)), None).await;
    assert_eq!(status, 200, "{rest}");
    let ids: Vec<&str> = rest["reports"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["erasure-1"]);
    assert!(rest["next"].is_null());
    let (_, other) = api.call("GET", "/admin/tenants/gemeinde-3/erasure-reports", None).await;
    assert_eq!(other["reports"], json!([]));
    assert_eq!(api.call("GET", &format!("{base}?limit=0"), None).await.0, 400);
}

fn urlencode(s: &str) -> String {
    s.replace('#', "%23")
}

/// Records the subscriptions the admin API asked for.
#[derive(Default)]
struct Subscriptions(std::sync::Mutex<Vec<(String, String, Option<String>)>>);

#[async_trait::async_trait]
impl optisync_ports::ReportSubscriptions for Subscriptions {
    async fn subscribe(
        &self,
        tenant: &TenantId,
        email: &Email,
        previous: Option<&Email>,
    ) -> Result<(), optisync_ports::NotifyError> {
        self.0.lock().unwrap().push((tenant.to_string(), email.key().to_owned(), previous.map(|p| p.key().to_owned())));
        Ok(())
    }
}

/// R-J2: saving the settings with a `deletion_report_email` subscribes it to the reports; a changed
/// address names the one before.
#[tokio::test]
async fn r_j2_saving_a_deletion_report_email_subscribes_it() {
    let mut api = Api::start().await;
    let subscriptions = Arc::new(Subscriptions::default());
    api.deps.admin = api.deps.admin.clone().with_report_subscriptions(subscriptions.clone());
    let path = format!("/admin/tenants/{TENANT}/settings");
    let body = |email: &str| json!({"no_statement_blocks": false, "approved_email_target": "assignment", "deletion_report_email": email});
    assert_eq!(api.call("PUT", &path, Some(body("datenschutz@gemeinde.example"))).await.0, 200);
    assert_eq!(api.call("PUT", &path, Some(body("dsb@gemeinde.example"))).await.0, 200);
    let got = subscriptions.0.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            (TENANT.to_owned(), "datenschutz@gemeinde.example".to_owned(), None),
            (TENANT.to_owned(), "dsb@gemeinde.example".to_owned(), Some("datenschutz@gemeinde.example".to_owned())),
        ]
    );
}

#[path = "api/console.rs"]
mod console;
