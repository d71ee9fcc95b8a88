//! The scheduled run's drift decisions: given what a link knows and what its ESP lists, which differences
//! become inputs for the planner. Pure; the run pages the list, keeps the checkpoints and applies what is
//! decided here (`optisync_app::reconcile`).
//!
//! * [`differences`] — one page of the list against the known state: signups, segment memberships and
//!   blacklisted contacts to take off a Brevo list now, ends later (R-E1, R-E2, R-E3, R-F4, R-F5, R-G3,
//!   R-G4).
//! * [`sweep_candidates`], [`lookup_before_ending`], [`gone_from_list`] — the sweep after a complete
//!   listing: recipients the listing should have shown but did not (R-E1, R-E4, R-G4).
//! * [`blocked`] — what the ESP account blocks for every list (CleverReach's blacklist and blocked hard
//!   bounces) against the link's recipients: account-wide ends and the bounce count (R-E9, R-E6).
//! * [`Guard`] — the mass-deactivation guard (R-F8).

use crate::{ApprovalStatus, Email, EspEvent, EspEventKind, Link, LinkView, Provider, RecipientState, Signup};
use chrono::{DateTime, Utc};

/// One member of a list as the ESP shows it now (the reconciliation's view of the ESP side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The address.
    pub email: Email,
    /// Receives mail from this list: Brevo: on the list and not blacklisted; CleverReach: active in the group.
    pub active: bool,
    /// Brevo: on the account-wide blacklist (R-E2).
    pub blacklisted: bool,
    /// When the ESP last changed the member's state (activation, deactivation, blacklist), if it says.
    pub changed_at: Option<DateTime<Utc>>,
    /// What the ESP knows of the member (names, consent evidence), for the approval queue.
    pub signup: Signup,
}

/// What a page of the list differs in from the link's known state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    /// Applied at once: signups for the approval queue and segment memberships.
    pub now: Vec<EspEvent>,
    /// Ends (the ESP no longer lets a receiving recipient receive), applied after the guard.
    pub ends: Vec<EspEvent>,
}

/// The differences between one page of `link`'s list and what the link knows of its members (`known`
/// holds at least the page's e-mails). A member without a time of its own changed at `started_at`, the
/// run's start.
///
/// * A receiving member the link does not know (or no longer has on the list) → a signup for the
///   approval queue (R-E3, R-F4); one whose signup waits there without names, which the listing shows →
///   a signup dated as the entry's, which completes it (R-E3, R-C3).
/// * A member known as receiving that the ESP no longer lets receive → an end (R-E1, R-E2, R-F5): the
///   ESP wins on active status; a Brevo blacklist is account-wide (R-E2).
/// * Any other member on a Brevo list that is blacklisted → taken off the list now, whether or not it has
///   an assignment (R-E2, `BlacklistedOnList`).
/// * On a segment link, a receiving segment member without an active assignment → segment membership
///   (R-G3, R-G4), unless an assignment is already asked for or its signup waits for approval.
pub fn differences(link: &Link, known: &LinkView, members: &[ListedMember], started_at: DateTime<Utc>) -> Differences {
    let mut found = Differences::default();
    for member in members {
        let state = known.recipients.get(&member.email);
        let at = member.changed_at.unwrap_or(started_at);
        let event = |what| EspEvent {
            esp: link.esp.clone(),
            list: Some(link.list.clone()),
            email: member.email.clone(),
            at,
            what,
        };
        if let Some(segment) = &link.segment {
            // R-G3, R-G4: a segment member without an active assignment.
            let active =
                known.mirror.values().any(|e| e.email.as_ref() == Some(&member.email) && e.effectively_active());
            if member.active && !(active && state.is_some_and(|s| s.listed && s.active && s.pending_create.is_none())) {
                let pending = state.is_some_and(|s| s.pending_create.is_some() && s.listed);
                let queued = known.approvals.get(&member.email).is_some_and(|a| a.status == ApprovalStatus::Pending);
                if !pending && !queued {
                    found.now.push(event(EspEventKind::SegmentMembership {
                        segment: segment.clone(),
                        member: true,
                        signup: member.signup.clone(), // R-G3, R-J1
                    }));
                }
            }
            continue;
        }
        let receiving = state.is_some_and(|r| r.listed && r.active);
        let nameless = known
            .approvals
            .get(&member.email)
            .filter(|a| a.status == ApprovalStatus::Pending && !a.signup.has_names() && member.signup.has_names());
        if member.active && !state.is_some_and(|s| s.listed) {
            // R-E3, R-F4: receives mail, unknown to the link (or back on the list by the ESP's doing).
            found.now.push(event(EspEventKind::Signup { signup: member.signup.clone() }));
        } else if member.active
            && let Some(state) = state.filter(|s| s.listed && !s.active)
            && reactivated(known, state, member, at)
        {
            // R-E8: re-activated in the ESP while the link holds it inactive because its assignment ended:
            // a signup, which waits for approval.
            found.now.push(event(EspEventKind::Signup { signup: member.signup.clone() }));
        } else if member.active
            && let Some(entry) = nameless
        {
            // R-E3, R-C3: the signup waits for approval without names (its report named none, and the
            // lookup found none then); the listing shows them. Dated as the entry's latest signup: it
            // completes that one, it is no new signup.
            let mut e = event(EspEventKind::Signup { signup: member.signup.clone() });
            e.at = entry.last_seen;
            found.now.push(e);
        } else if !member.active && receiving {
            // R-E1, R-E2, R-F5: the ESP wins on active status.
            let what = if member.blacklisted && link.esp.provider == Provider::Brevo {
                EspEventKind::Blacklisted
            } else {
                EspEventKind::Deactivated
            };
            let mut e = event(what);
            if e.what == EspEventKind::Blacklisted {
                e.list = None; // account-wide (R-E2)
            }
            found.ends.push(e);
        } else if member.blacklisted && link.esp.provider == Provider::Brevo {
            // R-E2 (B9): on the list while blacklisted, and not a receiving recipient of the link (unknown
            // to it at a first sync, or put back on the list in Brevo): taken off the list, whether or not
            // it has an assignment. Applied at once: a blacklisted contact receives no mail, so taking it
            // off ends nobody's delivery and is no matter for the guard (R-F8).
            found.now.push(event(EspEventKind::BlacklistedOnList));
        }
    }
    found
}

/// Why an ESP account blocks an address for every list (R-E9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// On the account's blacklist: CleverReach sends nothing to it from any group (an account setting puts
    /// every link-unsubscriber there and removes them from all groups).
    Blacklisted,
    /// A hard bounce CleverReach blocks (until its expiry) without deactivating the receiver.
    HardBounce,
}

/// An address the ESP account blocks for every list, as the account reports it (the reconciliation's
/// view of the account-wide side, R-E9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAddress {
    /// The address.
    pub email: Email,
    /// Why it is blocked.
    pub block: Block,
    /// Since when, if the ESP says (the blacklist entry's time; a bounce's last occurrence).
    pub at: Option<DateTime<Utc>>,
}

/// What a page of blocked addresses means for a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocks {
    /// Account-wide ends of blacklisted recipients the link holds as receiving, applied after the guard.
    pub ends: Vec<EspEvent>,
    /// Recipients the link holds as receiving that a hard bounce blocks (reported, never written, R-E6).
    pub bounced: u64,
}

/// R-E9: one page of what `link`'s ESP account blocks for every list, against what the link knows of
/// those addresses (`known` holds at least the page's e-mails). A block without a time of its own
/// happened at `started_at`, the run's start.
///
/// * A blacklisted address the link holds as receiving → an account-wide end (like Brevo's, R-E2): every
///   newsletter linked to the account ends its assignments with that address (R-E1).
/// * A hard bounce blocked without a deactivation, of a recipient the link holds as receiving → counted
///   for the link's status only; bounces are not written to OPTIGEM (R-E6). A deactivation after a bounce
///   shows in the listing as an ordinary deactivation (R-E1).
pub fn blocked(link: &Link, known: &LinkView, page: &[BlockedAddress], started_at: DateTime<Utc>) -> Blocks {
    let mut found = Blocks::default();
    for blocked in page {
        let receiving = known.recipients.get(&blocked.email).is_some_and(|r| r.listed && r.active);
        if !receiving {
            continue;
        }
        match blocked.block {
            Block::Blacklisted => found.ends.push(EspEvent {
                esp: link.esp.clone(),
                list: None, // account-wide (R-E9, like R-E2)
                email: blocked.email.clone(),
                at: blocked.at.unwrap_or(started_at),
                what: EspEventKind::Blacklisted,
            }),
            Block::HardBounce => found.bounced += 1,
        }
    }
    found
}

/// R-E8: whether a member the ESP lists as receiving, which the link holds inactive, was re-activated
/// there: the link's own deactivation is not newer than the listing (R-C6: else the listing shows the
/// receiver before that write), and every assignment of the newsletter with its address has ended (an
/// assignment that is only blocked, A2–A7, keeps its recipient inactive by optisync's doing).
fn reactivated(known: &LinkView, state: &RecipientState, member: &ListedMember, at: DateTime<Utc>) -> bool {
    if state.written.is_some_and(|w| w.at >= at) {
        return false;
    }
    let month = crate::YearMonth::of(crate::berlin_date(at));
    known
        .mirror
        .values()
        .filter(|e| e.email.as_ref() == Some(&member.email))
        .all(|e| e.end_requested.is_some() || e.snapshot.as_ref().is_some_and(|s| s.end.is_some_and(|end| end < month)))
}

/// R-E1, R-E4, R-G4: of one page of the link's recipients, those a complete listing should have shown
/// (on the list; on a segment link also active, since a segment is listed by its active receivers) and
/// did not (`seen` says which e-mails it showed).
pub fn sweep_candidates<'a>(
    link: &Link,
    recipients: &'a [(Email, RecipientState)],
    seen: impl Fn(&Email) -> bool,
) -> Vec<&'a Email> {
    recipients
        .iter()
        .filter(|(email, state)| {
            // A segment is listed by its active receivers: one deactivated in the group is not missing.
            let expected = state.listed && (link.segment.is_none() || state.active);
            expected && !seen(email)
        })
        .map(|(email, _)| email)
        .collect()
}

/// Whether a sweep candidate is looked up in the ESP before it is ended: offset and page cursors can miss
/// a member when the list changes between two pages. A segment's membership cannot be looked up per
/// receiver; a segment link trusts its listing.
pub fn lookup_before_ending(link: &Link) -> bool {
    link.segment.is_none()
}

/// R-E1, R-E4, R-G4: what a recipient gone from the list (found at `at`) is: deleted in the ESP (an
/// e-mail changed inside the ESP shows as this deletion plus a signup of the new address), or, on a
/// segment link, out of the segment.
pub fn gone_from_list(link: &Link, email: &Email, at: DateTime<Utc>) -> EspEvent {
    let what = match &link.segment {
        Some(segment) => {
            EspEventKind::SegmentMembership { segment: segment.clone(), member: false, signup: Signup::default() }
        }
        None => EspEventKind::Deleted,
    };
    EspEvent { esp: link.esp.clone(), list: Some(link.list.clone()), email: email.clone(), at, what }
}

/// The mass-deactivation guard (R-F8): a run that would end more than `share` of the list's members, and
/// at least `min` of them, waits for an admin's confirmation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guard {
    /// The share of the list (0.0–1.0).
    pub share: f64,
    /// Fewer ends than this never hold a run.
    pub min: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Self { share: 0.1, min: 10 }
    }
}

impl Guard {
    /// Whether `ends` ends among `members` list members hold a run.
    pub fn holds(&self, ends: u64, members: u64) -> bool {
        ends >= self.min && ends as f64 > self.share * members.max(1) as f64
    }
}
