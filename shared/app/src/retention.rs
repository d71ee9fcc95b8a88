//! Which records of a commit may expire, and when (R-J6): the engine and approval decisions hand the
//! store the expiry of every state item they write (`docs/privacy.md` is the inventory).

use optisync_domain::retention::recipient_expirable_in;
use optisync_domain::{ApprovalStatus, Known, Plan, Retention, StateWrite, TenantId};
use optisync_ports::{Expiry, ItemKey};

/// The expiries of a plan's writes, against the state as it stands after the plan:
/// - everything a dry run writes under its `~preview` tenant: [`Retention::dry_run`], its commands too;
/// - a recipient state on no list whose e-mail no active assignment of the link uses:
///   [`Retention::recipients`] (its tombstone outlives it as a keyed hash);
/// - an approval entry no longer pending (decided, withdrawn, resolved): [`Retention::approvals`].
///
/// Mirror entries have none: they live as long as the assignment in OPTIGEM, and a deleted one keeps
/// only its id and version.
pub fn plan_expiry(tenant: &TenantId, known: &Known, plan: &Plan) -> Expiry {
    let retention = known.tenant.retention;
    if tenant.is_preview() {
        return preview_expiry(&retention, &plan.writes);
    }
    let mut after = known.clone();
    after.apply(plan);
    let mut expiry = Expiry::default();
    for write in &plan.writes {
        let keep = match write {
            StateWrite::Mirror { .. } => None,
            StateWrite::Recipient { link, email, state } => after
                .links
                .iter()
                .find(|v| &v.link.id == link)
                .is_some_and(|view| recipient_expirable_in(view, email, state))
                .then(|| retention.recipients()),
            StateWrite::Approval { entry } => approval_keep(&retention, entry.status),
        };
        if let Some(keep) = keep {
            expiry.items.insert(ItemKey::of(write), keep);
        }
    }
    expiry
}

/// The expiry of an approval decision's write.
pub fn approval_expiry(tenant: &TenantId, retention: &Retention, write: &StateWrite) -> Expiry {
    if tenant.is_preview() {
        return preview_expiry(retention, std::slice::from_ref(write));
    }
    let mut expiry = Expiry::default();
    if let StateWrite::Approval { entry } = write
        && let Some(keep) = approval_keep(retention, entry.status)
    {
        expiry.items.insert(ItemKey::of(write), keep);
    }
    expiry
}

fn approval_keep(retention: &Retention, status: ApprovalStatus) -> Option<chrono::Duration> {
    (status != ApprovalStatus::Pending).then(|| retention.approvals())
}

fn preview_expiry(retention: &Retention, writes: &[StateWrite]) -> Expiry {
    Expiry {
        items: writes.iter().map(|w| (ItemKey::of(w), retention.dry_run())).collect(),
        commands: Some(retention.dry_run()),
    }
}
