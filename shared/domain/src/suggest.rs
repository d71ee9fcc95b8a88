//! R-C3: suggestions for a signup in the approval queue. OPTIGEM answers `match_persons` with candidate
//! persons; they are ranked here, each with the reasons it was offered: the same e-mail first, then by
//! how similar the names are (Jaro-Winkler over the normalised full name).

use crate::{Candidate, Email, PersonId, PersonalText, Signup};
use serde::{Deserialize, Serialize};

/// Why a person is suggested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The person has the signup's e-mail (in the standard communication or on an assignment).
    SameEmail,
    /// The names are alike: `similarity` from 0 to 100.
    SimilarName {
        /// Jaro-Winkler similarity of the full names, in percent.
        similarity: u8,
    },
    /// OPTIGEM offered the person; nothing here makes it likelier.
    OfferedByOptigem,
}

/// A ranked suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The person.
    pub person: PersonId,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<PersonalText>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<PersonalText>,
    /// Why it is offered, strongest first.
    pub reasons: Vec<Reason>,
}

/// Names at least this alike (in percent) count as a reason.
pub const SIMILAR_NAME_THRESHOLD: u8 = 80;

/// Ranks OPTIGEM's candidates for a signup: same e-mail first, then by name similarity (highest first),
/// then by person id, so the order is stable. Every candidate stays in the list (OPTIGEM chose them).
pub fn rank(email: &Email, signup: &Signup, candidates: &[Candidate]) -> Vec<Suggestion> {
    let wanted = full_name(signup.first_name.as_ref(), signup.last_name.as_ref());
    let mut scored: Vec<(bool, u8, Suggestion)> = candidates
        .iter()
        .map(|c| {
            let same_email = c.emails.iter().any(|e| e == email);
            let similarity = match (&wanted, full_name(c.first_name.as_ref(), c.last_name.as_ref())) {
                (Some(a), Some(b)) => (strsim::jaro_winkler(a, &b) * 100.0).round() as u8,
                _ => 0,
            };
            let mut reasons = Vec::new();
            if same_email {
                reasons.push(Reason::SameEmail);
            }
            if similarity >= SIMILAR_NAME_THRESHOLD {
                reasons.push(Reason::SimilarName { similarity });
            }
            if reasons.is_empty() {
                reasons.push(Reason::OfferedByOptigem);
            }
            let suggestion = Suggestion {
                person: c.person.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                reasons,
            };
            (same_email, similarity, suggestion)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.person.cmp(&b.2.person)));
    let mut seen = std::collections::BTreeSet::new();
    scored.into_iter().map(|(_, _, s)| s).filter(|s| seen.insert(s.person.clone())).collect()
}

/// "first last", lower-case, inner whitespace collapsed; `None` without any name.
fn full_name(first: Option<&PersonalText>, last: Option<&PersonalText>) -> Option<String> {
    let joined = [first, last].into_iter().flatten().map(|t| t.expose().trim().to_lowercase()).collect::<Vec<_>>();
    let name = joined.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}
