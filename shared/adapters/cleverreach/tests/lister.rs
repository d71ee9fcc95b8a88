//! The reconciliation's view of a CleverReach group through the real client and the fake: pages by page
//! number, inactive receivers with their deactivation time, a segment's active members only, and a
//! cursor that survives a restart.

use optisync_cleverreach::fake::FakeCleverReach;
use optisync_cleverreach::{CleverReachClient, CleverReachGateway, FilterRule, MemoryTokenStore};
use optisync_domain::*;
use optisync_ports::EspLister;
use std::sync::Arc;

async fn gateway(fake: &FakeCleverReach) -> CleverReachGateway {
    let mut cfg = fake.client_config();
    cfg.page_size = 3;
    let client = CleverReachClient::new(cfg, Arc::new(MemoryTokenStore::new()));
    client.set_tokens(fake.issue_tokens()).await;
    CleverReachGateway::new(client)
}

fn link(group: &str, segment: Option<&str>) -> Link {
    Link {
        id: LinkId::new("l1"),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new("nl"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new(group),
        segment: segment.map(SegmentId::new),
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    }
}

#[tokio::test]
async fn a_group_is_listed_page_by_page_with_inactive_receivers_and_a_segment_lists_its_active_members() {
    let fake = FakeCleverReach::start().await;
    let group = fake.add_group("Newsletter");
    let other = fake.add_group("Other");
    let t = chrono::Utc::now().timestamp() - 3600;
    for i in 0..7 {
        let region = if i % 2 == 0 { "north" } else { "south" };
        let deactivated = if i == 4 { t + 60 } else { 0 };
        fake.add_receiver(
            &group,
            &format!("r{i}@example.com"),
            t,
            deactivated,
            &[("region", region), ("firstname", "Ann")],
        );
    }
    fake.add_receiver(&other, "elsewhere@example.com", t, 0, &[]);
    let gw = gateway(&fake).await;

    let mut cursor: Option<String> = None;
    let mut members = Vec::new();
    let mut pages = 0;
    loop {
        // A new gateway for every page: the cursor alone says where to go on.
        let page = gateway(&fake).await.list_page(&link(&group, None), None, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(page.members.len() <= 3);
        members.extend(page.members);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let mut emails: Vec<&str> = members.iter().map(|m| m.email.key()).collect();
    emails.sort();
    assert_eq!(emails, (0..7).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>(), "every receiver once");
    let r4 = members.iter().find(|m| m.email.key() == "r4@example.com").unwrap();
    assert!(!r4.active && !r4.blacklisted);
    assert_eq!(r4.changed_at.map(|c| c.timestamp()), Some(t + 60), "the deactivation time");
    let r0 = members.iter().find(|m| m.email.key() == "r0@example.com").unwrap();
    assert!(r0.active);
    assert_eq!(r0.signup.first_name.as_ref().map(|n| n.expose().to_owned()), Some("Ann".to_owned()));
    assert_eq!(r0.signup.evidence.confirmed_at.map(|c| c.timestamp()), Some(t));

    let north = fake.add_filter(
        &group,
        "North",
        "AND",
        vec![FilterRule {
            operator: "AND".into(),
            field: "region".into(),
            logic: "eq".into(),
            condition: "north".into(),
        }],
    );
    let mut segment = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = gw.list_page(&link(&group, Some(&north)), None, cursor.as_deref()).await.unwrap();
        segment.extend(page.members.into_iter().map(|m| (m.email.key().to_owned(), m.active)));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    segment.sort();
    let want: Vec<(String, bool)> = [0, 2, 6].iter().map(|i| (format!("r{i}@example.com"), true)).collect();
    assert_eq!(segment, want, "the segment's members active in the group (r4 is north but inactive)");
}
