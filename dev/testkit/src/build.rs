//! Builders for the domain values every suite makes: one person, one assignment, one link. Each returns
//! the plain struct with the fields a test rarely cares about filled in, so a test states only what it is
//! about (`Assignment { end: Some(…), ..build::assignment(…) }`, or one of the small modifiers below).

use chrono::{DateTime, Duration, TimeZone, Utc};
use optisync_domain::{
    AccountId, Assignment, AssignmentId, AttributeName, Email, EspAccount, FieldMapping, Link, LinkId, LinkSettings,
    LinkStatus, ListId, NewsletterId, Person, PersonId, PersonalText, Provider, RankedEmail, TenantId,
};

/// An instant in UTC, for tests that write dates as numbers.
pub fn utc(year: i32, month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, 0, 0).unwrap()
}

/// A person with one address of priority 1, no names, no privacy statement and no delivery block.
pub fn person(id: impl Into<String>, mail: &str) -> Person {
    Person {
        id: PersonId::new(id),
        first_name: None,
        last_name: None,
        letter_salutation: None,
        emails: vec![RankedEmail { email: Email::parse(mail).expect("a test address"), priority: 1 }],
        deletion_marked: false,
        privacy: Default::default(),
        delivery_blocks: vec![],
    }
}

/// An assignment as OPTIGEM exports it: version 1, created and changed at `at`, no end, count 1, for the
/// person `p-{id}` with the one address `mail`.
pub fn assignment(id: &str, newsletter: &str, mail: &str, at: DateTime<Utc>) -> Assignment {
    Assignment {
        id: AssignmentId::new(id),
        newsletter: NewsletterId::new(newsletter),
        version: 1,
        created_at: at,
        changed_at: at,
        email: None,
        end: None,
        count: 1,
        unsubscription: None,
        person: person(format!("p-{id}"), mail),
    }
}

/// The same assignment at a later version: `changed_at` moves one minute per version past its creation,
/// so a higher version is also the newer change.
pub fn at_version(mut a: Assignment, version: u64) -> Assignment {
    a.version = version;
    a.changed_at = a.created_at + Duration::minutes(version as i64);
    a
}

/// The same assignment with the person's first name set.
pub fn first_named(mut a: Assignment, first: &str) -> Assignment {
    a.person.first_name = Some(PersonalText::new(first));
    a
}

/// An ESP account of a provider.
pub fn esp(provider: Provider, account: &str) -> EspAccount {
    EspAccount { provider, account: AccountId::new(account) }
}

/// A linked link with default settings and no segment.
pub fn link(id: impl Into<String>, tenant: &str, newsletter: &str, esp: EspAccount, list: impl Into<String>) -> Link {
    Link {
        id: LinkId::new(id),
        tenant: TenantId::new(tenant),
        newsletter: NewsletterId::new(newsletter),
        esp,
        list: ListId::new(list),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    }
}

/// A field mapping of the first name (and, if given, the last name) to ESP attributes.
pub fn mapping(first_name: &str, last_name: Option<&str>) -> FieldMapping {
    FieldMapping {
        first_name: Some(AttributeName::new(first_name)),
        last_name: last_name.map(AttributeName::new),
        ..Default::default()
    }
}
