//! The reconciliation's view of a CleverReach group through the real client and the fake: pages by page
//! number, inactive receivers with their deactivation time, a segment's active members only, and a
//! cursor that survives a restart.

use chrono::{DateTime, Utc};
use optisync_cleverreach::webhook::observation;
use optisync_cleverreach::{CleverReachClient, CleverReachGateway, FilterRule, MemoryTokenStore, ReceiverEventKind};
use optisync_domain::*;
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_ports::{EspError, EspGateway, EspLister, ListPage, ListedMember};
use optisync_testkit::build;
use std::sync::Arc;

/// A gateway with a fresh client (a new process, as far as the lister can tell) reading 3 receivers a page.
async fn gateway(fake: &FakeCleverReach) -> CleverReachGateway {
    let mut cfg = fake.client_config();
    cfg.page_size = 3;
    let client = CleverReachClient::new(cfg, Arc::new(MemoryTokenStore::new()));
    client.set_tokens(fake.issue_tokens()).await;
    CleverReachGateway::new(client)
}

fn link(group: &str, segment: Option<&str>) -> Link {
    Link {
        segment: segment.map(SegmentId::new),
        ..build::link("l1", "t1", "nl", build::esp(Provider::CleverReach, "acc"), group)
    }
}

/// Every page from the first, with the cursor each page handed on.
async fn pages(gw: &CleverReachGateway, link: &Link) -> Vec<ListPage> {
    let (mut pages, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = gw.list_page(link, None, cursor.as_deref()).await.unwrap();
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

fn listed(pages: &[ListPage]) -> Vec<&str> {
    pages.iter().flat_map(|p| emails(&p.members)).collect()
}

fn member<'a>(pages: &'a [ListPage], email: &str) -> &'a ListedMember {
    pages.iter().flat_map(|p| &p.members).find(|m| m.email.key() == email).unwrap_or_else(|| panic!("{email} listed"))
}

fn at(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// `r0@example.com` … `r{n-1}@example.com` in `group`, active since `activated`.
fn seed(fake: &FakeCleverReach, group: &str, n: usize, activated: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let email = format!("r{i}@example.com");
            fake.add_receiver(group, &email, activated, 0, &[]);
            email
        })
        .collect()
}

fn region_filter(fake: &FakeCleverReach, group: &str, region: &str) -> String {
    let rule =
        FilterRule { operator: "AND".into(), field: "region".into(), logic: "eq".into(), condition: region.into() };
    fake.add_filter(group, region, "AND", vec![rule])
}

#[tokio::test]
async fn a_group_is_read_in_pages_of_the_configured_size_with_page_number_cursors() {
    let fake = FakeCleverReach::start().await;
    let (group, other) = (fake.add_group("Newsletter"), fake.add_group("Other"));
    let t = Utc::now().timestamp() - 3600;
    let seeded = seed(&fake, &group, 7, t);
    fake.add_receiver(&other, "elsewhere@example.com", t, 0, &[]);

    let pages = pages(&gateway(&fake).await, &link(&group, None)).await;

    assert_eq!(pages.iter().map(|p| p.members.len()).collect::<Vec<_>>(), [3, 3, 1]);
    let cursors: Vec<Option<&str>> = pages.iter().map(|p| p.next.as_deref()).collect();
    assert_eq!(cursors, [Some("1"), Some("2"), None], "the next page number, none after the short page");
    assert_eq!(listed(&pages), seeded, "every receiver once, nobody from the other group");
    let asked: Vec<String> =
        fake.requests().into_iter().filter(|r| r.path.ends_with("/receivers")).map(|r| r.query).collect();
    assert_eq!(asked.len(), 3);
    for (page, query) in asked.iter().enumerate() {
        for part in [format!("page={page}"), "pagesize=3".into(), "type=all".into()] {
            assert!(query.split('&').any(|q| q == part), "{part} in {query}");
        }
    }
}

#[tokio::test]
async fn inactive_receivers_are_listed_as_not_receiving_since_their_deactivation() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let t = Utc::now().timestamp() - 3600;
    fake.add_receiver(&group, "active@example.com", t, 0, &[]);
    fake.add_receiver(&group, "admin-off@example.com", t, t + 60, &[]);
    fake.add_receiver(&group, "link-off@example.com", t, 0, &[]);
    fake.add_receiver(&group, "api-off@example.com", t, 0, &[]);
    fake.add_receiver(&group, "pending@example.com", 0, 0, &[]);
    fake.unsubscribe_via_link(&group, "link-off@example.com");
    let gw = gateway(&fake).await;
    gw.apply(&[EspAction {
        link: LinkId::new("l1"),
        esp: link(&group, None).esp,
        list: ListId::new(group.as_str()),
        email: Email::parse("api-off@example.com").unwrap(),
        op: EspOp::Deactivate,
    }])
    .await
    .unwrap();

    let pages = pages(&gw, &link(&group, None)).await;

    assert_eq!(listed(&pages).len(), 5, "inactive receivers are listed too");
    let state = |email: &str| {
        let m = member(&pages, email);
        (m.active, m.blacklisted, m.changed_at)
    };
    assert_eq!(state("active@example.com"), (true, false, at(t)), "active since the activation");
    assert_eq!(state("admin-off@example.com"), (false, false, at(t + 60)), "the deactivation time");
    for email in ["link-off@example.com", "api-off@example.com"] {
        let deactivated = fake.receiver(&group, email).unwrap().deactivated;
        assert!(deactivated > t);
        assert_eq!(state(email), (false, false, at(deactivated)), "{email}");
    }
    assert_eq!(state("pending@example.com"), (false, false, None), "never activated (double opt-in pending)");
}

#[tokio::test]
async fn r_j1_a_listed_receivers_signup_is_the_one_its_webhook_observation_reports() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let t = Utc::now().timestamp() - 3600;
    fake.add_receiver(&group, "ann@example.com", t, 0, &[("firstname", "Ann"), ("lastname", "Muster")]);
    fake.add_receiver(&group, "nameless@example.com", t, 0, &[("firstname", "  ")]);
    fake.record_client_ip(&group, "ann@example.com", "192.0.2.44");

    let pages = pages(&gateway(&fake).await, &link(&group, None)).await;

    let ann = &member(&pages, "ann@example.com").signup;
    assert_eq!(ann.first_name.as_ref().map(|n| n.expose()), Some("Ann"));
    assert_eq!(ann.last_name.as_ref().map(|n| n.expose()), Some("Muster"));
    assert_eq!(ann.evidence.confirmed_at, at(t), "activation = double opt-in confirmation");
    assert!(ann.evidence.signup_at.is_some_and(|s| s < at(t).unwrap()), "registered before the activation");
    assert_eq!(ann.evidence.source.as_deref(), Some("Fake seed"));
    assert_eq!(ann.evidence.ip.as_ref().map(|ip| ip.expose()), Some("192.0.2.44"), "R-J1: CleverReach's last_ip");
    assert_eq!(member(&pages, "nameless@example.com").signup.evidence.ip, None, "no IP when CleverReach has none");
    assert_eq!(member(&pages, "nameless@example.com").signup.first_name, None, "a blank name is no name");
    for email in ["ann@example.com", "nameless@example.com"] {
        let receiver = fake.receiver(&group, email).unwrap();
        let event = observation(
            ReceiverEventKind::Subscribed,
            Some(&receiver),
            &Email::parse(email).unwrap(),
            &ListId::new(group.as_str()),
            &AccountId::new("acc"),
            Utc::now(),
        );
        let EspEventKind::Signup { signup } = event.what else { panic!("a signup: {:?}", event.what) };
        assert_eq!(member(&pages, email).signup, signup, "{email}: the same signup as the webhook");
    }
}

#[tokio::test]
async fn r_g1_a_segment_link_lists_the_filters_receivers_that_are_active_in_the_group() {
    let fake = FakeCleverReach::start().await;
    let (group, other) = (fake.add_group("Newsletter"), fake.add_group("Other"));
    let t = Utc::now().timestamp() - 3600;
    let mut north = Vec::new();
    for i in 0..11 {
        let (email, region) = (format!("r{i}@example.com"), if i % 3 == 0 { "south" } else { "north" });
        let deactivated = if i == 4 { t + 60 } else { 0 };
        fake.add_receiver(&group, &email, t, deactivated, &[("region", region)]);
        if region == "north" && i != 4 {
            north.push(email);
        }
    }
    fake.add_receiver(&other, "elsewhere@example.com", t, 0, &[("region", "north")]);
    let segment = region_filter(&fake, &group, "north");

    let pages = pages(&gateway(&fake).await, &link(&group, Some(&segment))).await;

    assert_eq!(north.len(), 6);
    assert_eq!(pages.iter().map(|p| p.members.len()).collect::<Vec<_>>(), [3, 3, 0], "an empty page ends a full one");
    assert_eq!(listed(&pages), north, "north and active in the group: r4 is north but inactive");
    assert!(pages.iter().flat_map(|p| &p.members).all(|m| m.active && !m.blacklisted && m.changed_at == at(t)));
    let asked: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(&format!("/filters/{segment}/receivers")))
        .map(|r| r.query)
        .collect();
    assert_eq!(asked.len(), 3);
    assert!(asked.iter().all(|q| q.split('&').any(|p| p == "type=active")), "{asked:?}");
}

#[tokio::test]
async fn a_cursor_from_one_process_continues_the_listing_in_a_new_one() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let seeded = seed(&fake, &group, 7, Utc::now().timestamp() - 3600);
    let group_link = link(&group, None);

    let first = gateway(&fake).await.list_page(&group_link, None, None).await.unwrap();
    let cursor = first.next.clone().expect("more pages");
    // The checkpoint holds only the string; a new gateway with a new client picks it up.
    let second = gateway(&fake).await.list_page(&group_link, None, Some(&cursor)).await.unwrap();
    let third = gateway(&fake).await.list_page(&group_link, None, second.next.as_deref()).await.unwrap();

    assert_eq!(emails(&first.members), seeded[..3]);
    assert_eq!(emails(&second.members), seeded[3..6]);
    assert_eq!(emails(&third.members), seeded[6..]);
    assert_eq!(third.next, None);
}

#[tokio::test]
async fn cleverreach_has_no_delta_so_a_listing_since_a_time_lists_everyone() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let seeded = seed(&fake, &group, 4, Utc::now().timestamp() - 3600);
    let gw = gateway(&fake).await;

    let mut members = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let page = gw.list_page(&link(&group, None), Some(Utc::now()), cursor.as_deref()).await.unwrap();
        members.extend(page.members);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }

    assert_eq!(emails(&members), seeded);
}

#[tokio::test]
async fn a_receiver_without_a_valid_email_is_skipped_without_losing_the_page() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let t = Utc::now().timestamp() - 3600;
    for email in ["a@example.com", "not an e-mail", "b@example.com", "c@example.com"] {
        fake.add_receiver(&group, email, t, 0, &[]);
    }

    let pages = pages(&gateway(&fake).await, &link(&group, None)).await;

    assert_eq!(emails(&pages[0].members), ["a@example.com", "b@example.com"]);
    assert_eq!(pages[0].next.as_deref(), Some("1"), "the page was full as CleverReach returned it");
    assert_eq!(listed(&pages), ["a@example.com", "b@example.com", "c@example.com"]);
}

#[tokio::test]
async fn a_cursor_cleverreach_paging_cannot_have_issued_is_rejected() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let gw = gateway(&fake).await;

    let listed = gw.list_page(&link(&group, None), None, Some("offset-3")).await;

    assert!(matches!(listed, Err(EspError::Rejected(_))), "{listed:?}");
}

#[tokio::test]
async fn one_receiver_is_looked_up_in_the_group_by_its_address() {
    let fake = FakeCleverReach::start().await;
    let (group, other) = (fake.add_group("Newsletter"), fake.add_group("Andere"));
    let t = Utc::now().timestamp() - 3600;
    fake.add_receiver(&group, "in@example.com", t, 0, &[]);
    fake.add_receiver(&group, "inactive@example.com", t, t + 60, &[]);
    fake.add_receiver(&other, "elsewhere@example.com", t, 0, &[]);
    let gw = gateway(&fake).await;
    let listed = |mail: &str, segment: Option<&str>| {
        let (gw, link, mail) = (&gw, link(&group, segment), Email::parse(mail).unwrap());
        async move { gw.is_listed(&link, &mail).await.unwrap() }
    };
    assert!(listed("in@example.com", None).await);
    assert!(listed("inactive@example.com", None).await, "in the group, if inactive");
    assert!(!listed("elsewhere@example.com", None).await, "another group's receiver");
    assert!(!listed("inactive@example.com", Some("f1")).await, "a segment link asks for an active receiver");
}

/// Every page of what the account blocks, with the cursor each page handed on.
async fn blocked_pages(gw: &CleverReachGateway, link: &Link) -> Vec<optisync_ports::BlockedPage> {
    let (mut pages, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = gw.blocked_page(link, cursor.as_deref()).await.unwrap();
        cursor = page.next.clone();
        pages.push(page);
        if cursor.is_none() {
            return pages;
        }
    }
}

#[tokio::test]
async fn r_e9_the_lister_gives_the_account_blacklist_then_the_hard_bounces_it_still_blocks_page_by_page() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Rundbrief");
    fake.add_receiver(&group, "max.muster@example.com", 1_700_000_000, 0, &[]);
    let may_15 = DateTime::parse_from_rfc3339("2024-05-15T10:00:00Z").unwrap().timestamp();
    fake.blacklist("max.muster@example.com", may_15);
    let now = Utc::now().timestamp();
    fake.hard_bounce("erika@example.com", may_15, now + 86_400);
    fake.hard_bounce("paul@example.com", may_15, now - 60); // expired: blocks nothing any more
    for i in 0..500 {
        fake.hard_bounce(&format!("b{i:03}@example.com"), may_15, now + 86_400);
    }
    let link = link(&group, None);
    fake.clear_log();
    let pages = blocked_pages(&gateway(&fake).await, &link).await;

    use optisync_ports::{Block, BlockedAddress};
    assert_eq!(pages.len(), 3, "the blacklist, then two pages of 500 bounces");
    assert_eq!(
        pages[0].blocked,
        [BlockedAddress {
            email: Email::parse("max.muster@example.com").unwrap(),
            block: Block::Blacklisted,
            at: at(may_15)
        }]
    );
    let bounces: Vec<&BlockedAddress> = pages[1..].iter().flat_map(|p| &p.blocked).collect();
    assert_eq!(bounces.len(), 501, "every hard bounce still blocked, the expired one left out");
    assert!(bounces.iter().all(|b| b.block == Block::HardBounce && b.at == at(may_15)));
    assert_eq!(bounces[0].email.key(), "erika@example.com");
    assert!(!bounces.iter().any(|b| b.email.key() == "paul@example.com"));
    let calls: Vec<String> = fake.requests().iter().map(|r| format!("{}?{}", r.path, r.query)).collect();
    assert_eq!(
        calls,
        ["/v3/blacklist.json?", "/v3/bounces.json?page=0&pagesize=500", "/v3/bounces.json?page=1&pagesize=500"],
        "one blacklist call per run, the bounces paged"
    );

    // A cursor survives a restart: a new process continues with the second page of bounces.
    let again = gateway(&fake).await.blocked_page(&link, pages[1].next.as_deref()).await.unwrap();
    assert_eq!(again, pages[2]);
    let bad = gateway(&fake).await.blocked_page(&link, Some("page-7")).await;
    assert!(matches!(bad, Err(EspError::Rejected(_))));
}

#[tokio::test]
async fn r_e9_deactivating_a_receiver_the_blacklist_setting_removed_from_the_group_is_done() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Rundbrief");
    fake.add_receiver(&group, "max.muster@example.com", 1_700_000_000, 0, &[]);
    fake.set_blacklist_unsubscribers(true);
    fake.unsubscribe_via_link(&group, "max.muster@example.com");
    let action = EspAction {
        link: LinkId::new("l1"),
        esp: build::esp(Provider::CleverReach, "acc"),
        list: ListId::new(&group),
        email: Email::parse("max.muster@example.com").unwrap(),
        op: EspOp::Deactivate,
    };
    gateway(&fake).await.apply(&[action]).await.expect("not in the group: receives nothing there");
    assert!(fake.receiver(&group, "max.muster@example.com").is_none());
}
