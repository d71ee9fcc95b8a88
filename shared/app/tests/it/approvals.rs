//! The approval queue's decisions (R-C2, R-C3, R-B3, R-J1) over the in-memory store: one entry per
//! signup, ranked suggestions from OPTIGEM's answer, one `create_assignment` however often the approver
//! clicks, and conflicts instead of silent overwrites.

use chrono::{DateTime, TimeZone, Utc};
use optisync_app::Engine;
use optisync_app::approvals::{ApprovalError, Approvals, Choice};
use optisync_domain::suggest::Reason;
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryStore};
use std::sync::Arc;

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, d, h, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("t1")
}

fn erika() -> Email {
    Email::parse("erika.muster@example.com").unwrap()
}

fn link() -> Link {
    Link {
        id: LinkId::new("L-3"),
        tenant: tenant(),
        newsletter: NewsletterId::new("NL-7"),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("brevo-main") },
        list: ListId::new("12"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    }
}

fn signup(at: DateTime<Utc>) -> Input {
    Input::Esp(EspEvent {
        esp: link().esp,
        list: Some(link().list),
        email: erika(),
        at,
        what: EspEventKind::Signup {
            signup: Signup {
                first_name: Some(PersonalText::new("Erika")),
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
    })
}

async fn queued(settings: TenantSettings) -> (Arc<MemoryStore>, Approvals) {
    let store = Arc::new(MemoryStore::new());
    store.set_tenant(tenant(), settings);
    store.put_link(&link()).await.unwrap();
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), Arc::new(FixedClock::new(at(20, 12))));
    engine.process(&tenant(), &signup(at(20, 10))).await.unwrap();
    (store.clone(), Approvals::new(store))
}

async fn feed(store: &MemoryStore) -> Vec<OptigemCommand> {
    store.commands(&tenant(), 0, 100).await.unwrap().into_iter().map(|(_, c)| c).collect()
}

#[tokio::test]
async fn r_c3_suggestions_arrive_ranked_with_their_reasons() {
    let (store, approvals) = queued(TenantSettings::default()).await;
    let view = approvals.view(&tenant(), &link().id, &erika()).await.unwrap();
    assert!(!view.matched && view.suggestions.is_empty(), "OPTIGEM has not answered yet");
    let candidate = |id: &str, first: &str, last: &str, emails: &[&str]| Candidate {
        person: PersonId::new(id),
        first_name: Some(PersonalText::new(first)),
        last_name: Some(PersonalText::new(last)),
        emails: emails.iter().map(|e| Email::parse(e).unwrap()).collect(),
    };
    let answer = CommandResult::Done {
        assignment: None,
        person: None,
        suggestions: vec![
            candidate("P-9", "Hans", "Muster", &[]),
            candidate("P-4", "Erika", "Musterr", &[]),
            candidate("P-7", "E.", "Muster-Schmidt", &["ERIKA.MUSTER@example.com"]),
        ],
    };
    store.record_result(&tenant(), &view.entry.match_command, &answer).await.unwrap();
    let view = approvals.view(&tenant(), &link().id, &erika()).await.unwrap();
    let order: Vec<&str> = view.suggestions.iter().map(|s| s.person.as_str()).collect();
    assert_eq!(order, vec!["P-7", "P-4", "P-9"], "same e-mail first, then the most similar name");
    assert_eq!(view.suggestions[0].reasons[0], Reason::SameEmail);
    assert!(matches!(view.suggestions[1].reasons[0], Reason::SimilarName { similarity } if similarity >= 90));
    assert!(matches!(view.suggestions[2].reasons[..], [Reason::SimilarName { .. }] | [Reason::OfferedByOptigem]));
}

#[tokio::test]
async fn r_c3_r_b3_r_j1_approving_an_existing_person_asks_once_for_one_assignment_with_the_evidence() {
    let settings = TenantSettings { approved_email_target: EmailTarget::StandardCommunication, ..Default::default() };
    let (store, approvals) = queued(settings).await;
    let before = feed(&store).await.len();
    let mut decided = Vec::new();
    for _ in 0..3 {
        let entry = approvals
            .decide(&tenant(), &link().id, &erika(), Choice::ExistingPerson(PersonId::new("P-7")), at(21, 9))
            .await
            .unwrap();
        decided.push(entry);
    }
    assert!(decided.windows(2).all(|w| w[0] == w[1]), "deciding twice is harmless");
    assert_eq!(decided[0].status, ApprovalStatus::Approved);
    let commands = feed(&store).await;
    assert_eq!(commands.len(), before + 1, "one create_assignment");
    let OptigemCommand::CreateAssignment { person, email, email_target, consent, newsletter, .. } =
        commands.last().unwrap()
    else {
        panic!("expected create_assignment, got {:?}", commands.last())
    };
    assert_eq!(person, &PersonChoice::Existing { person: PersonId::new("P-7") });
    assert_eq!((email, *email_target, newsletter.as_str()), (&erika(), EmailTarget::StandardCommunication, "NL-7"));
    assert_eq!(consent.source.as_deref(), Some("form:website"));
    assert_eq!(consent.confirmed_at, Some(at(20, 10) + chrono::Duration::minutes(5)));
    assert_eq!(consent.ip.as_ref().map(PersonalText::expose), Some("203.0.113.7"));
    let trail = store.audit(&link().tenant, &link().id, at(22, 9), 10).await.unwrap();
    let decisions: Vec<_> = trail.iter().filter(|e| e.input == "approval.approved").collect();
    assert_eq!(decisions.len(), 1, "one audit entry for three identical decisions: {trail:?}");
    assert_eq!(decisions[0].commands[0].id, *commands.last().unwrap().id());
    assert_eq!(decisions[0].recipient.as_deref(), Some("e***@e***.com"), "masked (R-J5)");
    assert!(trail.iter().any(|e| e.input == "esp.signup"), "the signup that queued it: {trail:?}");

    let other = approvals.decide(&tenant(), &link().id, &erika(), Choice::Reject, at(21, 10)).await;
    assert!(matches!(other, Err(ApprovalError::Conflict(_))), "another decision after one was taken");
    let again = approvals.decide(&tenant(), &link().id, &erika(), Choice::NewPerson, at(21, 10)).await;
    assert!(matches!(again, Err(ApprovalError::Conflict(_))));
}

#[tokio::test]
async fn r_c3_a_new_person_takes_the_signups_names_and_the_default_target_is_the_assignment() {
    let (store, approvals) = queued(TenantSettings::default()).await;
    approvals.decide(&tenant(), &link().id, &erika(), Choice::NewPerson, at(21, 9)).await.unwrap();
    let Some(OptigemCommand::CreateAssignment { person, email_target, .. }) = feed(&store).await.pop() else {
        panic!()
    };
    assert_eq!(
        person,
        PersonChoice::New {
            first_name: Some(PersonalText::new("Erika")),
            last_name: Some(PersonalText::new("Muster"))
        }
    );
    assert_eq!(email_target, EmailTarget::Assignment);
}

#[tokio::test]
async fn r_c2_a_rejected_signup_creates_nothing_and_its_redelivery_does_not_queue_it_again() {
    let (store, approvals) = queued(TenantSettings::default()).await;
    let before = feed(&store).await.len();
    let entry = approvals.decide(&tenant(), &link().id, &erika(), Choice::Reject, at(21, 9)).await.unwrap();
    assert_eq!(entry.status, ApprovalStatus::Rejected);
    assert_eq!(feed(&store).await.len(), before);
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), Arc::new(FixedClock::new(at(22, 12))));
    engine.process(&tenant(), &signup(at(20, 10))).await.unwrap();
    let view = approvals.view(&tenant(), &link().id, &erika()).await.unwrap();
    assert_eq!(view.entry.status, ApprovalStatus::Rejected, "the old signup delivered again");
    engine.process(&tenant(), &signup(at(25, 10))).await.unwrap();
    let view = approvals.view(&tenant(), &link().id, &erika()).await.unwrap();
    assert_eq!((view.entry.status, view.entry.decision), (ApprovalStatus::Pending, None), "a new signup later");
}

#[tokio::test]
async fn unknown_links_and_entries_are_not_found_and_withdrawn_ones_cannot_be_decided() {
    let (store, approvals) = queued(TenantSettings::default()).await;
    let missing = approvals.decide(&tenant(), &LinkId::new("L-9"), &erika(), Choice::Reject, at(21, 9)).await;
    assert!(matches!(missing, Err(ApprovalError::NotFound("link"))));
    let nobody = Email::parse("nobody@example.com").unwrap();
    let missing = approvals.decide(&tenant(), &link().id, &nobody, Choice::Reject, at(21, 9)).await;
    assert!(matches!(missing, Err(ApprovalError::NotFound("approval entry"))));
    // The recipient unsubscribes before anyone decided: the entry is withdrawn.
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), Arc::new(FixedClock::new(at(22, 12))));
    let left = Input::Esp(EspEvent {
        esp: link().esp,
        list: None,
        email: erika(),
        at: at(21, 8),
        what: EspEventKind::Blacklisted,
    });
    engine.process(&tenant(), &left).await.unwrap();
    let late = approvals.decide(&tenant(), &link().id, &erika(), Choice::NewPerson, at(22, 9)).await;
    assert!(matches!(late, Err(ApprovalError::Conflict(_))));
}

/// R-J1, R-J6: Erika signs up twice before anyone decides; the approval hands both signups' evidence to
/// OPTIGEM with its `create_assignment` (where it stays as long as the assignment), and the decided entry
/// keeps both here until its expiry (`approvals_days` after the decision), then it is gone.
#[tokio::test]
async fn r_j1_the_approval_hands_every_signups_evidence_to_optigem_and_keeps_it_until_its_expiry() {
    let clock = Arc::new(FixedClock::new(at(20, 12)));
    let store = Arc::new(MemoryStore::new().with_clock(clock.clone()));
    store.set_tenant(tenant(), TenantSettings::default());
    store.put_link(&link()).await.unwrap();
    let engine = Engine::new(store.clone(), Arc::new(MemoryEsp::new()), clock.clone());
    engine.process(&tenant(), &signup(at(20, 10))).await.unwrap();
    let Input::Esp(mut again) = signup(at(23, 8)) else { unreachable!() };
    if let EspEventKind::Signup { signup } = &mut again.what {
        signup.evidence.source = Some("form:event".into());
        signup.evidence.ip = Some(PersonalText::new("198.51.100.9"));
    }
    clock.set(at(23, 9));
    engine.process(&tenant(), &Input::Esp(again)).await.unwrap();
    let approvals = Approvals::new(store.clone());
    let queued = approvals.view(&tenant(), &link().id, &erika()).await.unwrap().entry;
    let evidence = queued.signup.evidence.entries();
    let sources: Vec<_> = evidence.iter().map(|e| e.source.as_deref()).collect();
    assert_eq!(sources, vec![Some("form:website"), Some("form:event")], "R-J1: the second adds, keeps the first");
    assert_eq!(evidence[0].ip.as_ref().map(PersonalText::expose), Some("203.0.113.7"));

    clock.set(at(24, 9));
    approvals.decide(&tenant(), &link().id, &erika(), Choice::NewPerson, at(24, 9)).await.unwrap();
    let Some(OptigemCommand::CreateAssignment { consent, .. }) = feed(&store).await.pop() else { panic!() };
    assert_eq!(consent.entries(), evidence, "the connector command carries every signup's evidence");

    let keep = Retention::default().approvals();
    clock.set(at(24, 9) + keep - chrono::Duration::days(1));
    let decided = approvals.view(&tenant(), &link().id, &erika()).await.unwrap().entry;
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.signup.evidence.entries(), evidence, "kept after the decision until its expiry");
    clock.set(at(24, 9) + keep + chrono::Duration::days(1));
    assert!(approvals.view(&tenant(), &link().id, &erika()).await.is_err(), "gone after its expiry (R-J6)");
}
