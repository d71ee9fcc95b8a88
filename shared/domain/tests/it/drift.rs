//! The scheduled run's drift decisions, one rule at a time, with the examples of the run's own tests:
//! Max blacklisted in Brevo without a webhook, Lena joining the list in the ESP, Erika deleted there, the
//! segment S1, and the guard's 30 of 40 deactivated receivers.

use crate::common;

use common::*;
use optisync_domain::drift::{self, Block, BlockedAddress, Blocks, Differences, Guard, ListedMember};
use optisync_domain::*;

/// A member as the ESP lists it.
fn member(mail: &str, active: bool, blacklisted: bool) -> ListedMember {
    ListedMember { email: email(mail), active, blacklisted, changed_at: None, signup: Signup::default() }
}

/// What a link knows of a recipient: on the list, and active there or not.
fn recipient(listed: bool, active: bool) -> RecipientState {
    RecipientState { listed, active, linked: true, ..Default::default() }
}

/// A link's known view with these recipients.
fn known_with(link: &Link, recipients: &[(&str, RecipientState)]) -> LinkView {
    let mut view = LinkView::new(link.clone());
    for (mail, state) in recipients {
        view.recipients.insert(email(mail), state.clone());
    }
    view
}

/// An active assignment of the link's newsletter in the mirror, using `mail`.
fn mirrored(view: &mut LinkView, id: &str, mail: &str) {
    let a = assignment(id, view.link.newsletter.as_str(), mail);
    let entry = MirrorEntry {
        id: a.id.clone(),
        version: a.version,
        email: Some(email(mail)),
        snapshot: Some(a),
        verdict: rules::Verdict { reasons: vec![] },
        next_transition: None,
        subscribed_at: None,
        email_since: None,
        end_requested: None,
    };
    view.mirror.insert(entry.id.clone(), entry);
}

fn segment_link() -> Link {
    Link { segment: Some(SegmentId::new("S1")), ..cleverreach("nl") }
}

fn kinds(events: &[EspEvent]) -> Vec<(String, Option<ListId>, EspEventKind)> {
    events.iter().map(|e| (e.email.key().to_owned(), e.list.clone(), e.what.clone())).collect()
}

#[test]
fn r_e3_r_f4_a_receiving_member_unknown_to_the_link_is_a_signup() {
    for link in [brevo("nl"), cleverreach("nl")] {
        let known = known_with(&link, &[("max@example.com", recipient(true, true))]);
        let started = noon("2024-09-25");
        let found = drift::differences(&link, &known, &[member("lena@example.com", true, false)], started);
        assert_eq!(
            kinds(&found.now),
            [(
                "lena@example.com".to_owned(),
                Some(link.list.clone()),
                EspEventKind::Signup { signup: Signup::default() }
            )],
            "{}",
            link.esp.provider
        );
        assert!(found.ends.is_empty());
        assert_eq!(found.now[0].at, started, "a member without a time of its own changed at the run's start");
    }
}

#[test]
fn r_e3_a_member_back_on_the_list_by_the_esps_doing_is_a_signup_again() {
    let link = brevo("nl");
    let known = known_with(&link, &[("erika@example.com", recipient(false, true))]);
    let found = drift::differences(&link, &known, &[member("erika@example.com", true, false)], noon("2024-09-25"));
    assert_eq!(found.now.len(), 1);
    assert!(matches!(found.now[0].what, EspEventKind::Signup { .. }));
}

#[test]
fn r_e1_r_f5_a_receiving_recipient_the_esp_deactivated_is_an_end_at_the_esps_time() {
    let link = cleverreach("nl");
    let known = known_with(&link, &[("erika@example.com", recipient(true, true))]);
    let when = noon("2024-09-20");
    let listed = ListedMember { changed_at: Some(when), ..member("erika@example.com", false, false) };
    let found = drift::differences(&link, &known, &[listed], noon("2024-09-25"));
    assert!(found.now.is_empty());
    assert_eq!(
        kinds(&found.ends),
        [("erika@example.com".to_owned(), Some(link.list.clone()), EspEventKind::Deactivated)]
    );
    assert_eq!(found.ends[0].at, when, "the ESP wins, at its own time");
}

#[test]
fn r_e2_a_brevo_blacklist_is_an_account_wide_end() {
    let link = brevo("nl");
    let known = known_with(&link, &[("max@example.com", recipient(true, true))]);
    let found = drift::differences(&link, &known, &[member("max@example.com", false, true)], noon("2024-09-25"));
    assert_eq!(kinds(&found.ends), [("max@example.com".to_owned(), None, EspEventKind::Blacklisted)]);

    // CleverReach has no account-wide blacklist: a blacklisted flag there is a deactivation in the group.
    let link = cleverreach("nl");
    let known = known_with(&link, &[("max@example.com", recipient(true, true))]);
    let found = drift::differences(&link, &known, &[member("max@example.com", false, true)], noon("2024-09-25"));
    assert_eq!(
        kinds(&found.ends),
        [("max@example.com".to_owned(), Some(link.list.clone()), EspEventKind::Deactivated)]
    );
}

#[test]
fn a_member_as_the_link_knows_it_is_no_difference() {
    // (A blacklisted contact on a Brevo list is always a difference: it is taken off the list, R-E2.)
    let link = cleverreach("nl");
    let known =
        known_with(&link, &[("max@example.com", recipient(true, true)), ("erika@example.com", recipient(true, false))]);
    let members = [member("max@example.com", true, false), member("erika@example.com", false, false)];
    let found = drift::differences(&link, &known, &members, noon("2024-09-25"));
    assert_eq!(found, Differences::default(), "receiving and known; not receiving and known as such");
    let link = brevo("nl");
    let known = known_with(&link, &[("max@example.com", recipient(true, true))]);
    let found = drift::differences(&link, &known, &[member("max@example.com", true, false)], noon("2024-09-25"));
    assert_eq!(found, Differences::default());
    // Neither is a member unknown to the link that does not receive mail.
    let found = drift::differences(&link, &known, &[member("paul@example.com", false, false)], noon("2024-09-25"));
    assert_eq!(found, Differences::default());
}

#[test]
fn r_g3_r_g4_a_segment_member_without_an_active_assignment_becomes_segment_membership() {
    let link = segment_link();
    let mut known = known_with(
        &link,
        &[
            ("max@example.com", recipient(true, true)),
            (
                "paul@example.com",
                RecipientState { pending_create: Some(CommandId::new("c-1")), ..recipient(true, true) },
            ),
        ],
    );
    mirrored(&mut known, "a-max", "max@example.com");
    let lena = email("lena@example.com");
    known.approvals.insert(
        lena.clone(),
        ApprovalEntry {
            link: link.id.clone(),
            email: lena,
            signup: Signup::default(),
            first_seen: noon("2024-09-01"),
            last_seen: noon("2024-09-01"),
            signups: 1,
            status: ApprovalStatus::Pending,
            match_command: CommandId::new("m-1"),
            decision: None,
            created: None,
        },
    );
    let members = [
        member("max@example.com", true, false),    // active assignment, receiving: nothing
        member("paul@example.com", true, false),   // an assignment already asked for: nothing
        member("lena@example.com", true, false),   // waits for approval: nothing
        member("anna@example.com", true, false),   // unknown: segment membership
        member("erika@example.com", false, false), // not receiving: nothing
    ];
    let found = drift::differences(&link, &known, &members, noon("2024-09-02"));
    let joined =
        EspEventKind::SegmentMembership { segment: SegmentId::new("S1"), member: true, signup: Signup::default() };
    assert_eq!(kinds(&found.now), [("anna@example.com".to_owned(), Some(link.list.clone()), joined.clone())]);
    assert!(found.ends.is_empty(), "a segment link ends only through the sweep");

    // R-G4: a known member in the segment whose assignment ended by hand gets a new one.
    known.mirror.clear();
    let found = drift::differences(&link, &known, &[member("max@example.com", true, false)], noon("2024-09-04"));
    assert_eq!(kinds(&found.now), [("max@example.com".to_owned(), Some(link.list.clone()), joined)]);
}

#[test]
fn r_e1_r_e4_a_recipient_on_the_list_the_complete_listing_did_not_show_is_deleted() {
    let link = brevo("nl");
    let page = [
        (email("erika@example.com"), recipient(true, true)), // deleted in the ESP
        (email("max@example.com"), recipient(true, true)),   // listed
        (email("paul@example.com"), recipient(false, true)), // not on the list: not expected
        (email("lena@example.com"), recipient(true, false)), // blacklisted but on the list: expected
    ];
    let seen = |e: &Email| e.key() == "max@example.com";
    let candidates: Vec<&str> = drift::sweep_candidates(&link, &page, seen).iter().map(|e| e.key()).collect();
    assert_eq!(candidates, ["erika@example.com", "lena@example.com"]);
    assert!(drift::lookup_before_ending(&link), "paging may have missed a member: looked up first");
    let now = noon("2024-09-25");
    let gone = drift::gone_from_list(&link, &email("erika@example.com"), now);
    assert_eq!(
        kinds(std::slice::from_ref(&gone)),
        [("erika@example.com".to_owned(), Some(link.list.clone()), EspEventKind::Deleted)]
    );
    assert_eq!((gone.at, gone.esp), (now, link.esp.clone()));
}

#[test]
fn r_g4_a_segment_recipient_missing_from_the_listing_left_the_segment() {
    let link = segment_link();
    let page = [
        (email("max@example.com"), recipient(true, true)), // left the segment
        (email("erika@example.com"), recipient(true, false)), // inactive in the group: not listed by a segment
        (email("lena@example.com"), recipient(true, true)), // in the segment
    ];
    let seen = |e: &Email| e.key() == "lena@example.com";
    let candidates: Vec<&str> = drift::sweep_candidates(&link, &page, seen).iter().map(|e| e.key()).collect();
    assert_eq!(candidates, ["max@example.com"]);
    assert!(!drift::lookup_before_ending(&link), "a segment's membership cannot be looked up: the listing is trusted");
    let gone = drift::gone_from_list(&link, &email("max@example.com"), noon("2024-09-03"));
    let left =
        EspEventKind::SegmentMembership { segment: SegmentId::new("S1"), member: false, signup: Signup::default() };
    assert_eq!(kinds(&[gone]), [("max@example.com".to_owned(), Some(link.list.clone()), left)]);
}

#[test]
fn r_f8_the_guard_holds_above_its_share_and_from_its_minimum() {
    let g = Guard::default();
    assert_eq!((g.share, g.min), (0.1, 10));
    assert!(g.holds(30, 40), "30 of 40 receivers deactivated: 75 %, over the default 10 %");
    assert!(!g.holds(4, 40) && !g.holds(9, 10) && g.holds(10, 40) && !g.holds(10, 100));
    let strict = Guard { share: 0.5, min: 1 };
    assert!(strict.holds(1, 0), "an empty listing counts as one member");
    assert!(!strict.holds(2, 4) && strict.holds(3, 4));
}

/// R-E8: an admin re-activated the receiver in the ESP (or it opted in again) while the link holds it
/// inactive because its assignment ended: the listing's report is a signup, which the planner queues for
/// approval. An inactive recipient whose assignment is not ended (a delivery block, count 0) is no
/// signup, and neither is a listing older than optisync's own deactivation (R-C6).
#[test]
fn r_e8_a_member_reactivated_in_the_esp_while_its_assignment_is_ended_is_a_signup() {
    for link in [cleverreach("nl"), brevo("nl")] {
        let mut known = known_with(&link, &[("max@example.com", recipient(true, false))]);
        mirrored(&mut known, "a1", "max@example.com");
        let entry = known.mirror.get_mut(&AssignmentId::new("a1")).unwrap();
        entry.snapshot.as_mut().unwrap().end = Some(ym("2024-05"));
        let started = noon("2024-09-25");
        let found = drift::differences(&link, &known, &[member("max@example.com", true, false)], started);
        assert_eq!(found.now.len(), 1, "{link:?}: {found:?}");
        assert!(matches!(found.now[0].what, EspEventKind::Signup { .. }));

        // Optisync deactivated it after the listing began: the listing shows it before the write.
        let mut echo = known.clone();
        let state = echo.recipients.get_mut(&email("max@example.com")).unwrap();
        state.written = Some(Written { op: WrittenOp::Deactivated, at: started + chrono::Duration::minutes(1) });
        let found = drift::differences(&link, &echo, &[member("max@example.com", true, false)], started);
        assert!(found.now.is_empty(), "{link:?}: {found:?}");

        // Not ended, only blocked: no signup.
        let mut blocked = known_with(&link, &[("max@example.com", recipient(true, false))]);
        mirrored(&mut blocked, "a1", "max@example.com");
        let found = drift::differences(&link, &blocked, &[member("max@example.com", true, false)], started);
        assert!(found.now.is_empty(), "{link:?}: {found:?}");
    }
}

/// An address the account blocks for every list.
fn blocked(mail: &str, block: Block, at: Option<&str>) -> BlockedAddress {
    BlockedAddress { email: email(mail), block, at: at.map(noon) }
}

#[test]
fn r_e9_a_blacklisted_recipient_the_link_holds_as_receiving_is_an_account_wide_end_at_the_blacklists_time() {
    let link = cleverreach("rundbrief");
    let known = known_with(
        &link,
        &[
            ("max.muster@example.com", recipient(true, true)),
            ("erika@example.com", recipient(true, false)),
            ("paul@example.com", recipient(false, true)),
        ],
    );
    let page = [
        blocked("max.muster@example.com", Block::Blacklisted, Some("2024-05-15")),
        blocked("erika@example.com", Block::Blacklisted, Some("2024-05-15")),
        blocked("paul@example.com", Block::Blacklisted, None),
        blocked("lena@example.com", Block::Blacklisted, None),
    ];
    let found = drift::blocked(&link, &known, &page, noon("2024-06-01"));
    assert_eq!(
        kinds(&found.ends),
        [("max.muster@example.com".to_owned(), None, EspEventKind::Blacklisted)],
        "account-wide; one already inactive, one off the list and one unknown to the link end nothing here"
    );
    assert_eq!(found.ends[0].at, noon("2024-05-15"), "dated when the address was blacklisted");
    assert_eq!(found.bounced, 0);

    let undated = [blocked("max.muster@example.com", Block::Blacklisted, None)];
    assert_eq!(drift::blocked(&link, &known, &undated, noon("2024-06-01")).ends[0].at, noon("2024-06-01"));
}

#[test]
fn r_e9_r_e6_a_blocked_hard_bounce_is_counted_and_ends_nothing() {
    let link = cleverreach("rundbrief");
    let known = known_with(
        &link,
        &[("max.muster@example.com", recipient(true, true)), ("erika@example.com", recipient(true, false))],
    );
    let page = [
        blocked("max.muster@example.com", Block::HardBounce, Some("2024-05-15")),
        blocked("erika@example.com", Block::HardBounce, Some("2024-05-15")),
        blocked("lena@example.com", Block::HardBounce, None),
    ];
    let found = drift::blocked(&link, &known, &page, noon("2024-06-01"));
    assert_eq!(found, Blocks { ends: vec![], bounced: 1 }, "only the receiving recipient counts; nothing ends");
}

/// One page of the listing as the run applies it: the differences to what the link knows, each through
/// the planner (those applied at once, then the ends), the state kept between them.
fn apply_page(k: &mut Known, link: &Link, members: &[ListedMember], started: &str) -> Vec<Plan> {
    let found = drift::differences(link, view(k, link), members, noon(started));
    found.now.into_iter().chain(found.ends).map(|event| step(k, Input::Esp(event), started)).collect()
}

/// R-E2 (B9): a contact found blacklisted on a linked Brevo list leaves that list whether or not it has
/// an assignment: Max Muster, whom the link has never seen (its first sync), and Erika, whom the link took
/// off the list when her assignment ended and whom someone put back on "Rundbrief" in Brevo while she is
/// blacklisted. Nothing is asked of OPTIGEM for them, and the link remembers both as blacklisted, so the
/// same listing again plans nothing: once.
#[test]
fn r_e2_a_contact_found_blacklisted_on_a_linked_list_leaves_it_whether_or_not_it_has_an_assignment() {
    let link = Link { status: LinkStatus::Linking, ..brevo("rundbrief") };
    let mut k = known(vec![link.clone()]);
    k.links[0].recipients.insert(email("erika@example.com"), recipient(false, true));
    let changed = Some(noon("2024-09-20"));
    let members = [
        ListedMember { changed_at: changed, ..member("max.muster@example.com", false, true) },
        ListedMember { changed_at: changed, ..member("erika@example.com", false, true) },
    ];
    let plans = apply_page(&mut k, &link, &members, "2024-09-25");
    let removed: Vec<_> = plans.iter().flat_map(ops).collect();
    assert_eq!(
        removed,
        [
            op("br-rundbrief", "max.muster@example.com", "remove_from_list"),
            op("br-rundbrief", "erika@example.com", "remove_from_list")
        ]
    );
    assert!(plans.iter().all(|p| p.commands.is_empty()), "no assignment: nothing to end, nothing to queue");
    for mail in ["max.muster@example.com", "erika@example.com"] {
        let state = common::recipient(&k, &link, mail);
        assert!(!state.listed && !state.active, "{mail}: off the list, known as blacklisted: {state:?}");
        assert!(state.tombstone.is_some(), "{mail}: only a deliberate subscription brings it back (R-J3)");
    }

    // The same listing again (a page repeated after a crash, or read before the removal reached Brevo).
    let again = apply_page(&mut k, &link, &members, "2024-09-25");
    assert!(again.iter().all(|p| p.esp.is_empty() && p.commands.is_empty() && p.writes.is_empty()), "{again:?}");
}

/// R-E3, R-C3: Max Muster signed up by a Brevo form; the `list_addition` named no attributes, and the
/// lookup found no names then, so his entry waits without them. The listing shows FIRSTNAME Max and
/// LASTNAME Muster: the entry gets them, OPTIGEM is asked again with them, and it still counts one
/// signup. The next listing changes nothing.
#[test]
fn r_e3_r_c3_a_listing_completes_a_pending_signup_that_came_without_names() {
    let link = brevo("rundbrief");
    let mut k = known(vec![link.clone()]);
    let webhook = Signup {
        evidence: ConsentEvidence {
            signup_at: Some(noon("2024-09-20")),
            source: Some("brevo:list_addition".into()),
            ..Default::default()
        },
        ..Signup::default()
    };
    step(
        &mut k,
        esp_event(
            &link,
            true,
            "max.muster@example.com",
            "2024-09-20",
            EspEventKind::Signup { signup: webhook.clone() },
        ),
        "2024-09-20",
    );
    assert!(!view(&k, &link).approvals[&email("max.muster@example.com")].signup.has_names());

    let listed = ListedMember {
        changed_at: Some(noon("2024-09-21")),
        signup: Signup {
            first_name: Some(PersonalText::new("Max")),
            last_name: Some(PersonalText::new("Muster")),
            evidence: ConsentEvidence { source: Some("brevo:list".into()), ..Default::default() },
        },
        ..member("max.muster@example.com", true, false)
    };
    let plans = apply_page(&mut k, &link, std::slice::from_ref(&listed), "2024-09-25");
    let entry = &view(&k, &link).approvals[&email("max.muster@example.com")];
    assert_eq!(entry.status, ApprovalStatus::Pending);
    assert_eq!(entry.signup.first_name.as_ref().map(|n| n.expose().to_owned()).as_deref(), Some("Max"));
    assert_eq!(entry.signup.last_name.as_ref().map(|n| n.expose().to_owned()).as_deref(), Some("Muster"));
    assert_eq!(entry.signup.evidence, webhook.evidence, "R-J1: the signup's own evidence stays");
    assert_eq!(entry.signups, 1, "no second signup");
    let asked: Vec<_> = plans
        .iter()
        .flat_map(|p| &p.commands)
        .filter_map(|c| match c {
            OptigemCommand::MatchPersons { id, first_name, last_name, .. } => Some((
                id.clone(),
                first_name.as_ref().map(|n| n.expose().to_owned()),
                last_name.as_ref().map(|n| n.expose().to_owned()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [(entry.match_command.clone(), Some("Max".to_owned()), Some("Muster".to_owned()))]);

    let again = apply_page(&mut k, &link, &[listed], "2024-09-25");
    assert!(again.is_empty(), "{again:?}");
}
