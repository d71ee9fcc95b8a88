//! What OPTIGEM and the admin tell us: persons, assignments, links and settings, parsed at the edge.

use crate::{
    AccountId, AssignmentId, AttributeName, DeliveryBlockType, Email, LinkId, ListId, NewsletterId, PersonId,
    PersonalText, PrivacyCategory, SegmentId, TenantId, YearMonth,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A person's privacy status for one category (Datenschutz-Merkmal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyStatus {
    /// Contact allowed (erlaubt).
    Allowed,
    /// Contact blocked (gesperrt).
    Blocked,
    /// No statement (keine Angabe): a block only if the tenant says so (R-A6).
    NoStatement,
}

/// A delivery block (Liefersperre) of a type, in force from `valid_from` to `valid_until`, both
/// inclusive; an open side means "always" on that side (R-A7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryBlock {
    /// The block's type; only types the link marks relevant count.
    #[serde(rename = "type")]
    pub kind: DeliveryBlockType,
    /// First day in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<NaiveDate>,
    /// Last day in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<NaiveDate>,
}

impl DeliveryBlock {
    /// Whether the block is in force on a day (R-A7).
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|from| from <= day) && self.valid_until.is_none_or(|until| day <= until)
    }
}

/// One e-mail of a person's standard communication with its priority; 1 is the highest (R-B1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankedEmail {
    /// The address.
    pub email: Email,
    /// 1 = first choice; ties are broken by the order given.
    pub priority: u32,
}

/// An OPTIGEM person as embedded in an assignment snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// The person's id.
    pub id: PersonId,
    /// First name (Vorname), mappable (R-D3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<PersonalText>,
    /// Last name (Nachname), mappable (R-D3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<PersonalText>,
    /// Letter salutation (Briefanrede): a full phrase such as "Lieber Herr Muster", mappable (R-D3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter_salutation: Option<PersonalText>,
    /// Standard-communication e-mails (R-B1).
    #[serde(default)]
    pub emails: Vec<RankedEmail>,
    /// Deletion mark (Löschmarkierung) (R-A5).
    #[serde(default)]
    pub deletion_marked: bool,
    /// Privacy statuses per category; a missing category is "no statement" (R-A6).
    #[serde(default)]
    pub privacy: BTreeMap<PrivacyCategory, PrivacyStatus>,
    /// Delivery blocks (R-A7).
    #[serde(default)]
    pub delivery_blocks: Vec<DeliveryBlock>,
}

/// The unsubscription record (Abbestellung) on an assignment (R-E1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscription {
    /// The exact unsubscribe date (Berlin calendar).
    pub date: NaiveDate,
    /// Where it came from.
    pub source: UnsubscribeSource,
}

/// Where an unsubscribe came from, as written into OPTIGEM's unsubscription record (R-E1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeSource {
    /// The ESP.
    pub provider: Provider,
    /// The ESP account.
    pub account: AccountId,
    /// What happened there.
    pub cause: UnsubscribeCause,
}

/// What ended a subscription in the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeCause {
    /// The recipient used the unsubscribe link (R-E1); Brevo puts them on the blacklist (R-E2).
    Unsubscribed,
    /// Deactivated in the ESP: by an admin, an import, the API or a hard bounce (R-E1, R-E6, R-J4).
    Deactivated,
    /// The recipient was deleted in the ESP (R-E1, R-E4).
    Deleted,
    /// On the ESP account's blacklist, and the ESP does not say who put it there (a Brevo listing,
    /// CleverReach's blacklist): not taken as the recipient's own revocation (R-J4, B18).
    Blacklisted,
    /// Another assignment with the same e-mail was ended in OPTIGEM, which deactivated the shared
    /// recipient (R-C4).
    DuplicateEnded,
    /// The member left the CleverReach segment the link is restricted to (R-G4).
    LeftSegment,
}

impl UnsubscribeCause {
    /// Whether the recipient acted themselves; only such revocations may lead to erasure (R-J4).
    pub fn by_recipient(self) -> bool {
        matches!(self, Self::Unsubscribed)
    }
}

/// An OPTIGEM newsletter assignment with its person embedded: the state-carrying snapshot the connector
/// sends with every change. `version` grows with every change, so an older snapshot never overwrites a
/// newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The assignment's id.
    pub id: AssignmentId,
    /// Its newsletter.
    pub newsletter: NewsletterId,
    /// Grows with every change of the assignment or its person.
    pub version: u64,
    /// When the assignment was created in OPTIGEM (R-J3).
    pub created_at: DateTime<Utc>,
    /// When this version was made in OPTIGEM (R-J3).
    pub changed_at: DateTime<Utc>,
    /// The assignment's own e-mail, used before the person's (R-B1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// The last month delivered (R-A2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<YearMonth>,
    /// Count (Anzahl); 0 is inactive (R-A4).
    #[serde(default = "one")]
    pub count: u32,
    /// The unsubscription record, if any (R-E1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscription: Option<Unsubscription>,
    /// The person.
    pub person: Person,
}

fn one() -> u32 {
    1
}

/// The two ESPs optisync speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Brevo: account-wide blacklist, list membership add/remove only.
    Brevo,
    /// CleverReach: active flag per group, segments, OAuth.
    #[serde(rename = "cleverreach")]
    CleverReach,
}

impl Provider {
    /// Its name in routes, keys and metrics (as serialised): `brevo` or `cleverreach`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Brevo => "brevo",
            Self::CleverReach => "cleverreach",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One account at one ESP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EspAccount {
    /// The ESP.
    pub provider: Provider,
    /// The account there.
    pub account: AccountId,
}

/// Where mapped fields go: each OPTIGEM field onto one global ESP attribute, or nowhere (R-D3, R-D6, R-H2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// Target of the first name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<AttributeName>,
    /// Target of the last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<AttributeName>,
    /// Target of the letter salutation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter_salutation: Option<AttributeName>,
}

/// What happens once an unsubscribe has reached OPTIGEM (R-J2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeMode {
    /// The recipient stays in the ESP, deactivated.
    #[default]
    Classic,
    /// The recipient and its personal data are deleted from the ESP and our store.
    Erasure,
}

/// The settings an admin chooses per link (R-H2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSettings {
    /// Privacy categories whose block makes an assignment inactive (R-A6); none by default (R-A8).
    #[serde(default)]
    pub relevant_privacy: BTreeSet<PrivacyCategory>,
    /// Delivery-block types that make an assignment inactive (R-A7); none by default (R-A8).
    #[serde(default)]
    pub relevant_blocks: BTreeSet<DeliveryBlockType>,
    /// Field mapping (R-D3, R-D6).
    #[serde(default)]
    pub mapping: FieldMapping,
    /// Unsubscribe mode (R-J2).
    #[serde(default)]
    pub unsubscribe_mode: UnsubscribeMode,
}

/// Where a link stands (R-F1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Saved settings but no sync (Nicht verknüpft).
    #[default]
    NotLinked,
    /// The first sync is running (Wird verknüpft).
    Linking,
    /// The first sync finished in both directions (Verknüpft).
    Linked,
}

/// A link: one newsletter ↔ one list of one ESP account (R-F7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The link's id.
    pub id: LinkId,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The OPTIGEM newsletter.
    pub newsletter: NewsletterId,
    /// The ESP account.
    pub esp: EspAccount,
    /// The list (Brevo list, CleverReach group).
    pub list: ListId,
    /// A CleverReach filter restricting the link to a segment (R-G1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentId>,
    /// The admin's choices.
    #[serde(default)]
    pub settings: LinkSettings,
    /// Not linked / linking / linked.
    #[serde(default)]
    pub status: LinkStatus,
}

/// Where an ESP account's connection stands (R-H1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Credentials are stored and were accepted by the ESP.
    Connected,
    /// A CleverReach authorisation was started and has not come back yet.
    AwaitingAuthorisation,
}

/// An ESP account a tenant connected. Its credentials live in the secret store, never here. An account
/// id is unique per provider across the deployment (the secrets are named by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Provider and account id.
    pub esp: EspAccount,
    /// Where its connection stands.
    pub status: AccountStatus,
    /// When it was last changed.
    pub changed_at: DateTime<Utc>,
}

/// Where an approved signup's e-mail is written in OPTIGEM (R-B3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTarget {
    /// Into the new assignment's own e-mail field.
    #[default]
    Assignment,
    /// Into the person's standard communication.
    StandardCommunication,
}

/// A tenant's settings (Mandantenstammdaten).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Whether "no statement" on a relevant privacy category counts as a block (R-A6).
    #[serde(default)]
    pub no_statement_blocks: bool,
    /// Where an approved signup's e-mail is stored (R-B3).
    #[serde(default)]
    pub approved_email_target: EmailTarget,
    /// Where the deletion reports of erasure mode go (R-J2, 004: "Benachrichtigungsadresse"); a link in
    /// erasure mode cannot be saved without it. Personal data of the tenant's staff: never logged (R-J5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_report_email: Option<Email>,
    /// How long records of personal data are kept once they became expirable (R-J6).
    #[serde(default)]
    pub retention: crate::retention::Retention,
}

/// Consent evidence of a signup in the ESP (double opt-in), kept with the approval entry and handed to
/// OPTIGEM with the assignment it creates (R-J1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvidence {
    /// When the signup (opt-in) happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signup_at: Option<DateTime<Utc>>,
    /// When the confirmation link was clicked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The form or source of the signup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The IP address, where the ESP supplies it (personal data: never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<PersonalText>,
    /// The evidence of later signups of the same address, oldest first (R-J1: a later signup adds
    /// evidence, it never overwrites the earlier one). Empty in the entries themselves; absent in records
    /// stored before, which therefore still read as one evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later: Vec<ConsentEvidence>,
}

impl ConsentEvidence {
    /// Every signup's evidence, oldest first: this one, then the later ones, each on its own (R-J1).
    pub fn entries(&self) -> Vec<ConsentEvidence> {
        std::iter::once(ConsentEvidence { later: Vec::new(), ..self.clone() })
            .chain(self.later.iter().flat_map(ConsentEvidence::entries))
            .collect()
    }

    /// R-J1: adds the evidence of a later report. A report of the same opt-in (the same signup time, or
    /// none, and nothing that contradicts what is recorded) only fills in what the recorded entry lacks;
    /// any other adds an entry. Nothing recorded is ever overwritten, and a redelivery adds nothing.
    pub fn add(&mut self, newer: &ConsentEvidence) {
        for n in newer.entries() {
            if n.is_empty() {
                continue;
            }
            let own = ConsentEvidence { later: Vec::new(), ..self.clone() };
            if own.is_empty() {
                let later = std::mem::take(&mut self.later);
                *self = ConsentEvidence { later, ..n };
                continue;
            }
            let same = |e: &ConsentEvidence| {
                fn fits<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
                    a.is_none() || b.is_none() || a == b
                }
                (n.signup_at.is_none() || e.signup_at == n.signup_at)
                    && fits(&e.confirmed_at, &n.confirmed_at)
                    && fits(&e.source, &n.source)
                    && fits(&e.ip, &n.ip)
            };
            if same(&own) {
                self.fill(&n);
            } else if let Some(e) = self.later.iter_mut().find(|e| same(e)) {
                e.fill(&n);
            } else {
                self.later.push(n);
            }
        }
    }

    /// Fills in the fields this entry lacks, keeping every recorded one.
    fn fill(&mut self, n: &ConsentEvidence) {
        self.signup_at = self.signup_at.or(n.signup_at);
        self.confirmed_at = self.confirmed_at.or(n.confirmed_at);
        if self.source.is_none() {
            self.source = n.source.clone();
        }
        if self.ip.is_none() {
            self.ip = n.ip.clone();
        }
    }

    /// Whether it records nothing at all.
    pub fn is_empty(&self) -> bool {
        self.signup_at.is_none()
            && self.confirmed_at.is_none()
            && self.source.is_none()
            && self.ip.is_none()
            && self.later.is_empty()
    }
}

/// What an ESP knows of a new recipient or form signup (R-E3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signup {
    /// First name, if the ESP has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<PersonalText>,
    /// Last name, if the ESP has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<PersonalText>,
    /// Consent evidence (R-J1).
    #[serde(default)]
    pub evidence: ConsentEvidence,
}

impl Signup {
    /// Whether the ESP gave a first or a last name (R-E3, R-C3: suggestions are found by them too).
    pub fn has_names(&self) -> bool {
        self.first_name.is_some() || self.last_name.is_some()
    }
}
