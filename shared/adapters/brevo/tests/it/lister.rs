//! The reconciliation's view of a Brevo list through the real client and the fake: offset pages, the
//! blacklist and per-list unsubscriptions as inactive, names from the mapped attributes, `modifiedSince`
//! deltas, and a cursor that survives a restart.

use chrono::{DateTime, Utc};
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig, BrevoGateway};
use optisync_domain::*;
use optisync_fakes::brevo::{FAKE_API_KEY, FakeBrevo};
use optisync_ports::{EspError, EspLister, ListPage, ListedMember};
use optisync_testkit::build;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// A gateway with a fresh client (a new process, as far as the lister can tell) reading 3 members a page.
fn gateway(fake: &FakeBrevo) -> BrevoGateway {
    let mut cfg = BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY));
    cfg.list_page_size = 3;
    cfg.backoff_base = Duration::from_millis(5);
    BrevoGateway::new(BrevoClient::new(cfg).unwrap())
}

fn link(list: i64) -> Link {
    Link {
        settings: LinkSettings { mapping: build::mapping("FIRSTNAME", Some("NACHNAME")), ..Default::default() },
        ..build::link("l1", "t1", "nl", build::esp(Provider::Brevo, "acc"), list.to_string())
    }
}

fn attrs(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// `m0@example.com` … `m{n-1}@example.com` on `list`, created in that order, first name `N{i}`.
fn seed(fake: &FakeBrevo, list: i64, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let email = format!("m{i}@example.com");
            fake.add_contact(&email, attrs(json!({"FIRSTNAME": format!("N{i}")})), &[list]);
            email
        })
        .collect()
}

/// Every page from the first, with the cursor each page handed on.
async fn pages(gw: &BrevoGateway, link: &Link, since: Option<DateTime<Utc>>) -> Vec<ListPage> {
    let (mut pages, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = gw.list_page(link, since, cursor.as_deref()).await.unwrap();
        cursor = page.next.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
    }
}

fn emails(members: &[ListedMember]) -> Vec<&str> {
    members.iter().map(|m| m.email.key()).collect()
}

fn member<'a>(pages: &'a [ListPage], email: &str) -> &'a ListedMember {
    pages.iter().flat_map(|p| &p.members).find(|m| m.email.key() == email).unwrap_or_else(|| panic!("{email} listed"))
}

#[tokio::test]
async fn a_list_is_read_in_pages_of_the_configured_size_in_creation_order_with_offset_cursors() {
    let fake = FakeBrevo::start().await;
    let (list, other) = (fake.add_list("Rundbrief"), fake.add_list("Gebetsbrief"));
    let seeded = seed(&fake, list, 7);
    fake.add_contact("elsewhere@example.com", Map::new(), &[other]);

    let pages = pages(&gateway(&fake), &link(list), None).await;

    let sizes: Vec<usize> = pages.iter().map(|p| p.members.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let cursors: Vec<Option<&str>> = pages.iter().map(|p| p.next.as_deref()).collect();
    assert_eq!(cursors, [Some("3"), Some("6"), None], "the next offset, none after the short page");
    let listed: Vec<&str> = pages.iter().flat_map(|p| emails(&p.members)).collect();
    assert_eq!(listed, seeded, "every member once, oldest first, nobody from the other list");
    assert!(pages.iter().flat_map(|p| &p.members).all(|m| m.active && !m.blacklisted));
}

#[tokio::test]
async fn a_full_last_page_ends_the_listing_by_the_count_without_asking_for_an_empty_page() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    seed(&fake, list, 6);

    let pages = pages(&gateway(&fake), &link(list), None).await;

    assert_eq!(pages.iter().map(|p| p.members.len()).collect::<Vec<_>>(), [3, 3]);
    assert_eq!(pages[1].next, None, "offset 6 reaches the count of 6");
    assert_eq!(fake.calls("GET", &format!("/contacts/lists/{list}/contacts")), 2);
}

#[tokio::test]
async fn r_e2_blacklisted_and_list_unsubscribed_members_are_listed_as_not_receiving() {
    let fake = FakeBrevo::start().await;
    let (list, other) = (fake.add_list("Rundbrief"), fake.add_list("Gebetsbrief"));
    fake.enable_per_list_unsubscription();
    seed(&fake, list, 5);
    fake.add_contact("m9@example.com", Map::new(), &[list, other]);
    assert!(fake.blacklist("m1@example.com"));
    assert!(fake.unsubscribe_from_list("m3@example.com", list));
    assert!(fake.unsubscribe_from_list("m9@example.com", other), "unsubscribed from the other list only");

    let pages = pages(&gateway(&fake), &link(list), None).await;

    let state = |email: &str| {
        let m = member(&pages, email);
        (m.active, m.blacklisted)
    };
    assert_eq!(state("m1@example.com"), (false, true), "blacklisted: on the list, receives nothing");
    assert_eq!(state("m3@example.com"), (false, false), "unsubscribed from this list, not blacklisted");
    assert_eq!(state("m9@example.com"), (true, false), "an unsubscription from another list does not count");
    for email in ["m0@example.com", "m2@example.com", "m4@example.com"] {
        assert_eq!(state(email), (true, false), "{email}");
    }
}

#[tokio::test]
async fn r_j1_names_come_from_the_mapped_attributes_and_the_evidence_from_the_contact() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    fake.add_contact("named@example.com", attrs(json!({"FIRSTNAME": " Erika ", "NACHNAME": "Muster"})), &[list]);
    // LASTNAME is not the mapped attribute; an empty or non-text value is no name.
    fake.add_contact("other@example.com", attrs(json!({"FIRSTNAME": "", "LASTNAME": "Muster"})), &[list]);
    fake.add_contact("number@example.com", attrs(json!({"FIRSTNAME": 7})), &[list]);

    let pages = pages(&gateway(&fake), &link(list), None).await;

    let name = |email: &str| {
        let s = &member(&pages, email).signup;
        (s.first_name.as_ref().map(|n| n.expose().to_owned()), s.last_name.as_ref().map(|n| n.expose().to_owned()))
    };
    assert_eq!(name("named@example.com"), (Some("Erika".into()), Some("Muster".into())));
    assert_eq!(name("other@example.com"), (None, None));
    assert_eq!(name("number@example.com"), (None, None));
    let stored = fake.contact("named@example.com").unwrap();
    let named = member(&pages, "named@example.com");
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    assert_eq!(named.signup.evidence.signup_at.map(ms), Some(ms(stored.created_at)), "created in Brevo");
    assert_eq!(named.signup.evidence.source.as_deref(), Some("brevo:list"));
    assert_eq!(named.changed_at.map(ms), Some(ms(stored.modified_at)), "Brevo's last modification");
}

#[tokio::test]
async fn with_since_only_the_members_modified_after_it_are_listed() {
    let fake = FakeBrevo::start().await;
    let (list, other) = (fake.add_list("Rundbrief"), fake.add_list("Gebetsbrief"));
    seed(&fake, list, 7);
    fake.add_contact("elsewhere@example.com", Map::new(), &[other]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Changed after the mark through the API: a name on the list, and a contact of another list.
    let client = BrevoClient::new(BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY))).unwrap();
    client.upsert_contact("m5@example.com", attrs(json!({"FIRSTNAME": "Neu"})), &[]).await.unwrap();
    client.upsert_contact("elsewhere@example.com", attrs(json!({"FIRSTNAME": "X"})), &[]).await.unwrap();

    let pages = pages(&gateway(&fake), &link(list), Some(since)).await;

    let listed: Vec<&str> = pages.iter().flat_map(|p| emails(&p.members)).collect();
    assert_eq!(listed, ["m5@example.com"]);
    assert_eq!(member(&pages, "m5@example.com").signup.first_name.as_ref().map(|n| n.expose()), Some("Neu"));
    let everyone = self::pages(&gateway(&fake), &link(list), None).await;
    assert_eq!(everyone.iter().map(|p| p.members.len()).sum::<usize>(), 7, "without since: everyone");
}

#[tokio::test]
async fn a_cursor_from_one_process_continues_the_listing_in_a_new_one() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    let seeded = seed(&fake, list, 7);

    let first = gateway(&fake).list_page(&link(list), None, None).await.unwrap();
    let cursor = first.next.clone().expect("more pages");
    // The checkpoint holds only the string; a new gateway with a new client picks it up.
    let second = gateway(&fake).list_page(&link(list), None, Some(&cursor)).await.unwrap();
    let third = gateway(&fake).list_page(&link(list), None, second.next.as_deref()).await.unwrap();

    assert_eq!(emails(&first.members), seeded[..3]);
    assert_eq!(emails(&second.members), seeded[3..6]);
    assert_eq!(emails(&third.members), seeded[6..]);
    assert_eq!(third.next, None);
}

#[tokio::test]
async fn a_member_without_a_valid_email_is_skipped_without_losing_the_offset() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    fake.add_contact("a@example.com", Map::new(), &[list]);
    fake.add_contact("not an e-mail", Map::new(), &[list]);
    fake.add_contact("b@example.com", Map::new(), &[list]);
    fake.add_contact("c@example.com", Map::new(), &[list]);

    let pages = pages(&gateway(&fake), &link(list), None).await;

    assert_eq!(emails(&pages[0].members), ["a@example.com", "b@example.com"]);
    assert_eq!(pages[0].next.as_deref(), Some("3"), "the offset counts what Brevo returned");
    assert_eq!(emails(&pages[1].members), ["c@example.com"]);
}

#[tokio::test]
async fn a_list_id_or_cursor_brevo_cannot_have_issued_is_rejected() {
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    let mut named = link(list);
    named.list = ListId::new("Rundbrief");
    let gw = gateway(&fake);

    assert!(matches!(gw.list_page(&named, None, None).await, Err(EspError::Rejected(_))));
    assert!(matches!(gw.list_page(&link(list), None, Some("page-2")).await, Err(EspError::Rejected(_))));
    assert!(matches!(gw.list_page(&link(list + 1), None, None).await, Err(EspError::Rejected(_))), "no such list");
}

#[tokio::test]
async fn one_member_is_looked_up_on_the_list_by_its_address() {
    let fake = FakeBrevo::start().await;
    let (list, other) = (fake.add_list("Rundbrief"), fake.add_list("Andere"));
    seed(&fake, list, 2);
    fake.add_contact("elsewhere@example.com", Map::new(), &[other]);
    let gw = gateway(&fake);
    let listed = |mail: &str| {
        let (gw, link, mail) = (&gw, link(list), Email::parse(mail).unwrap());
        async move { gw.is_listed(&link, &mail).await.unwrap() }
    };
    assert!(listed("m1@example.com").await);
    assert!(!listed("elsewhere@example.com").await, "a contact on another list only");
    assert!(!listed("nobody@example.com").await, "no such contact");
}

/// R-E3, R-C3: a `list_addition` names no attributes, so a signup's names are read back from the contact:
/// one `GET /contacts/{email}`, the names from the attributes the link maps (FIRSTNAME Max, NACHNAME
/// Muster; LASTNAME is not mapped here). An address Brevo does not know has none.
#[tokio::test]
async fn r_e3_a_signups_names_are_read_back_from_the_contact_in_one_call() {
    use optisync_ports::EspReader;
    let fake = FakeBrevo::start().await;
    let list = fake.add_list("Rundbrief");
    fake.add_contact(
        "max.muster@example.com",
        attrs(json!({"FIRSTNAME": "Max", "NACHNAME": "Muster", "LASTNAME": "Other"})),
        &[list],
    );
    let gw = gateway(&fake);
    let max = Email::parse("max.muster@example.com").unwrap();
    let signup = gw.signup(&link(list), &max).await.unwrap().expect("Brevo knows Max");
    assert_eq!(signup.first_name.as_ref().map(|n| n.expose()), Some("Max"));
    assert_eq!(signup.last_name.as_ref().map(|n| n.expose()), Some("Muster"));
    assert_eq!(fake.request_log().len(), 1);
    assert_eq!(fake.calls("GET", "/contacts/max.muster@example.com"), 1);

    let unknown = Email::parse("lena@example.com").unwrap();
    assert_eq!(gw.signup(&link(list), &unknown).await.unwrap(), None);
}
