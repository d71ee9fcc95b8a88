//! Conformance cases: links.

use super::*;

/// Links are found by newsletter, by account and by tenant.
pub async fn links_are_found_by_newsletter_account_and_tenant(store: Arc<dyn StateStore>) {
    for n in 0..6 {
        store.put_link(&link(n)).await.unwrap();
    }
    let ids = |links: Vec<Link>| {
        let mut v: Vec<String> = links.into_iter().map(|l| l.id.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(ids(store.links(&tenant()).await.unwrap()).len(), 6);
    assert_eq!(
        ids(store.links_for_newsletter(&tenant(), &NewsletterId::new("nl-1")).await.unwrap()),
        vec!["link-1", "link-3", "link-5"]
    );
    assert_eq!(ids(store.links_for_account(&tenant(), &link(1).esp).await.unwrap()), vec!["link-1", "link-4"]);
    assert!(store.links(&TenantId::new("other")).await.unwrap().is_empty());
    let mut elsewhere = link(7);
    elsewhere.tenant = TenantId::new("a-tenant");
    store.put_link(&elsewhere).await.unwrap();
    store.put_link(&link(0)).await.unwrap(); // saved again: still once
    let all: Vec<(String, String)> =
        store.all_links().await.unwrap().into_iter().map(|l| (l.tenant.to_string(), l.id.to_string())).collect();
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(all[0], ("a-tenant".to_owned(), "link-7".to_owned()), "ordered by tenant, then link");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    let mut changed = link(2);
    changed.status = LinkStatus::Linking;
    store.put_link(&changed).await.unwrap();
    let found = store.links_for_newsletter(&tenant(), &NewsletterId::new("nl-0")).await.unwrap();
    assert_eq!(found.iter().find(|l| l.id == changed.id).unwrap().status, LinkStatus::Linking);
    assert_eq!(store.tenant_settings(&tenant()).await.unwrap(), TenantSettings::default());
}
