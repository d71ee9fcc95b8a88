//! The one conformance suite every [`StateStore`] runs: the in-memory store, the embedded store and
//! DynamoDB (on a DynamoDB-compatible server). Each case gets a fresh, empty store.
//!
//! Use it from an adapter's tests with [`conformance_tests!`](crate::conformance_tests) and an
//! `async fn() -> Arc<dyn StateStore>` that makes a fresh store.

use chrono::TimeZone;
use optisync_domain::rules::{InactiveReason, Verdict};
use optisync_domain::*;
use optisync_ports::*;
use std::sync::Arc;

mod approvals;
mod audit;
mod commands;
mod erasures;
mod inbox;
mod isolation;
mod leases;
mod links;
mod reports;
mod retention;
mod runs;
mod sync_state;
mod tenants;

pub use approvals::*;
pub use audit::*;
pub use commands::*;
pub use erasures::*;
pub use inbox::*;
pub use isolation::*;
pub use leases::*;
pub use links::*;
pub use reports::*;
pub use retention::*;
pub use runs::*;
pub use sync_state::*;
pub use tenants::*;

fn tenant() -> TenantId {
    TenantId::new("t-conformance")
}

fn link(n: u32) -> Link {
    Link {
        id: LinkId::new(format!("link-{n}")),
        tenant: tenant(),
        newsletter: NewsletterId::new(format!("nl-{}", n % 2)),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new(format!("acc-{}", n % 3)) },
        list: ListId::new(format!("list-{n}")),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    }
}

fn at(day: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2024, 6, day, 12, 0, 0).unwrap()
}

fn email(n: u32) -> Email {
    Email::parse(&format!("user{n}@example.com")).unwrap()
}

fn mirror(id: &str, mail: Option<Email>, next: Option<&str>, mark: &str) -> MirrorEntry {
    MirrorEntry {
        id: AssignmentId::new(id),
        version: 1,
        snapshot: None,
        email: mail,
        verdict: Verdict::default(),
        next_transition: next.map(|d| d.parse().unwrap()),
        subscribed_at: Some(at(1)),
        email_since: None,
        end_requested: None,
    }
    .with_mark(mark)
}

trait Mark {
    fn with_mark(self, mark: &str) -> Self;
}
impl Mark for MirrorEntry {
    /// Tests tag entries through the verdict reasons, a field every store must keep as it is.
    fn with_mark(mut self, mark: &str) -> Self {
        if !mark.is_empty() {
            self.verdict.reasons =
                mark.split(',').map(|m| InactiveReason::DeliveryBlocked { kind: DeliveryBlockType::new(m) }).collect();
        }
        self
    }
}

fn marks(entry: &MirrorEntry) -> Vec<String> {
    entry
        .verdict
        .reasons
        .iter()
        .filter_map(|r| match r {
            InactiveReason::DeliveryBlocked { kind } => Some(kind.to_string()),
            _ => None,
        })
        .collect()
}

fn approval(l: &Link, mail: Email) -> ApprovalEntry {
    ApprovalEntry {
        link: l.id.clone(),
        email: mail,
        signup: Signup { first_name: Some(PersonalText::new("Erika")), ..Default::default() },
        first_seen: at(2),
        last_seen: at(2),
        signups: 1,
        status: ApprovalStatus::Pending,
        match_command: CommandId::new("match-1"),
        decision: None,
        created: None,
    }
}

fn end_command(n: u32) -> OptigemCommand {
    OptigemCommand::EndAssignment {
        id: CommandId::new(format!("end-{n}")),
        assignment: AssignmentId::new(format!("a{n}")),
        newsletter: NewsletterId::new("nl-0"),
        end: "2024-05".parse().unwrap(),
        unsubscription: Unsubscription {
            date: "2024-06-03".parse().unwrap(),
            source: UnsubscribeSource {
                provider: Provider::Brevo,
                account: AccountId::new("acc-0"),
                cause: UnsubscribeCause::Unsubscribed,
            },
        },
    }
}

fn put_mirror(l: &Link, e: MirrorEntry, expected: Option<u64>) -> (StateWrite, Option<u64>) {
    (StateWrite::Mirror { link: l.id.clone(), entry: Box::new(e) }, expected)
}

/// Generates the inbox conformance test for a factory `async fn() -> Arc<dyn Inbox>`.
#[macro_export]
macro_rules! inbox_conformance_tests {
    ($make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn inbox_stores_once_and_lists_what_waits() {
            $crate::conformance::inbox_stores_once_and_lists_what_waits($make().await).await;
        }
    };
}

/// Generates one test per conformance case for a store factory `async fn() -> Arc<dyn StateStore>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@cases $make;
            links_are_found_by_newsletter_account_and_tenant,
            tenant_settings_and_accounts_are_kept_per_tenant,
            pending_authorisations_are_taken_once,
            pending_approvals_page_oldest_first,
            every_item_kind_round_trips_with_its_version,
            stale_versions_conflict_and_the_commit_writes_nothing,
            commands_are_appended_once_in_sequence_and_paged,
            command_results_are_recorded_once_done,
            audit_entries_are_kept_with_their_commit_newest_first,
            run_states_are_saved_only_over_the_version_read,
            recipients_and_run_chunks_page_in_key_order,
            due_finds_entries_whose_transition_has_come,
            h4_a_commit_over_100_items_is_refused_whole_in_every_store,
            assignments_page_in_id_order_without_deleted_ones,
            leases_are_exclusive_until_they_expire,
            concurrent_writers_on_one_item_lose_no_update,
            queries_page_through_many_items,
            two_tenants_with_the_same_ids_share_nothing,
            erasure_reports_are_kept_once_until_delivered,
            r_j3_an_erased_recipient_leaves_only_its_tombstone_per_tenant);
    };
    (@cases $make:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::conformance::$case($make().await).await;
            }
        )*
    };
}
