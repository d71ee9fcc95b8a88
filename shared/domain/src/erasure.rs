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
    AssignmentId, CommandId, Email, Known, NewsletterId, Provider, UnsubscribeMode, Unsubscription, command_id,
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
            Provider::Brevo => {
                // R-J2: a Brevo contact is account-wide; it goes only when no other link of the account
                // still holds it.
                let holders = other_holders(known, view, &email);
                if holders.is_empty() {
                    out.esp.push(action(EspOp::Delete));
                    deleted.push(item(&esp_system, "contact"));
                } else {
                    if state.listed {
                        out.esp.push(action(EspOp::RemoveFromList));
                        deleted.push(item(&esp_system, "list_membership"));
                    }
                    kept.push(KeptItem {
                        system: esp_system.clone(),
                        item: "contact".into(),
                        reason: holders.join("; "),
                    });
                }
            }
        }
        deleted.push(item("optisync", "recipient_state"));
        if view.approvals.contains_key(&email) {
            deleted.push(item("optisync", "approval_entry"));
        }
        // The mirror keeps each assignment's id and version (so an older snapshot cannot revive it) and
        // drops its snapshot with the names and the address, as a deletion does.
        let mut mirrored = false;
        for entry in view.mirror.values().filter(|e| e.email.as_ref() == Some(&email)) {
            mirrored = true;
            out.writes.push(StateWrite::Mirror { link: link.id.clone(), entry: Box::new(forget(entry)) });
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
        let tombstone = state.tombstone.clone().unwrap_or(Tombstone { at: now, source: unsubscription.source.clone() });
        out.erasures.push(Erasure { link: link.id.clone(), email: email.clone(), tombstone });
        out.commands.push(OptigemCommand::ErasureReport {
            id: command_id("erasure", &[link.id.as_str(), command.as_str()]),
            link: link.id.clone(),
            newsletter: link.newsletter.clone(),
            email: email.clone(),
            ended: command.clone(),
            deleted,
            kept,
            notify: known.tenant.deletion_report_email.clone(),
            at: now,
        });
    }
    out
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
    MirrorEntry {
        id: entry.id.clone(),
        version: entry.version,
        snapshot: None,
        email: None,
        verdict: Verdict::deleted(),
        next_transition: None,
        subscribed_at: None,
        end_requested: None,
        email_since: None,
    }
}
