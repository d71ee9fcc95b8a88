//! Builders for domain tests: readable fixtures with the documents' examples.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use optisync_domain::*;

pub fn day(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// Noon in Berlin on a day, as an instant.
pub fn noon(s: &str) -> DateTime<Utc> {
    let d = day(s);
    Berlin.from_local_datetime(&d.and_hms_opt(12, 0, 0).unwrap()).unwrap().with_timezone(&Utc)
}

pub fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

pub fn ym(s: &str) -> YearMonth {
    s.parse().expect("year-month")
}

pub fn person(id: &str, first: &str, last: &str, mail: Option<&str>) -> Person {
    Person {
        id: PersonId::new(id),
        first_name: Some(PersonalText::new(first)),
        last_name: Some(PersonalText::new(last)),
        letter_salutation: Some(PersonalText::new(format!("Liebe(r) {first} {last}"))),
        emails: mail.map(|m| RankedEmail { email: email(m), priority: 1 }).into_iter().collect(),
        deletion_marked: false,
        privacy: Default::default(),
        delivery_blocks: vec![],
    }
}

/// An active assignment of newsletter `nl` using the person's e-mail, created on 2024-01-10.
pub fn assignment(id: &str, nl: &str, mail: &str) -> Assignment {
    Assignment {
        id: AssignmentId::new(id),
        newsletter: NewsletterId::new(nl),
        version: 1,
        created_at: noon("2024-01-10"),
        changed_at: noon("2024-01-10"),
        email: None,
        end: None,
        count: 1,
        unsubscription: None,
        person: person(&format!("p-{id}"), "Max", "Muster", Some(mail)),
    }
}

/// The next version of a snapshot, changed at `when`.
pub fn next(a: &Assignment, when: &str, change: impl FnOnce(&mut Assignment)) -> Assignment {
    let mut b = a.clone();
    b.version += 1;
    b.changed_at = noon(when);
    change(&mut b);
    b
}

pub fn mapping() -> FieldMapping {
    FieldMapping {
        first_name: Some(AttributeName::new("FIRSTNAME")),
        last_name: Some(AttributeName::new("LASTNAME")),
        letter_salutation: None,
    }
}

pub fn link(id: &str, nl: &str, provider: Provider, account: &str, list: &str) -> Link {
    Link {
        id: LinkId::new(id),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new(nl),
        esp: EspAccount { provider, account: AccountId::new(account) },
        list: ListId::new(list),
        segment: None,
        settings: LinkSettings { mapping: mapping(), ..Default::default() },
        status: LinkStatus::Linked,
    }
}

pub fn cleverreach(nl: &str) -> Link {
    link(&format!("cr-{nl}"), nl, Provider::CleverReach, "cr-acc", &format!("group-{nl}"))
}

pub fn brevo(nl: &str) -> Link {
    link(&format!("br-{nl}"), nl, Provider::Brevo, "br-acc", &format!("list-{nl}"))
}

pub fn known(links: Vec<Link>) -> Known {
    Known { tenant: TenantSettings::default(), links: links.into_iter().map(LinkView::new).collect() }
}

/// Plans an input, applies its state to `known`, and returns the plan.
pub fn step(known: &mut Known, input: Input, now: &str) -> Plan {
    let plan = optisync_domain::plan(known, &input, noon(now));
    known.apply(&plan);
    plan
}

pub fn changed(a: &Assignment) -> Input {
    Input::AssignmentChanged { assignment: a.clone() }
}

pub fn esp_event(link: &Link, list: bool, mail: &str, when: &str, what: EspEventKind) -> Input {
    Input::Esp(EspEvent {
        esp: link.esp.clone(),
        list: list.then(|| link.list.clone()),
        email: email(mail),
        at: noon(when),
        what,
    })
}

/// The ESP operations of a plan as (link, e-mail key, op name) for compact assertions.
pub fn ops(plan: &Plan) -> Vec<(String, String, String)> {
    plan.esp.iter().map(|a| (a.link.to_string(), a.email.key().to_owned(), a.op.name().to_owned())).collect()
}

pub fn op(link: &str, mail: &str, op: &str) -> (String, String, String) {
    (link.to_owned(), mail.to_owned(), op.to_owned())
}

/// The end commands of a plan as (assignment, end, date).
pub fn ends(plan: &Plan) -> Vec<(String, String, String)> {
    plan.commands
        .iter()
        .filter_map(|c| match c {
            OptigemCommand::EndAssignment { assignment, end, unsubscription, .. } => {
                Some((assignment.to_string(), end.to_string(), unsubscription.date.to_string()))
            }
            _ => None,
        })
        .collect()
}

pub fn view<'a>(known: &'a Known, link: &Link) -> &'a LinkView {
    known.links.iter().find(|v| v.link.id == link.id).expect("link")
}

pub fn recipient<'a>(known: &'a Known, link: &Link, mail: &str) -> &'a RecipientState {
    &view(known, link).recipients[&email(mail)]
}
