//! A fake of a Cognito user pool's hosted sign-in for the console's tests: `GET /oauth2/authorize`
//! issues a code for the user the test chose (redirecting back with `code` and `state`, as the hosted
//! pages do after a successful sign-in), and `POST /oauth2/token` exchanges it once, only with the PKCE
//! verifier whose S256 challenge the authorize request carried (RFC 7636), for an ID token with the
//! user's claims (`cognito:groups`, `custom:tenant`, the nonce). The token is unsigned: the console
//! receives it straight from the token endpoint and checks its claims.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The user the next sign-in signs in as.
#[derive(Debug, Clone)]
pub struct FakeUser {
    /// The opaque id.
    pub sub: String,
    /// Groups.
    pub groups: Vec<String>,
    /// The `custom:tenant` attribute.
    pub tenant: Option<String>,
}

struct Pending {
    user: FakeUser,
    challenge: String,
    nonce: String,
    redirect_uri: String,
    client_id: String,
}

#[derive(Default)]
struct Pool {
    user: Option<FakeUser>,
    codes: HashMap<String, Pending>,
    exchanges: usize,
}

/// The fake user pool on loopback.
pub struct FakeCognito {
    base_url: String,
    issuer: String,
    pool: Arc<Mutex<Pool>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCognito {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct Shared {
    pool: Arc<Mutex<Pool>>,
    issuer: String,
}

impl FakeCognito {
    /// Starts the fake.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake Cognito");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let issuer = format!("{base_url}/pool");
        let pool = Arc::new(Mutex::new(Pool::default()));
        let app = axum::Router::new()
            .route("/oauth2/authorize", axum::routing::get(authorize))
            .route("/oauth2/token", axum::routing::post(token))
            .with_state(Shared { pool: pool.clone(), issuer: issuer.clone() });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base_url, issuer, pool, server }
    }

    /// The hosted sign-in's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The user pool's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Who the next sign-in is.
    pub fn sign_in_as(&self, user: FakeUser) {
        self.pool.lock().expect("pool").user = Some(user);
    }

    /// How many codes were exchanged.
    pub fn exchanges(&self) -> usize {
        self.pool.lock().expect("pool").exchanges
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

async fn authorize(State(s): State<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.response_type != "code" || q.code_challenge_method != "S256" {
        return (StatusCode::BAD_REQUEST, "unsupported_response_type").into_response();
    }
    let mut pool = s.pool.lock().expect("pool");
    let Some(user) = pool.user.clone() else { return (StatusCode::UNAUTHORIZED, "no user").into_response() };
    let code = B64.encode(rand::random::<[u8; 16]>());
    let back = format!("{}?code={}&state={}", q.redirect_uri, code, urlencoding::encode(&q.state));
    pool.codes.insert(
        code,
        Pending {
            user,
            challenge: q.code_challenge,
            nonce: q.nonce,
            redirect_uri: q.redirect_uri,
            client_id: q.client_id,
        },
    );
    Redirect::to(&back).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
}

async fn token(State(s): State<Shared>, Form(f): Form<TokenForm>) -> Response {
    let mut pool = s.pool.lock().expect("pool");
    // A code is used once, whatever the outcome.
    let Some(p) = pool.codes.remove(&f.code) else { return invalid_grant() };
    let verified = B64.encode(Sha256::digest(f.code_verifier.as_bytes())) == p.challenge;
    if f.grant_type != "authorization_code"
        || f.client_id != p.client_id
        || f.redirect_uri != p.redirect_uri
        || !verified
    {
        return invalid_grant();
    }
    pool.exchanges += 1;
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "iss": s.issuer, "aud": p.client_id, "sub": p.user.sub, "token_use": "id",
        "iat": now, "exp": now + 3600, "nonce": p.nonce, "cognito:groups": p.user.groups,
    });
    if let Some(t) = &p.user.tenant {
        claims["custom:tenant"] = serde_json::json!(t);
    }
    let jwt = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), B64.encode(claims.to_string()));
    axum::Json(serde_json::json!({"id_token": jwt, "access_token": "a", "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

fn invalid_grant() -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "invalid_grant"}))).into_response()
}
