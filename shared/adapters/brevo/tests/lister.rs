//! The reconciliation's view of a Brevo list through the real client and the fake: offset pages, the
//! blacklist and per-list unsubscriptions as inactive, names from the mapped attributes, `modifiedSince`
//! deltas, and a cursor that survives a restart.

use chrono::{Duration, Utc};
use optisync_brevo::fake::{FAKE_API_KEY, FakeBrevo};
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig, BrevoGateway};
use optisync_domain::*;
use optisync_ports::EspLister;
use serde_json::json;

fn gateway(fake: &FakeBrevo) -> BrevoGateway {
    let mut cfg = BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY));
    cfg.list_page_size = 3;
    cfg.backoff_base = std::time::Duration::from_millis(5);
    BrevoGateway::new(BrevoClient::new(cfg).unwrap())
}

fn link(list: i64) -> Link {
    Link {
        id: LinkId::new("l1"),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new("nl"),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
        list: ListId::new(list.to_string()),
        segment: None,
        settings: LinkSettings {
            mapping: FieldMapping { first_name: Some(AttributeName::new("FIRSTNAME")), ..Default::default() },
            ..Default::default()
        },
        status: LinkStatus::Linked,
    }
}

async fn all(gw: &BrevoGateway, link: &Link, since: Option<chrono::DateTime<Utc>>) -> (Vec<ListedMemberView>, usize) {
    let (mut members, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let page = gw.list_page(link, since, cursor.as_deref()).await.unwrap();
        pages += 1;
        members.extend(page.members.into_iter().map(|m| ListedMemberView {
            email: m.email.key().to_owned(),
            active: m.active,
            blacklisted: m.blacklisted,
            first_name: m.signup.first_name.map(|n| n.expose().to_owned()),
        }));
        cursor = page.next;
        if cursor.is_none() {
            return (members, pages);
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ListedMemberView {
    email: String,
    active: bool,
    blacklisted: bool,
    first_name: Option<String>,
}

#[tokio::test]
async fn a_list_is_listed_by_offset_with_blacklisted_members_inactive_and_deltas_by_modified_since() {
    let fake = FakeBrevo::start().await;
    let (list, other) = (fake.add_list("Rundbrief"), fake.add_list("Other"));
    for i in 0..7 {
        fake.add_contact(
            &format!("m{i}@example.com"),
            json!({"FIRSTNAME": format!("N{i}")}).as_object().unwrap().clone(),
            &[list],
        );
    }
    fake.add_contact("elsewhere@example.com", Default::default(), &[other]);
    fake.blacklist("m3@example.com");
    let gw = gateway(&fake);

    let (mut members, pages) = all(&gw, &link(list), None).await;
    assert_eq!(pages, 3, "7 members, 3 a page");
    members.sort();
    assert_eq!(members.len(), 7, "every member once, nobody from the other list");
    let m3 = members.iter().find(|m| m.email == "m3@example.com").unwrap();
    assert!(!m3.active && m3.blacklisted);
    assert!(members.iter().filter(|m| m.email != "m3@example.com").all(|m| m.active && !m.blacklisted));
    assert_eq!(members[0].first_name.as_deref(), Some("N0"), "names from the mapped attribute");

    // A cursor from one process continues in another.
    let first = gw.list_page(&link(list), None, None).await.unwrap();
    let second = gateway(&fake).list_page(&link(list), None, first.next.as_deref()).await.unwrap();
    assert!(second.members.iter().all(|m| first.members.iter().all(|f| f.email != m.email)));

    // Only what changed since: one contact modified after the mark.
    let mark = Utc::now() + Duration::hours(1);
    for i in 0..7 {
        fake.set_modified_at(&format!("m{i}@example.com"), mark - Duration::hours(2));
    }
    fake.set_modified_at("m5@example.com", mark + Duration::minutes(5));
    let (changed, _) = all(&gw, &link(list), Some(mark)).await;
    assert_eq!(changed.iter().map(|m| m.email.as_str()).collect::<Vec<_>>(), ["m5@example.com"]);
}
