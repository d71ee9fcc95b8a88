//! The admin API end to end, over HTTP on the local server: a Brevo link is created with a mapping,
//! previewed (R-F8), saved (R-F1), its first sync finishes, a signup from the list is decided in the
//! approval queue (R-C3) and the assignment appears in the simulated OPTIGEM. A CleverReach account is
//! connected by OAuth (R-H1), a segment link warns (R-G6), and saving and unlinking register and remove
//! its webhooks (verified by CleverReach against hook-cleverreach).

use optisync_app::reconcile::RunOutcome;
use optisync_domain::*;
use optisync_e2e::{ADMIN_TOKEN, Stack};
use optisync_optigem_sim::{AssignmentDraft, PersonDraft};
use optisync_ports::BusEvent;
use optisync_ports::prelude::*;
use serde_json::{Value, json};

pub(crate) async fn call(stack: &Stack, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", stack.api))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the local API answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// The scheduled run a published `link.reconcile` asks for, as the reconciler would run it.
pub(crate) async fn run_announced(stack: &Stack) -> Vec<RunOutcome> {
    let mut outcomes = Vec::new();
    for event in stack.bus.take() {
        if let BusEvent::ReconcileLink { tenant, link } = event {
            let link = stack.store.link(&tenant, &link).await.unwrap().unwrap();
            outcomes.push(stack.reconcile_to_end(&link).await);
        }
    }
    outcomes
}

#[tokio::test]
async fn a_brevo_link_is_previewed_saved_synced_and_its_signup_approved_into_optigem() {
    let stack = Stack::start().await;
    let t = format!("/admin/tenants/{}", stack.tenant);
    // OPTIGEM: Anna reads the newsletter. Brevo: Lena is on the list, unknown to OPTIGEM.
    let anna = stack.optigem.add_person(PersonDraft {
        first_name: Some("Anna".into()),
        emails: vec![("anna@example.com".into(), 1)],
        ..Default::default()
    });
    stack.optigem.add_assignment(&anna, &NewsletterId::new("rundbrief"), AssignmentDraft::default());
    stack.optigem.take_events();
    let list = stack.brevo.add_list("Rundbrief");
    let mut lena = serde_json::Map::new();
    lena.insert("FIRSTNAME".into(), json!("Lena"));
    lena.insert("LASTNAME".into(), json!("Lang"));
    stack.brevo.add_contact("lena@example.com", lena, &[list]);

    let (status, _) =
        call(&stack, "PUT", &format!("{t}/accounts/brevo/brevo-main"), Some(json!({"api_key": stack.brevo.api_key()})))
            .await;
    assert_eq!(status, 200);
    let link_path = format!("{t}/links/rundbrief");
    let body = json!({"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main",
                      "list": list.to_string(), "settings": {"mapping": {"first_name": "FIRSTNAME"}}});
    let (status, saved) = call(&stack, "PUT", &link_path, Some(body)).await;
    assert_eq!(status, 201, "{saved}");

    // R-F8: the dry run goes through the connector's export and changes nothing in Brevo.
    assert_eq!(call(&stack, "POST", &format!("{link_path}/preview"), None).await.0, 202);
    let outcomes = run_announced(&stack).await;
    assert!(matches!(outcomes[..], [RunOutcome::Finished(_)]), "{outcomes:?}");
    let (status, preview) = call(&stack, "GET", &format!("{link_path}/preview"), None).await;
    assert_eq!((status, &preview["finished"]), (200, &json!(true)), "{preview}");
    let lines = preview["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["action"] == "create" && l["email"] == "anna@example.com"), "{preview}");
    assert!(lines.iter().any(|l| l["action"] == "queue" && l["email"] == "lena@example.com"), "{preview}");
    assert!(stack.brevo.contact("anna@example.com").is_none(), "a dry run writes nothing to Brevo");
    assert!(stack.brevo.webhooks().is_empty());

    // R-F1: saving registers the webhook and starts the first sync; it finishes in both directions.
    let (status, body) = call(&stack, "POST", &format!("{link_path}/sync"), None).await;
    assert_eq!((status, &body["link"]["status"]), (202, &json!("linking")));
    assert_eq!(stack.brevo.webhooks().len(), 1);
    let outcomes = run_announced(&stack).await;
    assert!(matches!(outcomes[..], [RunOutcome::Finished(_)]), "{outcomes:?}");
    stack.sync().await;
    let (_, status) = call(&stack, "GET", &link_path, None).await;
    assert_eq!(status["link"]["status"], "linked", "{status}");
    assert_eq!(status["run"]["last"]["counts"]["imported"], 1, "{status}");
    assert!(stack.brevo.contact("anna@example.com").unwrap().list_ids.contains(&list));

    // R-C3: Lena waits with her data; the approver creates a new person for her.
    let (status, page) = call(&stack, "GET", &format!("{link_path}/approvals"), None).await;
    assert_eq!(status, 200, "{page}");
    let entry = &page["entries"][0];
    assert_eq!(
        (&entry["email"], &entry["first_name"], &entry["matched"]),
        (&json!("lena@example.com"), &json!("Lena"), &json!(true))
    );
    let decision = json!({"decision": "create", "email": "lena@example.com"});
    let (status, decided) = call(&stack, "POST", &format!("{link_path}/approvals/decisions"), Some(decision)).await;
    assert_eq!((status, &decided["status"]), (200, &json!("approved")), "{decided}");
    stack.sync().await;
    let created: Vec<Assignment> = stack
        .optigem
        .assignments_of(&NewsletterId::new("rundbrief"))
        .into_iter()
        .filter(|a| a.email.as_ref().is_some_and(|e| e.as_str() == "lena@example.com"))
        .collect();
    assert_eq!(created.len(), 1, "the assignment appears in OPTIGEM");
    assert_eq!(created[0].person.first_name.as_ref().map(|n| n.expose()), Some("Lena"));
    let (_, page) = call(&stack, "GET", &format!("{link_path}/approvals"), None).await;
    assert_eq!(page["entries"], json!([]), "the queue is empty");
}

#[tokio::test]
async fn r_h1_r_g6_a_cleverreach_segment_link_connects_by_oauth_and_registers_its_webhooks() {
    let stack = Stack::start().await;
    let t = format!("/admin/tenants/{}", stack.tenant);
    let (status, body) = call(&stack, "POST", &format!("{t}/accounts/cleverreach/cr-admin/authorize"), None).await;
    assert_eq!(status, 200, "{body}");
    // The admin's browser: optisync's start link sets the cookie and redirects to CleverReach (M4), which
    // answers with a redirect carrying the code and our state.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = http.get(body["authorize_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(start.status().as_u16(), 302);
    let cookie = start.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let answer = http.get(start.headers()["location"].to_str().unwrap()).send().await.unwrap();
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let callback = format!("{}/oauth/cleverreach/callback?{}", stack.api, back.query().unwrap());
    let done = http.get(callback).header("cookie", cookie).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200);

    let group = stack.cleverreach.add_group("Jugend");
    let segment = stack.cleverreach.add_filter(&group, "Jugend Hamburg", "AND", Vec::new());
    let link_path = format!("{t}/links/jugend");
    let body = json!({"newsletter": "jugend", "provider": "cleverreach", "account": "cr-admin", "list": group,
                      "segment": segment});
    let (status, saved) = call(&stack, "PUT", &link_path, Some(body)).await;
    assert_eq!(status, 201, "{saved}");
    assert!(saved["warnings"][0].as_str().unwrap().contains("R-G6"), "{saved}");

    assert_eq!(call(&stack, "POST", &format!("{link_path}/sync"), None).await.0, 202);
    let hooks = stack.cleverreach.webhook_registrations();
    assert_eq!(hooks.len(), 5, "one per receiver event");
    assert!(hooks.iter().all(|h| h.condition == group && h.url.ends_with("/hooks/cleverreach/gemeinde-1/cr-admin")));

    let (status, body) = call(&stack, "POST", &format!("{link_path}/unlink"), None).await;
    assert_eq!((status, &body["webhooks_removed"]), (200, &json!(true)), "{body}");
    assert!(stack.cleverreach.webhook_registrations().is_empty());
    let link = stack.store.link(&stack.tenant, &LinkId::new("jugend")).await.unwrap();
    assert_eq!(link.unwrap().status, LinkStatus::NotLinked, "the scheduler and the engine leave it alone");
}
