//! R-J7: data-subject requests over the in-memory ports, with the admin's use cases as the admin API calls
//! them. Max Muster (max@example.org) is on the list "Rundbrief" of a Brevo and a CleverReach link of
//! the newsletter NL-1; his assignment ends with April 2024.

use async_trait::async_trait;
use optisync_app::admin::{Admin, AdminConfig, AdminError, SubjectRequest};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_ports::{EspCatalog, EspDirectory, EspError};
use optisync_testkit::build;
use optisync_testkit::memory::{MemoryBus, MemorySecrets};
use std::sync::Arc;

use crate::common::*;

const MAX: &str = "max@example.org";

/// The admin's data-subject routes need no ESP directory.
struct NoDirectory;

#[async_trait]
impl EspDirectory for NoDirectory {
    async fn connect_brevo(&self, _: &AccountId, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    fn cleverreach_authorize_url(&self, _: &str) -> Result<String, EspError> {
        Ok(String::new())
    }
    async fn connect_cleverreach(&self, _: &AccountId, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    async fn catalog(&self, _: &EspAccount) -> Result<EspCatalog, EspError> {
        Ok(EspCatalog { lists: vec![], attributes: vec![] })
    }
    async fn register_hooks(&self, _: &Link, _: &str) -> Result<(), EspError> {
        Ok(())
    }
    async fn unregister_hooks(&self, _: &Link, _: &str, _: &[Link]) -> Result<(), EspError> {
        Ok(())
    }
    async fn set_brevo_hook_token(&self, _: &AccountId, _: &str, _: &str) -> Result<usize, EspError> {
        Ok(0)
    }
}

struct Setup {
    h: Harness,
    /// The CleverReach link of the same newsletter.
    cr: Link,
    admin: Admin,
}

fn max() -> Email {
    Email::parse(MAX).unwrap()
}

fn ask(email: &str) -> SubjectRequest {
    SubjectRequest { email: email.into() }
}

async fn setup() -> Setup {
    let h = harness(Provider::Brevo, berlin(2024, 4, 2, 12)).await;
    let cr = build::link("cleverreach-nl", "t1", "NL-1", build::esp(Provider::CleverReach, "cr-acc"), "list-1");
    h.store.put_link(&cr).await.unwrap();
    let admin = Admin::new(
        h.store.clone(),
        Arc::new(MemorySecrets::default()),
        Arc::new(NoDirectory),
        Arc::new(MemoryBus::default()),
        h.reconciler.clone(),
        h.clock.clone(),
        AdminConfig { public_base_url: "https://sync.example.org".into() },
    );
    Setup { h, cr, admin }
}

/// Max's assignment A-1 ends with April 2024; he unsubscribes in CleverReach on 12 April; on 2 May the
/// end month has passed.
async fn max_with_history(s: &Setup) {
    let mut a = assignment("A-1", MAX, Some("2024-04"), berlin(2024, 3, 1, 12));
    a.person.first_name = Some(PersonalText::new("Max"));
    a.person.last_name = Some(PersonalText::new("Muster"));
    s.h.change(a).await;
    assert!(s.h.receiving().iter().any(|r| r == MAX), "listed in Brevo");
    s.h.clock.set(berlin(2024, 4, 12, 9));
    let unsubscribe = Input::Esp(EspEvent {
        esp: s.cr.esp.clone(),
        list: Some(s.cr.list.clone()),
        email: max(),
        at: berlin(2024, 4, 12, 9),
        what: EspEventKind::Unsubscribed,
    });
    s.h.engine.process(&tenant(), &unsubscribe).await.unwrap();
    s.h.clock.set(berlin(2024, 5, 2, 6));
    s.h.engine.process(&tenant(), &Input::Today { date: "2024-05-02".parse().unwrap() }).await.unwrap();
}

#[tokio::test]
async fn r_j7_the_export_shows_the_verdicts_reasons_the_unsubscribe_history_and_the_audit_trail() {
    let s = setup().await;
    max_with_history(&s).await;
    let export = s.admin.subject_lookup(&tenant(), &ask("Max@Example.org")).await.unwrap();
    assert!(export.erased.is_none());
    assert_eq!(export.links.len(), 2, "one section per link of the tenant");
    for link in &export.links {
        let [a] = &link.assignments[..] else { panic!("A-1 in the mirror of {}: {:?}", link.link, link.assignments) };
        assert_eq!(a.id.as_str(), "A-1");
        assert!(!a.active);
        assert_eq!(a.reasons.len(), 1, "{:?}", a.reasons);
        assert_eq!(a.reasons[0].code, "end_passed");
        assert!(a.reasons[0].text.contains("April 2024"), "{}", a.reasons[0].text);
        assert!(!link.audit.is_empty(), "the audit trail of {} names Max's inputs", link.link);
        assert!(link.audit.iter().any(|e| e.input == "assignment.changed"), "{:?}", link.audit);
    }
    let cr = export.links.iter().find(|l| l.link == s.cr.id).unwrap();
    let recipient = cr.recipient.as_ref().expect("a recipient state");
    assert!(!recipient.active, "unsubscribed in CleverReach");
    let kinds: Vec<&str> = cr.unsubscribes.iter().map(|u| u.kind.as_str()).collect();
    assert!(kinds.contains(&"tombstone") && kinds.contains(&"handed_to_optigem"), "{:?}", cr.unsubscribes);
    assert!(cr.unsubscribes.iter().all(|u| u.cause == UnsubscribeCause::Unsubscribed));
    assert!(cr.audit.iter().any(|e| e.input == "esp.unsubscribed"), "{:?}", cr.audit);
    // Nothing of Max is in the audit log in the clear (R-J5).
    let json = serde_json::to_string(&cr.audit).unwrap();
    assert!(!json.contains(MAX), "{json}");
}

#[tokio::test]
async fn r_j7_the_export_shows_a_pending_signups_consent_evidence() {
    let s = setup().await;
    let at = berlin(2024, 4, 2, 10);
    let signup = Input::Esp(EspEvent {
        esp: s.h.link.esp.clone(),
        list: Some(s.h.link.list.clone()),
        email: max(),
        at,
        what: EspEventKind::Signup {
            signup: Signup {
                first_name: Some(PersonalText::new("Max")),
                last_name: Some(PersonalText::new("Muster")),
                evidence: ConsentEvidence {
                    signup_at: Some(at),
                    confirmed_at: Some(at + chrono::Duration::minutes(5)),
                    source: Some("form:website".into()),
                    ip: Some(PersonalText::new("203.0.113.7")),
                    ..Default::default()
                },
            },
        },
    });
    s.h.engine.process(&tenant(), &signup).await.unwrap();
    let export = s.admin.subject_lookup(&tenant(), &ask(MAX)).await.unwrap();
    let brevo = export.links.iter().find(|l| l.link == s.h.link.id).unwrap();
    let pending = brevo.pending_approval.as_ref().expect("the signup waits for an approver");
    assert_eq!(pending.signups, 1);
    let [consent] = &brevo.consent[..] else { panic!("{:?}", brevo.consent) };
    assert_eq!(consent.kind, "esp_signup");
    assert_eq!(consent.evidence.source.as_deref(), Some("form:website"));
    assert_eq!(consent.evidence.ip.as_ref().map(|ip| ip.expose().to_owned()).as_deref(), Some("203.0.113.7"));
    assert!(brevo.audit.iter().any(|e| e.input == "esp.signup"), "{:?}", brevo.audit);
    let cr = export.links.iter().find(|l| l.link == s.cr.id).unwrap();
    assert!(cr.pending_approval.is_none() && cr.consent.is_empty(), "the CleverReach link holds nothing");
}

#[tokio::test]
async fn r_j7_an_unknown_address_gives_every_link_empty_sections_and_a_malformed_one_names_the_field() {
    let s = setup().await;
    max_with_history(&s).await;
    let export = s.admin.subject_lookup(&tenant(), &ask("erika.muster@example.org")).await.unwrap();
    assert_eq!(export.links.len(), 2);
    assert!(!export.holds_anything() && export.erased.is_none(), "{export:?}");
    assert!(export.links.iter().all(|l| l.audit.is_empty()), "{export:?}");
    for refused in [
        s.admin.subject_lookup(&tenant(), &ask("not-an-address")).await.map(|_| ()),
        s.admin.subject_erase(&tenant(), &ask("not-an-address")).await.map(|_| ()),
    ] {
        let Err(AdminError::Invalid(problems)) = refused else { panic!("{refused:?}") };
        assert_eq!(problems[0].field, "email");
    }
}

#[tokio::test]
async fn r_j7_erasure_on_request_deletes_at_both_esps_keeps_only_the_hash_and_reports_on_the_feed() {
    let s = setup().await;
    max_with_history(&s).await;
    // Max is a Brevo contact, and a CleverReach receiver (deactivated).
    assert!(s.h.esp.contact(&s.h.link.esp, MAX).is_some());
    assert!(s.h.esp.member(&s.cr.esp, &s.cr.list, MAX).is_some());

    let answer = s.admin.subject_erase(&tenant(), &ask(MAX)).await.unwrap();
    assert!(answer.erased);
    assert_eq!(answer.links.len(), 2, "{answer:?}");
    // Gone from the ESPs: Brevo's contact account-wide, CleverReach's receiver from the group.
    assert!(s.h.esp.contact(&s.h.link.esp, MAX).is_none(), "Brevo contact deleted");
    assert!(s.h.esp.member(&s.h.link.esp, &s.h.link.list, MAX).is_none());
    assert!(s.h.esp.member(&s.cr.esp, &s.cr.list, MAX).is_none(), "CleverReach receiver deleted");
    for link in &answer.links {
        let deleted: Vec<(&str, &str)> = link.deleted.iter().map(|d| (d.system.as_str(), d.item.as_str())).collect();
        assert!(deleted.contains(&("optisync", "recipient_state")), "{deleted:?}");
        assert!(deleted.contains(&("optisync", "assignment_mirror")), "{deleted:?}");
        let kept: Vec<&str> = link.kept.iter().map(|k| k.item.as_str()).collect();
        assert!(kept.contains(&"keyed_hash") && kept.contains(&"assignment A-1"), "{kept:?}");
    }
    let brevo = answer.links.iter().find(|l| l.link == s.h.link.id).unwrap();
    assert!(brevo.deleted.iter().any(|d| d.system == "brevo" && d.item == "contact"));
    let cr = answer.links.iter().find(|l| l.link == s.cr.id).unwrap();
    assert!(cr.deleted.iter().any(|d| d.system == "cleverreach" && d.item == "receiver"));

    // The deletion reports are on the connector's feed, naming the request.
    let reports: Vec<OptigemCommand> =
        s.h.feed().await.into_iter().filter(|c| matches!(c, OptigemCommand::ErasureReport { .. })).collect();
    assert_eq!(reports.len(), 2);
    for report in &reports {
        let OptigemCommand::ErasureReport { id, ended, .. } = report else { unreachable!() };
        assert_eq!(ended, &answer.request);
        assert!(answer.links.iter().any(|l| &l.report == id));
    }

    // The store keeps only the hash: no recipient state, approval or mirror entry names Max.
    let export = s.admin.subject_lookup(&tenant(), &ask(MAX)).await.unwrap();
    assert!(!export.holds_anything(), "{export:?}");
    assert!(export.erased.is_some(), "the keyed hash is found");
    for link in [&s.h.link, &s.cr] {
        let all = s.h.store.recipients(&tenant(), &link.id, None, 1000).await.unwrap();
        assert!(all.iter().all(|(e, _)| e != &max()), "no recipient state on {}", link.id);
    }

    // Idempotent: a second request finds nothing.
    let again = s.admin.subject_erase(&tenant(), &ask(MAX)).await.unwrap();
    assert!(!again.erased && again.links.is_empty(), "{again:?}");
    assert_eq!(s.h.feed().await.iter().filter(|c| matches!(c, OptigemCommand::ErasureReport { .. })).count(), 2);

    // R-J3: a stale OPTIGEM change for Max (an assignment created before the erasure, after his CleverReach
    // unsubscribe of 12 April) subscribes nobody: the erasure is dated the request.
    s.h.clock.set(berlin(2024, 5, 3, 12));
    let stale = assignment("A-7", MAX, None, berlin(2024, 4, 20, 12));
    s.h.change(stale).await;
    assert!(s.h.esp.contact(&s.h.link.esp, MAX).is_none(), "not created again in Brevo");
    assert!(s.h.esp.member(&s.cr.esp, &s.cr.list, MAX).is_none(), "not created again in CleverReach");
}

#[tokio::test]
async fn r_j7_on_request_a_brevo_contact_goes_account_wide_even_while_another_link_of_the_account_lists_it() {
    let s = setup().await;
    // A second Brevo link of the same account ("Gemeindebrief", classic mode) lists Max as active: erasure
    // mode would keep the contact for it (R-J2); a request erases him from that link too.
    let other = build::link("brevo-nl2", "t1", "NL-2", s.h.link.esp.clone(), "list-2");
    s.h.store.put_link(&other).await.unwrap();
    s.h.change(assignment("A-1", MAX, None, berlin(2024, 3, 1, 12))).await;
    s.h.engine
        .process(
            &tenant(),
            &Input::AssignmentChanged { assignment: build::assignment("A-2", "NL-2", MAX, berlin(2024, 3, 1, 12)) },
        )
        .await
        .unwrap();
    assert_eq!(s.h.esp.member(&other.esp, &other.list, MAX).map(|m| m.0), Some(true));

    let answer = s.admin.subject_erase(&tenant(), &ask(MAX)).await.unwrap();
    assert_eq!(answer.links.len(), 3, "both Brevo links and the CleverReach one held Max: {answer:?}");
    assert!(s.h.esp.contact(&s.h.link.esp, MAX).is_none(), "the contact is deleted account-wide");
    assert!(s.h.esp.member(&other.esp, &other.list, MAX).is_none());
    let deletes = s.h.esp.applied().iter().filter(|a| a.op == EspOp::Delete && a.esp == s.h.link.esp).count();
    assert_eq!(deletes, 1, "one deletion for the account");
    for link in &answer.links {
        assert!(link.kept.iter().all(|k| k.system != "brevo"), "nothing kept in Brevo: {:?}", link.kept);
    }
}
