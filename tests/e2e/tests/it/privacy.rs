//! R-J5: refusals are where personal data most easily slips into a log — a parser that quotes the value
//! it could not read, a reason passed on as it came. Every HTTP function here gets requests carrying an
//! e-mail address and a name in the wrong places; each is refused with a 4xx (or, an ESP event the hook
//! does not know, taken and ignored), and no log line
//! of the whole exchange (at `debug`, JSON as in Lambda) holds the address or the name.
//! (`tests/run` also scans every log line and metric of the whole end-to-end suite: `pii-scan`.)

use optisync_connector::signature::{SignedRequest, SigningSecret, sign, sign_request};
use optisync_e2e::{ADMIN_TOKEN, BREVO_HOOK_TOKEN, CLEVERREACH_ACCOUNT, CLEVERREACH_CALL_TOKEN, SIGNING_SECRET, Stack};
use std::io::Write;
use std::sync::{Arc, Mutex};

const EMAIL: &str = "Lena.Schmidt@Example.org";
const NAME: &str = "Schmidt";

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the stack's HTTP server runs on it too, so the subscriber sees every function's lines.
#[tokio::test(flavor = "current_thread")]
async fn r_j5_requests_with_personal_data_in_the_wrong_places_are_refused_and_logged_without_it() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = Stack::start().await;
    let http = reqwest::Client::new();
    let api = &stack.api;
    let tenant = stack.tenant.as_str();
    let mut statuses = Vec::new();
    let mut send = |status: u16, what: &str| statuses.push((status, what.to_owned()));

    // hook-brevo: the wrong token; a value of the wrong type; a body that is not JSON.
    let brevo = format!("{api}/hooks/brevo/{tenant}/brevo-main");
    for (token, body) in [
        ("wrong", format!(r#"{{"event":"unsubscribed","email":"{EMAIL}","list_id":[2]}}"#)),
        (BREVO_HOOK_TOKEN, format!(r#"{{"event":"unsubscribed","email":"{EMAIL}","list_id":["{NAME}"]}}"#)),
        (BREVO_HOOK_TOKEN, format!(r#"{{"event":"unsubscribed","email":["{EMAIL}"],"ts_event":"{NAME}"}}"#)),
        (BREVO_HOOK_TOKEN, format!("{EMAIL} {NAME} unsubscribed")),
    ] {
        let r = http.post(&brevo).bearer_auth(token).body(body).send().await.expect("reachable");
        send(r.status().as_u16(), "hook-brevo");
    }

    // hook-cleverreach: the wrong call token; a payload of the wrong shape.
    let cleverreach = format!("{api}/hooks/cleverreach/{tenant}/{CLEVERREACH_ACCOUNT}");
    for (token, body) in [
        ("wrong", format!(r#"{{"event":"receiver.unsubscribed","payload":{{"email":"{EMAIL}"}}}}"#)),
        (
            CLEVERREACH_CALL_TOKEN,
            format!(r#"{{"event":"receiver.unsubscribed","payload":{{"group_id":["{EMAIL}"],"pool_id":"{NAME}"}}}}"#),
        ),
        (CLEVERREACH_CALL_TOKEN, format!(r#"{{"event":{{"{EMAIL}":1}},"payload":"{NAME}"}}"#)),
    ] {
        let r = http.post(&cleverreach).header("x-cr-calltoken", token).body(body).send().await.expect("reachable");
        send(r.status().as_u16(), "hook-cleverreach");
    }

    // hook-optigem and connector-api: unsigned, then signed but with values of the wrong type.
    let secret = SigningSecret::parse(SIGNING_SECRET).expect("secret");
    // Change events are plain Standard Webhooks; connector-api signs the method and path too (M1).
    let signed = |id: &str, method: &str, path: &str, body: &str| {
        let ts = chrono::Utc::now().timestamp();
        let signature = if path.ends_with("/events") {
            sign(&secret, id, ts, body.as_bytes())
        } else {
            sign_request(&secret, id, ts, &SignedRequest { method, path, query: None }, body.as_bytes())
        };
        (id.to_owned(), ts.to_string(), signature)
    };
    let events = format!(
        r#"{{"events":[{{"type":"assignment.changed","assignment":{{"id":7,"person":{{"first_name":"Lena","last_name":"{NAME}","emails":[{{"email":"{EMAIL}","priority":"{NAME}"}}]}}}}}}]}}"#
    );
    let snapshot = format!(r#"{{"assignments":[{{"person":{{"emails":"{EMAIL}","last_name":["{NAME}"]}}}}]}}"#);
    for (path, method, body, what) in [
        (format!("/connector/{tenant}/events"), "POST", events.clone(), "hook-optigem"),
        (format!("/connector/{tenant}/snapshots/s-1/pages/1"), "PUT", snapshot.clone(), "connector-api"),
    ] {
        let url = format!("{api}{path}");
        let unsigned = http.request(method.parse().expect("method"), &url).body(body.clone()).send().await;
        send(unsigned.expect("reachable").status().as_u16(), what);
        let (id, ts, signature) = signed(&format!("msg-{what}"), method, &path, &body);
        let r = http
            .request(method.parse().expect("method"), &url)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("reachable");
        send(r.status().as_u16(), what);
    }

    // admin-api: a link whose mapping names an address, a decision with the address in the wrong place.
    let admin = format!("{api}/admin/tenants/{tenant}");
    let link = format!(
        r#"{{"newsletter":"NL-1","esp":{{"provider":"brevo","account":"brevo-main"}},"list":"{EMAIL}","settings":{{"mapping":{{"last_name":"{NAME}"}}}}}}"#
    );
    let decision = format!(r#"{{"email":{{"address":"{EMAIL}"}},"decision":"{NAME}"}}"#);
    for (url, body) in
        [(format!("{admin}/links/{NAME}"), link), (format!("{admin}/links/rundbrief/approvals/decisions"), decision)]
    {
        let method = if url.ends_with("decisions") { reqwest::Method::POST } else { reqwest::Method::PUT };
        let r = http
            .request(method, &url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("reachable");
        send(r.status().as_u16(), "admin-api");
    }

    // Malformed for optisync is refused; an event the ESP hook does not know is taken and ignored (200).
    for (status, what) in &statuses {
        assert!(*status < 500 && *status != 429, "{what} answered {status}: {statuses:?}");
    }
    let refused = statuses.iter().filter(|(s, _)| (400..500).contains(s)).count();
    assert!(refused >= 10, "most are refused: {statuses:?}");
    drop(stack);
    let log = String::from_utf8(lines.0.lock().expect("buffer").clone()).expect("utf-8");
    assert!(log.lines().count() >= statuses.len(), "every refusal is logged:\n{log}");
    assert!(log.contains("refused"), "the refusals are in the log:\n{log}");
    let lower = log.to_lowercase();
    assert!(!lower.contains(&EMAIL.to_lowercase()), "an e-mail address in the log:\n{log}");
    assert!(!log.contains(NAME), "a name in the log:\n{log}");
    assert!(!log.contains('@'), "something like an address in the log:\n{log}");
}
