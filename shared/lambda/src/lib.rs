//! What every Lambda function shares, so each `main` stays a few lines of wiring.

pub mod config;
pub mod intake;
pub mod telemetry;

pub use config::{Aws, Config, ConfigError};
use lambda_http::{Body, Request, RequestExt, Response};

/// A required setting from the environment, with an error that names it.
pub fn env(name: &str) -> Result<String, lambda_http::Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// An optional setting from the environment.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A query parameter of the request, decoded (`+` and `%xx`); the first if it is given twice.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| urlencoding::decode(&v.replace('+', " ")).ok().map(|v| v.into_owned()))
}

/// A JSON response.
pub fn json_response(status: u16, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("a status and a header always make a valid response")
}

/// A 429 that tells the sender when to retry.
pub fn retry_later(seconds: u64, body: serde_json::Value) -> Response<Body> {
    let mut response = json_response(429, body);
    response.headers_mut().insert("retry-after", seconds.into());
    response
}

/// A refusal: `{"error": error}` with the status; a 429 also tells the sender when to retry.
pub fn error_response(status: u16, retry_after_secs: u64, error: serde_json::Value) -> Response<Body> {
    let body = serde_json::json!({ "error": error });
    if status == 429 { retry_later(retry_after_secs, body) } else { json_response(status, body) }
}

/// Tenant and account of an ESP hook: from the route's path parameters, or from the path
/// `/hooks/{provider}/{tenant}/{account}` (the local server passes none). Both must be ids by the domain's
/// grammar (R-K2), else there is no route (404 before any secret lookup or store access, T27).
pub fn hook_route(req: &Request, provider: &str) -> Option<(String, String)> {
    let params = req.path_parameters();
    let (tenant, account) = if let (Some(t), Some(a)) = (params.first("tenant"), params.first("account")) {
        (t.to_owned(), a.to_owned())
    } else {
        let path = req.uri().path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["hooks", p, tenant, account] if *p == provider => ((*tenant).to_owned(), (*account).to_owned()),
            _ => return None,
        }
    };
    let ok = optisync_domain::TenantId::parse(&tenant).is_ok() && optisync_domain::AccountId::parse(&account).is_ok();
    ok.then_some((tenant, account))
}

/// A name taken from a request (an event type) as it may appear in a log: only when it looks like a name
/// (letters, digits, `_`, `.`, `-`, at most 40), else `"<unrecognised>"` — a crafted name could carry an
/// e-mail address (R-J5).
pub fn loggable_name(name: &str) -> &str {
    let plain = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if plain { name } else { "<unrecognised>" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        lambda_http::http::Request::builder().uri(path).body(Body::Empty).unwrap()
    }

    #[test]
    fn r_k2_hook_paths_with_bad_ids_have_no_route() {
        assert_eq!(
            hook_route(&get("/hooks/brevo/demo/brevo-main"), "brevo"),
            Some(("demo".into(), "brevo-main".into()))
        );
        let long = "a".repeat(300);
        for path in [
            "/hooks/brevo/a%23b/acct",
            "/hooks/brevo/../acct",
            "/hooks/brevo/demo/a~preview",
            &format!("/hooks/brevo/{long}/x"),
        ] {
            assert_eq!(hook_route(&get(path), "brevo"), None, "{path}");
        }
        assert_eq!(hook_route(&get("/hooks/cleverreach/demo/cr-main"), "brevo"), None);
    }

    #[test]
    fn responses_carry_json_and_retry_after() {
        let r = retry_later(5, serde_json::json!({"error": {"problem": "busy"}}));
        assert_eq!(
            (r.status().as_u16(), &r.headers()["retry-after"], &r.headers()["content-type"]),
            (429, &"5".parse().unwrap(), &"application/json".parse().unwrap())
        );
        assert!(env("OPTISYNC_SURELY_NOT_SET").unwrap_err().to_string().contains("OPTISYNC_SURELY_NOT_SET"));
    }

    #[test]
    fn r_j5_only_plain_names_reach_a_log() {
        assert_eq!(loggable_name("receiver.updated"), "receiver.updated");
        assert_eq!(loggable_name("hard_bounce"), "hard_bounce");
        assert_eq!(loggable_name("max.muster@example.com"), "<unrecognised>");
        assert_eq!(loggable_name(""), "<unrecognised>");
        assert_eq!(loggable_name(&"a".repeat(41)), "<unrecognised>");
    }
}
