//! R-D1 through the engine: before an OPTIGEM assignment first lists a recipient the link holds no state
//! of, the engine reads what the ESP shows of it (B2), so that a receiver inactive since 2023 or a contact
//! blacklisted from a list that is not linked is activated by the change itself, not ended by the next
//! listing; a deactivation the ESP does not date before the assignment is never undone (R-J3).

use optisync_domain::*;
use optisync_ports::prelude::*;

use crate::common;
use common::*;

#[tokio::test]
async fn r_d1_a_recipient_inactive_since_before_the_assignment_is_activated_by_the_change_itself() {
    for provider in [Provider::CleverReach, Provider::Brevo] {
        let now = berlin(2024, 10, 5, 12);
        let h = harness(provider, now).await;
        let (esp, list) = (h.link.esp.clone(), h.link.list.clone());
        match provider {
            // A receiver of the group, inactive since 10 February 2023.
            Provider::CleverReach => h.esp.set_member_at(&esp, &list, "old@example.com", false, berlin(2023, 2, 10, 9)),
            // A contact who unsubscribed from another list of the account in 2023.
            Provider::Brevo => h.esp.blacklist_at(&esp, "old@example.com", berlin(2023, 2, 10, 9)),
        }
        let a = assignment("a1", "old@example.com", None, now);
        h.change(a.clone()).await;
        assert!(h.receiving().contains(&"old@example.com".to_owned()), "{provider}: activated");
        assert_eq!(h.esp.observations(), 1, "{provider}: one read before the first listing");
        // Known now: a later change reads nothing more, and the run ends nothing.
        h.change(Assignment { changed_at: now + chrono::Duration::hours(1), ..a }).await;
        assert_eq!(h.esp.observations(), 1, "{provider}");
        h.clock.set(now + chrono::Duration::hours(6));
        h.run_to_end().await;
        assert!(Harness::ends_of(&h.feed().await).is_empty(), "{provider}: the new assignment is not ended");
        assert!(h.receiving().contains(&"old@example.com".to_owned()), "{provider}");
    }
}

#[tokio::test]
async fn r_j3_a_blacklisting_brevo_does_not_date_before_the_assignment_is_never_undone() {
    let now = berlin(2024, 10, 5, 12);
    // Undated (beyond the statistics' 90 days is not it: Brevo shows none at all), and dated after the
    // assignment was made (an unsubscribe whose webhook was lost, read when the change arrives late).
    for blacklisted_at in [None, Some(now + chrono::Duration::hours(1))] {
        let h = harness(Provider::Brevo, now + chrono::Duration::hours(2)).await;
        let esp = h.link.esp.clone();
        match blacklisted_at {
            Some(at) => h.esp.blacklist_at(&esp, "max@example.com", at),
            None => h.esp.blacklist(&esp, "max@example.com"),
        }
        h.change(assignment("a1", "max@example.com", None, now)).await;
        assert!(h.esp.contact(&esp, "max@example.com").unwrap().blacklisted, "{blacklisted_at:?}: not taken off");
        assert!(h.receiving().is_empty(), "{blacklisted_at:?}");
        // The run's listing shows the contact blacklisted on the list: the assignment is ended (R-E2).
        h.clock.set(now + chrono::Duration::hours(6));
        h.run_to_end().await;
        assert_eq!(Harness::ends_of(&h.feed().await), ["a1"], "{blacklisted_at:?}");
    }
}

#[tokio::test]
async fn r_d1_the_first_sync_reads_nothing_ahead_where_the_esp_wins() {
    let now = berlin(2024, 10, 5, 12);
    let h = harness(Provider::CleverReach, now).await;
    let mut l = h.link.clone();
    l.status = LinkStatus::Linking;
    h.store.put_link(&l).await.unwrap();
    h.esp.set_member_at(&l.esp, &l.list, "old@example.com", false, berlin(2023, 2, 10, 9));
    h.change(assignment("a1", "old@example.com", None, now)).await;
    assert_eq!(h.esp.observations(), 0);
    assert!(h.receiving().is_empty(), "R-F3: the ESP's inactive state stands at the first sync");
}
