//! Conformance cases: leases.

use super::*;

/// A lease is exclusive until it expires, re-entrant for its owner, and released only by its owner.
pub async fn leases_are_exclusive_until_they_expire(store: Arc<dyn StateStore>) {
    let (t0, t1, t2) = (at(1), at(2), at(3));
    assert!(store.try_lease("link-1", "me", t0, t1).await.unwrap());
    assert!(!store.try_lease("link-1", "you", t0, t1).await.unwrap());
    assert!(store.try_lease("link-1", "me", t0, t2).await.unwrap(), "the owner may extend");
    store.release_lease("link-1", "you").await.unwrap();
    assert!(!store.try_lease("link-1", "you", t1, t2).await.unwrap(), "only the owner releases");
    assert!(store.try_lease("link-1", "you", at(4), at(5)).await.unwrap(), "an expired lease is free");
    store.release_lease("link-1", "you").await.unwrap();
    assert!(store.try_lease("link-1", "me", at(4), at(5)).await.unwrap());
    assert!(store.try_lease("link-2", "you", t0, t1).await.unwrap(), "leases are independent");
}
