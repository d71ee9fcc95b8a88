//! Erasure mode (R-J2, R-J4; seed 004 "DSGVO-konforme Abmeldung"): once OPTIGEM has confirmed the
//! `end_assignment` that the recipient's own unsubscribe asked for, a link in erasure mode deletes the
//! recipient from the ESP and from this service's store, keeps only the keyed hash with the tombstone
//! (R-J3) and puts a deletion report on the connector's feed.
//!
//! Only the recipient's own revocation erases (R-J4): the end's cause must be
//! [`UnsubscribeCause::by_recipient`]; an admin, import or API deactivation, a deletion, a duplicate's end
//! and a blacklisting whose author the ESP does not tell ([`UnsubscribeCause::Blacklisted`], B18) keep
//! the classic behaviour.

use crate::plan::*;
use crate::rules::Verdict;
use crate::{
    AssignmentId, CommandId, Email, Known, NewsletterId, Provider, UnsubscribeCause, UnsubscribeMode,
    UnsubscribeSource, Unsubscription, command_id,
};
use chrono::{DateTime, Utc};

/// Plans the erasure an `end_assignment` result starts (R-J2). Pure; planning it again after the plan was
/// applied gives an empty plan (the recipient state is gone).
pub(crate) fn end_confirmed(
    known: &Known,
    command: &CommandId,
    assignment: &AssignmentId,
    newsletter: &NewsletterId,
    unsubscription: &Unsubscription,
    now: DateTime<Utc>,
) -> Plan {
    let mut out = Plan::default();
    // R-J4: only the recipient's own unsubscribe (link or form) erases.
    if !unsubscription.source.cause.by_recipient() {
        return out;
    }
    for view in &known.links {
        let link = &view.link;
        let ours = &link.newsletter == newsletter
            && link.settings.unsubscribe_mode == UnsubscribeMode::Erasure
            && link.esp.provider == unsubscription.source.provider
            && link.esp.account == unsubscription.source.account;
        if !ours {
            continue;
        }
        // Once erased, the mirror no longer names the address: planning again finds nothing to do. An
        // erasure interrupted after the store forgot the recipient (only its hash left) is finished.
        let Some(email) = view.mirror.get(assignment).and_then(|e| e.email.clone()) else { continue };
        let state = match (view.recipients.get(&email), view.erased.get(&email)) {
            (Some(state), _) => state.clone(),
            (None, Some(tombstone)) => {
                RecipientState { listed: false, tombstone: Some(tombstone.clone()), ..Default::default() }
            }
            (None, None) => continue,
        };
        let tombstone = state.tombstone.clone().unwrap_or(Tombstone { at: now, source: unsubscription.source.clone() });
        let report = command_id("erasure", &[link.id.as_str(), command.as_str()]);
        erase(
            &mut out,
            Erase { known, view, email: &email, state: &state, tombstone, ended: command, report, on_request: false },
            now,
        );
    }
    out
}

/// Plans the erasure an admin asked for on the data subject's request (R-J7, GDPR Art. 17): every link
/// of the tenant that holds anything of the address (recipient state, approval entry, mirror entries)
/// erases it as erasure mode does ([`erase`]), whatever its unsubscribe mode. Pure; planning it again
/// after the plan was applied gives an empty plan (only the keyed hash is left).
pub(crate) fn on_request(known: &Known, email: &Email, request: &CommandId, now: DateTime<Utc>) -> Plan {
    let mut out = Plan::default();
    for view in &known.links {
        let link = &view.link;
        let mirrored = view.mirror.values().any(|e| e.email.as_ref() == Some(email));
        let state = match (view.recipients.get(email), view.erased.get(email)) {
            (Some(state), _) => state.clone(),
            // Erased before (or interrupted after the store forgot it): what the mirror still names goes.
            (None, Some(tombstone)) if mirrored => {
                RecipientState { listed: false, tombstone: Some(tombstone.clone()), ..Default::default() }
            }
            (None, None) if mirrored || view.approvals.contains_key(email) => RecipientState::default(),
            _ => continue,
        };
        // R-J3: the hash's tombstone is dated the request, so that nothing OPTIGEM created before it (an
        // assignment after an earlier unsubscribe too) subscribes the address again. The ESP deletes the
        // recipient on the service's request: `deleted`, not the recipient's own unsubscribe (R-J4).
        let cause = UnsubscribeCause::Deleted;
        let source = UnsubscribeSource { provider: link.esp.provider, account: link.esp.account.clone(), cause };
        let tombstone = Tombstone { at: now, source };
        let report = command_id("erasure", &[link.id.as_str(), request.as_str()]);
        erase(
            &mut out,
            Erase { known, view, email, state: &state, tombstone, ended: request, report, on_request: true },
            now,
        );
    }
    out
}

/// One link's erasure of one recipient, as erasure mode (R-J2) and a request (R-J7) plan it.
struct Erase<'a> {
    known: &'a Known,
    view: &'a LinkView,
    email: &'a Email,
    state: &'a RecipientState,
    tombstone: Tombstone,
    /// What started it: the confirmed `end_assignment`, or the request.
    ended: &'a CommandId,
    /// The deletion report's id.
    report: CommandId,
    /// R-J7: every link of the tenant erases the address, so a Brevo contact goes account-wide whatever
    /// the other links hold, and the OPTIGEM assignments that carry it are named as kept.
    on_request: bool,
}

/// Plans the ESP deletion, the store's erasure, the forgotten mirror entries and the deletion report of
/// one link (R-J2, R-J3, R-J7).
fn erase(out: &mut Plan, e: Erase<'_>, now: DateTime<Utc>) {
    let Erase { known, view, email, state, tombstone, ended, report, on_request } = e;
    let link = &view.link;
    let esp_system = link.esp.provider.as_str().to_owned();
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    let action = |op: EspOp| EspAction {
        link: link.id.clone(),
        esp: link.esp.clone(),
        list: link.list.clone(),
        email: email.clone(),
        op,
    };
    match link.esp.provider {
        Provider::CleverReach => {
            // R-J2: the receiver is deleted from the group, with its statistics.
            out.esp.push(action(EspOp::Delete));
            deleted.push(item(&esp_system, "receiver"));
        }
        Provider::Brevo if on_request => {
            // R-J7: the person wants the address gone from the whole tenant, and every link of the
            // account erases it too: the contact goes account-wide (once per account and plan).
            let planned = out.esp.iter().any(|a| a.op == EspOp::Delete && a.esp == link.esp && &a.email == email);
            if !planned {
                out.esp.push(action(EspOp::Delete));
            }
            deleted.push(item(&esp_system, "contact"));
        }
        Provider::Brevo => {
            // R-J2: a Brevo contact is account-wide; it goes only when no other link of the account
            // still holds it.
            let holders = other_holders(known, view, email);
            if holders.is_empty() {
                out.esp.push(action(EspOp::Delete));
                deleted.push(item(&esp_system, "contact"));
            } else {
                if state.listed {
                    out.esp.push(action(EspOp::RemoveFromList));
                    deleted.push(item(&esp_system, "list_membership"));
                }
                kept.push(KeptItem { system: esp_system.clone(), item: "contact".into(), reason: holders.join("; ") });
            }
        }
    }
    deleted.push(item("optisync", "recipient_state"));
    if view.approvals.contains_key(email) {
        deleted.push(item("optisync", "approval_entry"));
    }
    // The mirror keeps each assignment's id and version (so an older snapshot cannot revive it) and
    // drops its snapshot with the names and the address, as a deletion does.
    let mut mirrored = false;
    for entry in view.mirror.values().filter(|e| e.email.as_ref() == Some(email)) {
        mirrored = true;
        out.writes.push(StateWrite::Mirror { link: link.id.clone(), entry: Box::new(forget(entry)) });
        // R-J7: OPTIGEM is the source system; this service does not end or delete its assignments. The
        // admin deletes them there (the report names each); until then the keyed hash keeps the
        // address unsubscribed (R-J3).
        if on_request && entry.snapshot.is_some() {
            kept.push(KeptItem {
                system: "optigem".into(),
                item: format!("assignment {}", entry.id),
                reason: "OPTIGEM is the source system: the assignment and its person are deleted there; until \
                         then no stale OPTIGEM data subscribes the address again (R-J3)"
                    .into(),
            });
        }
    }
    if mirrored {
        deleted.push(item("optisync", "assignment_mirror"));
    }
    kept.push(KeptItem {
        system: "optisync".into(),
        item: "keyed_hash".into(),
        reason: "a keyed hash of the address with the unsubscribe date, so that no stale OPTIGEM data \
                 subscribes it again (R-J3)"
            .into(),
    });
    out.erasures.push(Erasure { link: link.id.clone(), email: email.clone(), tombstone });
    out.commands.push(OptigemCommand::ErasureReport {
        id: report,
        link: link.id.clone(),
        newsletter: link.newsletter.clone(),
        email: email.clone(),
        ended: ended.clone(),
        deleted,
        kept,
        notify: known.tenant.deletion_report_email.clone(),
        at: now,
    });
}

/// Why a Brevo contact must stay: the other links of the account that still hold it (R-J2). A link that
/// has it listed and active needs it to receive; a classic link keeps its unsubscribed recipients in the
/// ESP, deactivated, by definition.
fn other_holders(known: &Known, erasing: &LinkView, email: &Email) -> Vec<String> {
    known
        .links
        .iter()
        .filter(|v| v.link.id != erasing.link.id && v.link.esp == erasing.link.esp)
        .filter_map(|v| {
            let state = v.recipients.get(email)?;
            if state.listed && state.active {
                Some(format!("listed and active on the list of link {}", v.link.id))
            } else if v.link.settings.unsubscribe_mode == UnsubscribeMode::Classic {
                Some(format!("link {} is in classic mode, which keeps unsubscribed recipients", v.link.id))
            } else {
                None
            }
        })
        .collect()
}

fn item(system: &str, item: &str) -> ErasedItem {
    ErasedItem { system: system.to_owned(), item: item.to_owned() }
}

fn forget(entry: &MirrorEntry) -> MirrorEntry {
    forgotten(entry.id.clone(), entry.version)
}

/// A mirror entry that keeps only an assignment's id and version (R-J2): no snapshot, names or address.
pub(crate) fn forgotten(id: AssignmentId, version: u64) -> MirrorEntry {
    MirrorEntry {
        id,
        version,
        snapshot: None,
        email: None,
        verdict: Verdict::deleted(),
        next_transition: None,
        subscribed_at: None,
        end_requested: None,
        email_since: None,
    }
}
