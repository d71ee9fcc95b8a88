//! R-A10 end to end, over HTTP on the local server and the fake Brevo: the admin ticks the privacy
//! category "E-Mail" on the syncing link "Rundbrief" and Max Muster, whose person blocks e-mail, leaves
//! the list without any change in OPTIGEM; unticking it puts him back, and a newly mapped last name
//! reaches Brevo. The dry run of the change is the link's preview.

use optisync_app::reconcile::{RunKind, RunOutcome};
use optisync_domain::*;
use optisync_e2e::{Stack, subscribe};
use optisync_optigem_sim::PersonDraft;
use serde_json::{Value, json};

use crate::admin::{call, run_announced};

fn person(stack: &Stack, first: &str, last: &str, mail: &str, email_privacy: PrivacyStatus) -> PersonId {
    stack.optigem.add_person(PersonDraft {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        emails: vec![(mail.into(), 1)],
        privacy: [(PrivacyCategory::new("E-Mail"), email_privacy)].into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn r_a10_ticking_e_mail_on_a_syncing_link_deactivates_max_muster_in_brevo_and_unticking_reactivates_him() {
    let stack = Stack::start().await;
    let t = format!("/admin/tenants/{}", stack.tenant);
    let max = person(&stack, "Max", "Muster", "max.muster@example.com", PrivacyStatus::Blocked);
    let erika = person(&stack, "Erika", "Mustermann", "erika@example.com", PrivacyStatus::Allowed);
    subscribe(&stack.optigem, &max, "rundbrief");
    subscribe(&stack.optigem, &erika, "rundbrief");
    stack.optigem.take_events();
    let list = stack.brevo.add_list("Rundbrief");
    let on_list = |mail: &str| stack.brevo.contact(mail).is_some_and(|c| c.list_ids.contains(&list));

    let key = json!({"api_key": stack.brevo.api_key()});
    assert_eq!(call(&stack, "PUT", &format!("{t}/accounts/brevo/brevo-main"), Some(key)).await.0, 200);
    let link_path = format!("{t}/links/rundbrief");
    let body = |settings: Value| {
        json!({"newsletter": "rundbrief", "provider": "brevo", "account": "brevo-main", "list": list.to_string(),
               "settings": settings})
    };
    let first_name = json!({"mapping": {"first_name": "FIRSTNAME"}});
    let (status, saved) = call(&stack, "PUT", &link_path, Some(body(first_name.clone()))).await;
    assert_eq!((status, &saved["replan"]), (201, &Value::Null), "{saved}");
    assert_eq!(call(&stack, "POST", &format!("{link_path}/sync"), None).await.0, 202);
    let outcomes = run_announced(&stack).await;
    assert!(matches!(outcomes[..], [RunOutcome::Finished(_)]), "{outcomes:?}");
    stack.sync().await;
    assert!(on_list("max.muster@example.com") && on_list("erika@example.com"), "no category is relevant (R-A8)");
    let commands = stack.commands().await.len();

    // The admin ticks "E-Mail"; nothing changes in OPTIGEM.
    let ticked = json!({"mapping": {"first_name": "FIRSTNAME"}, "relevant_privacy": ["E-Mail"]});
    let (status, saved) = call(&stack, "PUT", &link_path, Some(body(ticked))).await;
    assert_eq!((status, &saved["replan"]["state"]), (200, &json!("started")), "{saved}");
    let outcomes = run_announced(&stack).await;
    let [RunOutcome::Finished(finished)] = &outcomes[..] else { panic!("{outcomes:?}") };
    assert_eq!((finished.kind, finished.counts.deactivated), (RunKind::Settings, 1));
    assert!(!on_list("max.muster@example.com"), "R-A6 now holds for Max: off the list");
    assert!(!stack.brevo.contact("max.muster@example.com").unwrap().email_blacklisted, "never blacklisted (R-D2)");
    assert!(on_list("erika@example.com"));
    let (_, preview) = call(&stack, "GET", &format!("{link_path}/preview"), None).await;
    assert_eq!(preview["finished"], json!(true), "{preview}");
    assert_eq!(preview["lines"], json!([{"action": "deactivate", "email": "max.muster@example.com"}]), "{preview}");
    stack.sync().await;
    assert_eq!(stack.commands().await.len(), commands, "no OPTIGEM command: a rule's verdict is no unsubscribe");

    // Unticking it again, and mapping the last name too: Max is back, both last names reach Brevo.
    let both = json!({"mapping": {"first_name": "FIRSTNAME", "last_name": "LASTNAME"}});
    let (status, saved) = call(&stack, "PUT", &link_path, Some(body(both))).await;
    assert_eq!((status, &saved["replan"]["state"]), (200, &json!("started")), "{saved}");
    let outcomes = run_announced(&stack).await;
    assert!(matches!(outcomes[..], [RunOutcome::Finished(_)]), "{outcomes:?}");
    assert!(on_list("max.muster@example.com") && on_list("erika@example.com"));
    let last_name = |mail: &str| stack.brevo.contact(mail).unwrap().attributes.get("LASTNAME").cloned();
    assert_eq!(last_name("max.muster@example.com"), Some(json!("Muster")));
    assert_eq!(last_name("erika@example.com"), Some(json!("Mustermann")), "R-D3 without an OPTIGEM change");
    assert_eq!(stack.commands().await.len(), commands);
}
