//! R-J7 end to end over HTTP on the local server, the fake Brevo and the simulated OPTIGEM: Max Muster
//! (max@example.org) reads "Rundbrief"; the admin exports what the service holds about him, then erases
//! him on his request. The contact is gone from Brevo, the connector receives the deletion report, and a
//! later OPTIGEM change of his (stale: his assignment predates the erasure) subscribes nobody (R-J3).

use crate::admin::call;
use optisync_domain::*;
use optisync_e2e::{Stack, person, subscribe};
use serde_json::json;

#[tokio::test]
async fn r_j7_an_admin_exports_and_erases_an_address_and_stale_optigem_data_does_not_revive_it() {
    let stack = Stack::start().await;
    let link = stack.link_brevo("rundbrief", LinkSettings::default()).await;
    let max = person(&stack.optigem, "Max", Some("Muster"), "max@example.org");
    let a1 = subscribe(&stack.optigem, &max, "rundbrief");
    stack.sync().await;
    let list: i64 = link.list.as_str().parse().unwrap();
    assert!(stack.brevo.contact("max@example.org").is_some_and(|c| c.list_ids.contains(&list)));

    let t = format!("/admin/tenants/{}", stack.tenant);
    let body = json!({"email": "max@example.org"});
    let (status, export) = call(&stack, "POST", &format!("{t}/subjects/lookup"), Some(body.clone())).await;
    assert_eq!(status, 200, "{export}");
    let section = &export["links"][0];
    assert_eq!((&section["recipient"]["listed"], &section["recipient"]["active"]), (&json!(true), &json!(true)));
    assert_eq!(section["assignments"][0]["id"], a1.as_str());
    assert!(!section["audit"].as_array().unwrap().is_empty(), "{export}");

    let (status, erased) = call(&stack, "POST", &format!("{t}/subjects/erase"), Some(body.clone())).await;
    assert_eq!((status, &erased["erased"]), (200, &json!(true)), "{erased}");
    assert!(stack.brevo.contact("max@example.org").is_none(), "the Brevo contact is deleted");
    stack.sync().await;
    let reports = stack.optigem.erasure_reports();
    assert!(
        matches!(&reports[..], [OptigemCommand::ErasureReport { ended, .. }] if ended.as_str() == erased["request"]),
        "the connector received the report: {reports:?}"
    );
    let (_, export) = call(&stack, "POST", &format!("{t}/subjects/lookup"), Some(body.clone())).await;
    assert_eq!(export["links"][0]["recipient"], json!(null), "{export}");
    assert_eq!(export["links"][0]["assignments"], json!([]), "{export}");
    assert!(export["erased"].is_object(), "only the keyed hash is left: {export}");

    // Asked again at once: nothing is held any more.
    let (status, again) = call(&stack, "POST", &format!("{t}/subjects/erase"), Some(body.clone())).await;
    assert_eq!((status, &again["erased"], &again["links"]), (200, &json!(false), &json!([])), "{again}");

    // Staff change Max's first name in OPTIGEM: a new version of an assignment older than the erasure.
    stack.optigem.update_person(&max, |p| p.first_name = Some(PersonalText::new("Maximilian")));
    stack.sync().await;
    assert!(stack.brevo.contact("max@example.org").is_none(), "not created again in Brevo (R-J3)");
    // OPTIGEM still holds Max, so its snapshot is in the mirror again, ended, and no recipient state.
    let (_, export) = call(&stack, "POST", &format!("{t}/subjects/lookup"), Some(body)).await;
    assert_eq!(export["links"][0]["recipient"], json!(null), "{export}");
}
