//! Conformance cases: the inbox.

use super::*;

fn inbox_entry(tenant: &str, key: &str, fingerprint: &str, minute: u32) -> InboxEntry {
    InboxEntry {
        tenant: TenantId::new(tenant),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        items: vec![
            InboxItem::from(Input::AssignmentDeleted {
                id: AssignmentId::new("a1"),
                newsletter: NewsletterId::new("nl"),
                version: u64::from(minute) + 1,
            }),
            InboxItem::Reread {
                reread: Reread {
                    esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("cr") },
                    list: ListId::new("g1"),
                    receiver: "4285".into(),
                    event: "receiver.unsubscribed".into(),
                    received_at: at(1),
                },
            },
        ],
        received_at: at(1) + chrono::Duration::minutes(i64::from(minute)),
    }
}

/// The inbox stores each (tenant, key) once, refuses the key with another body, returns what it stored,
/// and lists unprocessed entries oldest first until they are marked done.
pub async fn inbox_stores_once_and_lists_what_waits(inbox: Arc<dyn Inbox>) {
    let first = inbox_entry("t1", "msg-1", "fp-a", 0);
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Stored);
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Duplicate);
    assert_eq!(inbox.put(&inbox_entry("t1", "msg-1", "fp-b", 0)).await.unwrap(), InboxPut::Mismatch);
    assert_eq!(
        inbox.put(&inbox_entry("t2", "msg-1", "fp-b", 1)).await.unwrap(),
        InboxPut::Stored,
        "keys are per tenant"
    );
    assert_eq!(inbox.get(&TenantId::new("t1"), "msg-1").await.unwrap(), Some(first.clone()));
    assert_eq!(inbox.get(&TenantId::new("t1"), "nope").await.unwrap(), None);
    for n in 2..30 {
        inbox.put(&inbox_entry("t1", &format!("msg-{n}"), "fp", n)).await.unwrap();
    }
    let waiting = inbox.pending(at(2), 1000).await.unwrap();
    assert_eq!(waiting.len(), 30);
    assert_eq!(waiting[0], (TenantId::new("t1"), "msg-1".to_owned()), "oldest first");
    assert_eq!(waiting[1], (TenantId::new("t2"), "msg-1".to_owned()));
    assert_eq!(inbox.pending(at(2), 10).await.unwrap().len(), 10);
    assert_eq!(inbox.pending(at(1) + chrono::Duration::minutes(5), 1000).await.unwrap().len(), 5, "received before");
    inbox.mark_done(&TenantId::new("t1"), "msg-1").await.unwrap();
    let waiting = inbox.pending(at(2), 1000).await.unwrap();
    assert_eq!(waiting.len(), 29);
    assert!(!waiting.contains(&(TenantId::new("t1"), "msg-1".to_owned())));
    assert_eq!(inbox.put(&first).await.unwrap(), InboxPut::Duplicate, "a processed key is still known");
}
