//! The rules of RULES.md that are plain functions of their inputs. Each cites its id.

use crate::{
    Assignment, AttributeName, DeliveryBlockType, Email, FieldMapping, LinkSettings, PersonalText, PrivacyCategory,
    PrivacyStatus, TenantSettings, YearMonth,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why an assignment is inactive. Every inactive verdict carries at least one (R-A1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum InactiveReason {
    /// R-A2: the end month has passed.
    EndPassed {
        /// The end month.
        end: YearMonth,
    },
    /// R-A3: neither the assignment nor the person has an e-mail.
    NoEmail,
    /// R-A4: the count is 0.
    CountZero,
    /// R-A5: the person is deletion-marked.
    PersonDeletionMarked,
    /// R-A5: the assignment (or its person) was deleted.
    Deleted,
    /// R-A6: the person has a block on a relevant privacy category.
    PrivacyBlocked {
        /// The category.
        category: PrivacyCategory,
    },
    /// R-A6: "no statement" on a relevant category, and the tenant counts that as a block.
    PrivacyNoStatement {
        /// The category.
        category: PrivacyCategory,
    },
    /// R-A7: a delivery block of a relevant type is in force.
    DeliveryBlocked {
        /// The block's type.
        kind: DeliveryBlockType,
    },
}

impl InactiveReason {
    /// A stable key for the reason (the serialised `reason` tag), for texts in other languages.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EndPassed { .. } => "end_passed",
            Self::NoEmail => "no_email",
            Self::CountZero => "count_zero",
            Self::PersonDeletionMarked => "person_deletion_marked",
            Self::Deleted => "deleted",
            Self::PrivacyBlocked { .. } => "privacy_blocked",
            Self::PrivacyNoStatement { .. } => "privacy_no_statement",
            Self::DeliveryBlocked { .. } => "delivery_blocked",
        }
    }

    /// What the reason names, for texts in other languages: the end month (`2026-04`), the privacy
    /// category or the delivery-block type; `None` for the others.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::EndPassed { end } => Some(format!("{:04}-{:02}", end.year(), end.month())),
            Self::PrivacyBlocked { category } | Self::PrivacyNoStatement { category } => Some(category.as_str().into()),
            Self::DeliveryBlocked { kind } => Some(kind.as_str().into()),
            Self::NoEmail | Self::CountZero | Self::PersonDeletionMarked | Self::Deleted => None,
        }
    }

    /// The reason as one sentence for a person (an admin answering a data-subject request, R-J7).
    pub fn describe(&self) -> String {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        match self {
            Self::EndPassed { end } => {
                let month = MONTHS[(end.month() as usize).clamp(1, 12) - 1];
                format!("The end month {month} {} has passed (R-A2).", end.year())
            }
            Self::NoEmail => "Neither the assignment nor the person has an e-mail address (R-A3).".into(),
            Self::CountZero => "The assignment's count is 0 (R-A4).".into(),
            Self::PersonDeletionMarked => "The person is marked for deletion in OPTIGEM (R-A5).".into(),
            Self::Deleted => "The assignment or its person was deleted in OPTIGEM (R-A5).".into(),
            Self::PrivacyBlocked { category } => {
                format!("Privacy block on the category \"{}\" (R-A6).", category.as_str())
            }
            Self::PrivacyNoStatement { category } => format!(
                "No privacy statement on the category \"{}\", which this tenant counts as a block (R-A6).",
                category.as_str()
            ),
            Self::DeliveryBlocked { kind } => {
                format!("A delivery block of the type \"{}\" is in force (R-A7).", kind.as_str())
            }
        }
    }
}

/// The active status of an assignment on a day, with the reasons when inactive (R-A1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Empty means active.
    pub reasons: Vec<InactiveReason>,
}

impl Verdict {
    /// Active unless one of R-A2…A7 holds (R-A1).
    pub fn is_active(&self) -> bool {
        self.reasons.is_empty()
    }

    /// The verdict of a deleted assignment (R-A5).
    pub fn deleted() -> Self {
        Self { reasons: vec![InactiveReason::Deleted] }
    }
}

/// R-A1…A7: is the assignment active on `today` (a Berlin date) under this link's and tenant's settings?
pub fn verdict(a: &Assignment, link: &LinkSettings, tenant: &TenantSettings, today: NaiveDate) -> Verdict {
    let mut reasons = Vec::new();
    // R-A2: end month E delivers up to and including its last day.
    if let Some(end) = a.end
        && today > end.last_day()
    {
        reasons.push(InactiveReason::EndPassed { end });
    }
    // R-A3
    if email_used(a).is_none() {
        reasons.push(InactiveReason::NoEmail);
    }
    // R-A4
    if a.count == 0 {
        reasons.push(InactiveReason::CountZero);
    }
    // R-A5
    if a.person.deletion_marked {
        reasons.push(InactiveReason::PersonDeletionMarked);
    }
    // R-A6: only categories the link marks relevant; a missing status is "no statement".
    for category in &link.relevant_privacy {
        match a.person.privacy.get(category).copied().unwrap_or(PrivacyStatus::NoStatement) {
            PrivacyStatus::Allowed => {}
            PrivacyStatus::Blocked => reasons.push(InactiveReason::PrivacyBlocked { category: category.clone() }),
            PrivacyStatus::NoStatement if tenant.no_statement_blocks => {
                reasons.push(InactiveReason::PrivacyNoStatement { category: category.clone() })
            }
            PrivacyStatus::NoStatement => {}
        }
    }
    // R-A7: only relevant types, only blocks in force that day.
    let mut blocked: Vec<&DeliveryBlockType> = a
        .person
        .delivery_blocks
        .iter()
        .filter(|b| link.relevant_blocks.contains(&b.kind) && b.in_force_on(today))
        .map(|b| &b.kind)
        .collect();
    blocked.sort();
    blocked.dedup();
    reasons.extend(blocked.into_iter().map(|kind| InactiveReason::DeliveryBlocked { kind: kind.clone() }));
    Verdict { reasons }
}

/// R-A9: the first day after `today` on which time alone could change the verdict (an end month runs
/// out, a relevant delivery block starts or ends), so the scheduled run knows when to look again.
pub fn next_transition(a: &Assignment, link: &LinkSettings, today: NaiveDate) -> Option<NaiveDate> {
    let mut candidates = Vec::new();
    if let Some(end) = a.end {
        candidates.push(end.next().first_day());
    }
    for block in a.person.delivery_blocks.iter().filter(|b| link.relevant_blocks.contains(&b.kind)) {
        candidates.extend(block.valid_from);
        candidates.extend(block.valid_until.and_then(|d| d.succ_opt()));
    }
    candidates.into_iter().filter(|d| *d > today).min()
}

/// R-B1: the assignment's own e-mail if set, else the person's standard-communication e-mail with the
/// highest priority (1 first; ties keep the order given).
pub fn email_used(a: &Assignment) -> Option<&Email> {
    a.email.as_ref().or_else(|| {
        a.person.emails.iter().enumerate().min_by_key(|(index, e)| (e.priority, *index)).map(|(_, e)| &e.email)
    })
}

/// The values of mapped fields (R-D3): ESP attribute name → value. Unmapped fields are absent; an empty
/// OPTIGEM field maps to an empty value so that clearing a name in OPTIGEM clears it in the ESP.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldValues(pub BTreeMap<AttributeName, PersonalText>);

impl FieldValues {
    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for FieldValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k.as_str(), v))).finish()
    }
}

/// R-D3: the mapped field values of an assignment's person.
pub fn mapped_fields(a: &Assignment, mapping: &FieldMapping) -> FieldValues {
    let mut values = BTreeMap::new();
    let person = &a.person;
    for (target, value) in [
        (&mapping.first_name, &person.first_name),
        (&mapping.last_name, &person.last_name),
        (&mapping.letter_salutation, &person.letter_salutation),
    ] {
        if let Some(attribute) = target {
            values.insert(attribute.clone(), value.clone().unwrap_or_default());
        }
    }
    FieldValues(values)
}

/// R-C4 (beyond: deterministic): of several assignments of one newsletter with the same e-mail, the
/// recipient's fields come from the oldest one (creation time, then id).
pub fn field_source<'a>(candidates: impl IntoIterator<Item = &'a Assignment>) -> Option<&'a Assignment> {
    candidates.into_iter().min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}

/// R-E1: the end written for an unsubscribe on `date`: the month before the date's month, unless an
/// earlier end already stands.
pub fn unsubscribe_end(existing: Option<YearMonth>, date: NaiveDate) -> YearMonth {
    let computed = YearMonth::of(date).prev();
    existing.map_or(computed, |e| e.min(computed))
}

/// Where an ESP attribute lives (R-D6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeScope {
    /// Account-wide attribute: mappable.
    Global,
    /// Attribute of one list/group only: not supported.
    List,
}

/// An attribute the ESP account offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeInfo {
    /// Its name.
    pub name: AttributeName,
    /// Global or list-level.
    pub scope: AttributeScope,
}

/// Why a field mapping cannot be saved (R-D6). Names the OPTIGEM field so an admin can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The attribute does not exist in the account.
    #[error("{field}: attribute {attribute} does not exist in the ESP account")]
    Unknown {
        /// The OPTIGEM field (first_name, last_name, letter_salutation).
        field: &'static str,
        /// The attribute named.
        attribute: AttributeName,
    },
    /// The attribute belongs to one list only.
    #[error("{field}: attribute {attribute} is a list-level attribute; only global attributes can be mapped")]
    NotGlobal {
        /// The OPTIGEM field.
        field: &'static str,
        /// The attribute named.
        attribute: AttributeName,
    },
    /// Two fields onto one attribute would overwrite each other.
    #[error("{field}: attribute {attribute} is already the target of another field")]
    Duplicate {
        /// The OPTIGEM field.
        field: &'static str,
        /// The attribute named.
        attribute: AttributeName,
    },
}

/// R-D6: every mapped field must target a distinct global attribute that exists in the account.
pub fn validate_mapping(mapping: &FieldMapping, available: &[AttributeInfo]) -> Result<(), Vec<MappingError>> {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (field, target) in [
        ("first_name", &mapping.first_name),
        ("last_name", &mapping.last_name),
        ("letter_salutation", &mapping.letter_salutation),
    ] {
        let Some(attribute) = target else { continue };
        match available.iter().find(|a| a.name.as_str().eq_ignore_ascii_case(attribute.as_str())) {
            None => errors.push(MappingError::Unknown { field, attribute: attribute.clone() }),
            Some(info) if info.scope != AttributeScope::Global => {
                errors.push(MappingError::NotGlobal { field, attribute: attribute.clone() })
            }
            Some(_) if !seen.insert(attribute.as_str().to_ascii_lowercase()) => {
                errors.push(MappingError::Duplicate { field, attribute: attribute.clone() })
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}
