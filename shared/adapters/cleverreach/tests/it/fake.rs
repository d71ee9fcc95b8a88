//! The fake's CleverReach quirks, checked with raw HTTP (no client in between).

use optisync_fakes::cleverreach::{FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FakeCleverReach};
use serde_json::{Value, json};

struct Raw {
    fake: FakeCleverReach,
    http: reqwest::Client,
    token: String,
    group: String,
}

async fn raw() -> Raw {
    let fake = FakeCleverReach::start().await;
    let token = fake.issue_tokens().access_token.expose().to_owned();
    let group = fake.add_group("G");
    Raw { fake, http: reqwest::Client::new(), token, group }
}

impl Raw {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.fake.base_url())).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null))
    }

    async fn upsert(&self, items: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, &format!("/v3/groups.json/{}/receivers/upsert", self.group), Some(items)).await
    }

    async fn get(&self, email: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/v3/groups.json/{}/receivers/{email}", self.group), None).await.1
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn activated_does_not_override_a_deactivation_but_deactivated_zero_reactivates() {
    let r = raw().await;
    let t = now();
    r.fake.add_receiver(&r.group, "u@example.com", t - 100, 0, &[]);
    r.fake.unsubscribe_via_link(&r.group, "u@example.com");
    let (status, out) = r.upsert(json!([{"email": "u@example.com", "activated": t}])).await;
    assert_eq!(status, 200);
    assert_eq!(out[0]["status"], "upsert success");
    assert!(out[0]["id"].is_string(), "ids are strings");
    assert_eq!(r.get("u@example.com").await["active"], false);

    r.upsert(json!([{"email": "u@example.com", "deactivated": 0}])).await;
    let v = r.get("u@example.com").await;
    assert_eq!(v["active"], true);
    assert_eq!(v["deactivated"], 0);

    r.upsert(json!([{"email": "u@example.com", "activated": "0"}])).await;
    assert_eq!(r.get("u@example.com").await["active"], false, "activated 0 (as string) deactivates");
}

#[tokio::test]
async fn new_receiver_states() {
    let r = raw().await;
    let t = now();
    r.upsert(json!([
        {"email": "a@example.com"},
        {"email": "b@example.com", "activated": 0},
        {"email": "c@example.com", "deactivated": t},
        {"email": "d@example.com", "deactivated": 0}
    ]))
    .await;
    assert_eq!(r.get("a@example.com").await["active"], true);
    assert_eq!(r.get("b@example.com").await["active"], false);
    assert_eq!(r.get("c@example.com").await["active"], false);
    assert_eq!(r.get("d@example.com").await["active"], true);
}

#[tokio::test]
async fn quirks_strings_bare_errors_literal_true_and_limits() {
    let r = raw().await;
    let (_, out) = r.upsert(json!([{"email": "not-an-address"}, {"email": "ok@example.com"}])).await;
    assert_eq!(out[0], json!("invalid address 'not-an-address';"));
    assert!(out[1].is_object());

    let (status, list) =
        r.call(reqwest::Method::GET, &format!("/v3/groups.json/{}/receivers?pagesize=10", r.group), None).await;
    assert_eq!(status, 200);
    assert!(list[0]["registered"].is_string(), "list timestamps arrive as strings");
    assert_eq!(list[0]["attributes"], json!([]), "empty maps arrive as []");

    let (status, _) =
        r.call(reqwest::Method::GET, &format!("/v3/groups/{}/receivers?pagesize=5001", r.group), None).await;
    assert_eq!(status, 400);

    let (status, body) = r
        .call(reqwest::Method::PUT, &format!("/v3/groups.json/{}/receivers/ok@example.com/setinactive", r.group), None)
        .await;
    assert_eq!((status, body), (200, json!(true)));

    r.fake.set_max_batch_size(1);
    let (status, body) = r.upsert(json!([{"email": "x@example.com"}, {"email": "y@example.com"}])).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], 413);

    let (status, _) = r.call(reqwest::Method::GET, "/v3/groups.json/424242/receivers", None).await;
    assert_eq!(status, 404);
    assert!(r.fake.mutating_calls() >= 3);
}

#[tokio::test]
async fn token_endpoint_accepts_json_and_form_and_rotates() {
    let r = raw().await;
    let refresh = r.fake.current_refresh_token().unwrap().expose().to_owned();
    let url = format!("{}/oauth/token.php", r.fake.base_url());
    let resp = r
        .http
        .post(&url)
        .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh,
            "client_id": FAKE_CLIENT_ID, "client_secret": FAKE_CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let rotated = v["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh);

    // The old refresh token is void now.
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id={FAKE_CLIENT_ID}&client_secret={FAKE_CLIENT_SECRET}"
    );
    let resp =
        r.http.post(&url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Wrong client secret.
    let resp = r
        .http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials", "client_id": FAKE_CLIENT_ID, "client_secret": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Expired access token -> 401 on the API.
    r.fake.expire_access_tokens();
    let (status, body) = r.call(reqwest::Method::GET, "/v3/groups.json", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
}

#[tokio::test]
async fn r_e9_the_account_setting_blacklists_a_link_unsubscriber_and_removes_the_receiver_from_every_group() {
    let r = raw().await;
    let other = r.fake.add_group("Gebetsbrief");
    for group in [&r.group, &other] {
        r.fake.add_receiver(group, "max.muster@example.com", now() - 100, 0, &[]);
    }
    r.fake.set_blacklist_unsubscribers(true);
    r.fake.unsubscribe_via_link(&r.group, "max.muster@example.com");

    let (status, list) = r.call(reqwest::Method::GET, "/v3/blacklist.json", None).await;
    assert_eq!(status, 200);
    let entries = list.as_array().expect("an array");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["email"], "max.muster@example.com");
    assert!(entries[0]["stamp"].as_str().and_then(|s| s.parse::<i64>().ok()).is_some_and(|s| s >= now() - 5));
    assert!(entries[0].get("comment").is_some() && entries[0].get("isLocked").is_some());
    for group in [&r.group, &other] {
        let path = format!("/v3/groups.json/{group}/receivers/max.muster@example.com");
        assert_eq!(r.call(reqwest::Method::GET, &path, None).await.0, 404, "out of every group");
    }
    let one = r.call(reqwest::Method::GET, "/v3/blacklist/max.muster%40example.com", None).await;
    assert_eq!(one.0, 200);

    // Without the setting an unsubscribe stays in its group; the blacklist takes entries through the API
    // and gives them up again.
    r.fake.set_blacklist_unsubscribers(false);
    r.fake.add_receiver(&r.group, "erika@example.com", now() - 100, 0, &[]);
    r.fake.unsubscribe_via_link(&r.group, "erika@example.com");
    assert_eq!(r.get("erika@example.com").await["active"], false);
    let body = json!({"email": "lena@example.com", "comment": "Wunsch"});
    assert_eq!(r.call(reqwest::Method::POST, "/v3/blacklist.json", Some(body)).await.0, 200);
    let emails = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|e| e["email"].as_str().unwrap().to_owned()).collect()
    };
    let (_, list) = r.call(reqwest::Method::GET, "/v3/blacklist.json", None).await;
    assert_eq!(emails(&list), ["lena@example.com", "max.muster@example.com"]);
    assert_eq!(r.call(reqwest::Method::DELETE, "/v3/blacklist.json/lena%40example.com", None).await.0, 200);
    assert_eq!(r.call(reqwest::Method::GET, "/v3/blacklist/lena%40example.com", None).await.0, 404);
    // Like every other call it needs the token.
    let anonymous = reqwest::get(format!("{}/v3/blacklist.json", r.fake.base_url())).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn r_e9_a_hard_bounce_blocks_without_deactivating_and_the_bounces_are_paged() {
    let r = raw().await;
    r.fake.add_receiver(&r.group, "max.muster@example.com", now() - 100, 0, &[]);
    let (at, until) = (now() - 60, now() + 86_400);
    r.fake.hard_bounce("max.muster@example.com", at, until);
    for i in 0..4 {
        r.fake.hard_bounce(&format!("b{i}@example.com"), at, until);
    }
    let receiver = r.get("max.muster@example.com").await;
    assert_eq!(receiver["active"], true, "blocked, not deactivated");
    assert_eq!(receiver["bounced"].as_i64(), Some(at));

    let page = |n: usize| format!("/v3/bounces.json?page={n}&pagesize=2");
    let (status, first) = r.call(reqwest::Method::GET, &page(0), None).await;
    assert_eq!(status, 200);
    let first = first.as_array().unwrap().clone();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["email"], "max.muster@example.com");
    assert_eq!(first[0]["category"], "hardbounce");
    assert_eq!(first[0]["expires_by"], until.to_string());
    assert_eq!(first[0]["last_update"], at.to_string());
    let lengths: Vec<usize> = page_lengths(&r, &page).await;
    assert_eq!(lengths, [2, 2, 1], "page from 0; the short page is the last");
    assert_eq!(r.call(reqwest::Method::GET, "/v3/bounces.json?pagesize=0", None).await.0, 400);
}

async fn page_lengths(r: &Raw, page: &dyn Fn(usize) -> String) -> Vec<usize> {
    let mut out = Vec::new();
    for n in 0..3 {
        out.push(r.call(reqwest::Method::GET, &page(n), None).await.1.as_array().map_or(0, Vec::len));
    }
    out
}
