//! Webhook parsing, deduplication and authentication with the payloads from the reference notes.

use optisync_brevo::webhook::{
    MAX_EVENTS_PER_REQUEST, MAX_LISTS_PER_ADDITION, WebhookError, WebhookEvent, authenticate, authenticate_any,
    dedupe_key, parse_event, parse_events,
};

const SPAM: &str = r#"{"id": 123456, "camp_id": 12, "email": "example@domain.com", "campaign name": "My First Campaign ",
 "date_sent": "2020-10-09 00:00:00", "date_event": "2020-10-09 00:00:00", "event": "spam",
 "reason": "undesired", "tag": "", "ts_sent": 1604933619, "ts_event": 1604933737, "ts": 1604937337}"#;

const UNSUBSCRIBED: &str = r#"{"id": 123456, "camp_id": 12, "email": "example@domain.com", "campaign name": "My First Campaign",
 "date_sent": "2020-10-09 00:00:00", "date_event": "2020-10-09 00:00:00", "event": "unsubscribed",
 "tag": "", "sending_ip": "xxx.xxx.xxx.xxx", "list_id": [3, 42],
 "ts_sent": 1604933619, "ts_event": 1604933737, "ts": 1604937337}"#;

const LIST_ADDITION: &str = r#"{"id": 123456, "email": "example@domain.com", "event": "list_addition", "key": "xxxxxxxx",
 "list_id": [34, 12], "date": "2020-10-09 00:00:00", "ts": 1604937111}"#;

const CONTACT_UPDATED: &str = r#"{"id": 123456, "email": "example@domain.com", "event": "contact_updated", "key": "xxxxxxxx",
 "content": [{"name": "John"}, {"lastname": "Doe"}], "date": "2020-10-09 00:00:00", "ts": 1604937111,
 "api_key_name": "optisync"}"#;

const CONTACT_DELETED: &str = r#"{"id": 123456, "email": "example@domain.com", "event": "contact_deleted", "key": "xxxxxxxx",
 "list_id": [35], "date": "2020-10-09 00:00:00", "ts": 1604937111}"#;

const HARD_BOUNCED: &str = r#"{"id": 123456, "camp_id": 12, "email": "example@domain.com", "campaign name": "My First Campaign",
 "date_sent": "2020-10-09 00:00:00", "date_event": "2020-10-09 00:00:00", "reason": "deferred",
 "event": "hard_bounced", "tag": "", "sending_ip": "xxx.xxx.xxx.xxx",
 "ts_sent": 1604933619, "ts_event": 1604933737, "ts": 1604937337}"#;

#[test]
fn parses_unsubscribed() {
    let WebhookEvent::Unsubscribed(e) = parse_event(UNSUBSCRIBED.as_bytes()).unwrap() else { panic!() };
    assert_eq!(e.email, "example@domain.com");
    assert_eq!(e.campaign_id, Some(12));
    assert_eq!(e.list_ids, vec![3, 42]);
    assert_eq!(e.ts_event, Some(1604933737));
    assert_eq!(e.ts, Some(1604937337));
    assert_eq!(e.webhook_id, Some(123456));
}

#[test]
fn parses_unsubscribe_spelling_too() {
    let body = UNSUBSCRIBED.replace("\"unsubscribed\"", "\"unsubscribe\"");
    assert!(matches!(parse_event(body.as_bytes()).unwrap(), WebhookEvent::Unsubscribed(_)));
}

#[test]
fn parses_list_addition() {
    let event = parse_event(LIST_ADDITION.as_bytes()).unwrap();
    let WebhookEvent::ListAddition(e) = &event else { panic!() };
    assert_eq!(e.list_ids, vec![12, 34]);
    assert_eq!(e.ts, Some(1604937111));
    assert_eq!(event.occurred_at().unwrap().timestamp(), 1604937111);
}

#[test]
fn parses_contact_updated_with_content_and_api_key_name() {
    let WebhookEvent::ContactUpdated(e) = parse_event(CONTACT_UPDATED.as_bytes()).unwrap() else { panic!() };
    assert_eq!(e.api_key_name.as_deref(), Some("optisync"));
    assert!(e.content.unwrap().is_array());
    assert!(e.list_ids.is_empty());
}

#[test]
fn parses_contact_deleted() {
    let WebhookEvent::ContactDeleted(e) = parse_event(CONTACT_DELETED.as_bytes()).unwrap() else { panic!() };
    assert_eq!(e.list_ids, vec![35]);
}

#[test]
fn parses_hard_bounce_in_all_spellings() {
    for name in ["hard_bounced", "hard_bounce", "hardBounce"] {
        let body = HARD_BOUNCED.replace("hard_bounced", name);
        let WebhookEvent::HardBounce(e) = parse_event(body.as_bytes()).unwrap() else { panic!("{name}") };
        assert_eq!(e.reason.as_deref(), Some("deferred"));
    }
}

#[test]
fn parses_spam() {
    let event = parse_event(SPAM.as_bytes()).unwrap();
    let WebhookEvent::Spam(e) = &event else { panic!() };
    assert_eq!(e.reason.as_deref(), Some("undesired"));
    assert_eq!(event.timestamp(), Some(1604933737), "ts_event wins over ts");
}

#[test]
fn accepts_strings_for_numbers_and_ignores_unknown_fields() {
    let body = r#"{"event":"list_addition","email":"x@y.org","list_id":["7","3"],"ts":"1700000000",
                   "brand_new_field":{"nested":true},"id":"9"}"#;
    let WebhookEvent::ListAddition(e) = parse_event(body.as_bytes()).unwrap() else { panic!() };
    assert_eq!(e.list_ids, vec![3, 7]);
    assert_eq!(e.ts, Some(1_700_000_000));
    assert_eq!(e.webhook_id, Some(9));
    let single = r#"{"event":"unsubscribed","email":"x@y.org","list_id":5,"ts_event":1700000000.0}"#;
    let WebhookEvent::Unsubscribed(u) = parse_event(single.as_bytes()).unwrap() else { panic!() };
    assert_eq!(u.list_ids, vec![5]);
    assert_eq!(u.ts_event, Some(1_700_000_000));
}

#[test]
fn unknown_event_names_are_kept_as_other() {
    let event = parse_event(br#"{"event":"opened","email":"x@y.org","ts":1}"#).unwrap();
    assert_eq!(event, WebhookEvent::Other { event: "opened".into(), ts: Some(1) });
}

#[test]
fn batched_bodies_are_arrays() {
    let body = format!("[{UNSUBSCRIBED},{LIST_ADDITION}]");
    let events = parse_events(body.as_bytes()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(parse_events(SPAM.as_bytes()).unwrap().len(), 1);
}

#[test]
fn malformed_bodies_are_typed_errors_without_content() {
    let err = parse_event(b"{\"event\": \"spam\", \"email\": \"secret@x.org\"").unwrap_err();
    assert!(matches!(err, WebhookError::MalformedJson { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"));
    assert_eq!(parse_event(b"[1]").unwrap_err(), WebhookError::NotAnObject);
    assert_eq!(parse_event(b"{\"email\":\"a@b.de\"}").unwrap_err(), WebhookError::MissingEvent);
    assert!(matches!(parse_event(b"{\"event\":\"unsubscribed\"}").unwrap_err(), WebhookError::MissingEmail { .. }));
}

#[test]
fn dedupe_key_is_stable_hides_the_email_and_separates_events() {
    let a = parse_event(UNSUBSCRIBED.as_bytes()).unwrap();
    let again = parse_event(UNSUBSCRIBED.replace("\"tag\": \"\"", "\"tag\": \"retry\"").as_bytes()).unwrap();
    let key = dedupe_key(&a);
    assert_eq!(key.len(), 64);
    assert_eq!(key, dedupe_key(&again), "a redelivery has the same key");
    assert!(!key.contains("example") && !key.contains('@'));

    let upper = parse_event(UNSUBSCRIBED.replace("example@domain.com", " Example@Domain.com").as_bytes()).unwrap();
    assert_eq!(key, dedupe_key(&upper), "e-mail is normalised");

    let later = parse_event(UNSUBSCRIBED.replace("1604933737", "1604933738").as_bytes()).unwrap();
    let other_list = parse_event(UNSUBSCRIBED.replace("[3, 42]", "[3]").as_bytes()).unwrap();
    let other_campaign = parse_event(UNSUBSCRIBED.replace("\"camp_id\": 12", "\"camp_id\": 13").as_bytes()).unwrap();
    let other_person = parse_event(UNSUBSCRIBED.replace("example@domain.com", "other@domain.com").as_bytes()).unwrap();
    let spam = parse_event(SPAM.as_bytes()).unwrap();
    for different in [later, other_list, other_campaign, other_person, spam] {
        assert_ne!(key, dedupe_key(&different));
    }
}

#[test]
fn authenticate_accepts_only_the_right_bearer_token() {
    assert!(authenticate(Some("Bearer s3cret-token"), "s3cret-token"));
    assert!(authenticate(Some("bearer s3cret-token "), "s3cret-token"));
    assert!(!authenticate(None, "s3cret-token"), "missing header");
    assert!(!authenticate(Some("Bearer wrong"), "s3cret-token"));
    assert!(!authenticate(Some("Bearer s3cret-token2"), "s3cret-token"));
    assert!(!authenticate(Some("Basic s3cret-token"), "s3cret-token"));
    assert!(!authenticate(Some("s3cret-token"), "s3cret-token"));
    assert!(!authenticate(Some("Bearer "), ""), "an empty expected token never matches");
}

#[test]
fn m3_either_token_of_a_rotation_authenticates_and_empty_ones_never() {
    assert!(authenticate_any(Some("Bearer new-token"), &["new-token", "old-token"]));
    assert!(authenticate_any(Some("Bearer old-token"), &["new-token", "old-token"]));
    assert!(!authenticate_any(Some("Bearer other"), &["new-token", "old-token"]));
    assert!(!authenticate_any(Some("Bearer old-token"), &["new-token", ""]), "an expired previous token");
    assert!(!authenticate_any(Some("Bearer "), &["", ""]));
    assert!(!authenticate_any(Some("Bearer x"), &[]));
}

#[test]
fn m3_t23_a_request_holds_at_most_the_capped_number_of_events() {
    let batch = |n: usize| format!("[{}]", vec![r#"{"event":"opened"}"#; n].join(","));
    assert_eq!(parse_events(batch(MAX_EVENTS_PER_REQUEST).as_bytes()).unwrap().len(), MAX_EVENTS_PER_REQUEST);
    let refused = parse_events(batch(MAX_EVENTS_PER_REQUEST + 1).as_bytes()).unwrap_err();
    assert_eq!(refused, WebhookError::TooManyEvents);
    assert_eq!(parse_events(batch(5000).as_bytes()).unwrap_err(), WebhookError::TooManyEvents);
}

#[test]
fn m3_t23_a_list_addition_names_at_most_the_capped_number_of_lists() {
    let addition = |ids: String| {
        format!(r#"{{"event":"list_addition","email":"max@example.com","list_id":{ids},"ts":1604937111}}"#)
    };
    let numbers = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
    let array = |n: usize| format!("[{}]", numbers(n).join(","));
    let text = |n: usize| format!("\"{}\"", numbers(n).join(","));
    let Ok(WebhookEvent::ListAddition(c)) = parse_event(addition(array(MAX_LISTS_PER_ADDITION)).as_bytes()) else {
        panic!("at the cap it parses")
    };
    assert_eq!(c.list_ids.len(), MAX_LISTS_PER_ADDITION);
    for body in [addition(array(MAX_LISTS_PER_ADDITION + 1)), addition(text(5000))] {
        let refused = parse_event(body.as_bytes()).unwrap_err();
        assert_eq!(refused, WebhookError::TooManyLists);
        assert!(!refused.to_string().contains("max@"), "no submitted value in the problem");
    }
    // Other events only carry their list ids; they fan out into nothing per list.
    let unsubscribe = format!(r#"{{"event":"unsubscribed","email":"max@example.com","list_id":{}}}"#, array(150));
    assert!(matches!(parse_event(unsubscribe.as_bytes()), Ok(WebhookEvent::Unsubscribed(_))));
}

mod observations {
    use chrono::{TimeZone, Utc};
    use optisync_brevo::webhook::{observations, parse_event};
    use optisync_domain::{AccountId, EspEventKind};

    fn observe(body: &str, own_key: Option<&str>) -> Vec<optisync_domain::EspEvent> {
        let event = parse_event(body.as_bytes()).expect("parses");
        observations(&event, &AccountId::new("acc"), own_key, Utc.with_ymd_and_hms(2024, 9, 25, 12, 0, 0).unwrap())
    }

    #[test]
    fn r_e2_r_j4_an_unsubscribe_is_the_recipients_own_account_wide_revocation_at_the_events_time() {
        let o = observe(
            r#"{"event":"unsubscribed","email":"Max@Example.com","id":1,"ts_event":1727251200,"camp_id":7,"list_id":[3]}"#,
            None,
        );
        assert_eq!(o.len(), 1);
        // R-J4: the recipient's own act (what erasure mode acts on), account-wide like Brevo's blacklist.
        assert_eq!((o[0].list.is_none(), &o[0].what), (true, &EspEventKind::Unsubscribed));
        assert_eq!(o[0].at.timestamp(), 1727251200);
        assert_eq!(o[0].email.key(), "max@example.com");
    }

    #[test]
    fn r_e6_r_j4_a_hard_bounce_is_a_deactivation_not_an_unsubscribe() {
        let o = observe(r#"{"event":"hard_bounce","email":"max@example.com","ts_event":1727251200}"#, None);
        assert_eq!(o[0].what, EspEventKind::Deactivated);
    }

    #[test]
    fn r_e3_a_list_addition_is_a_signup_per_list_unless_it_is_the_echo_of_our_own_write() {
        let body = r#"{"event":"list_addition","email":"new@example.com","list_id":[3,4],"api_key_name":"optisync","ts":1727251200}"#;
        let o = observe(body, Some("other-key"));
        assert_eq!(o.iter().map(|e| e.list.as_ref().unwrap().to_string()).collect::<Vec<_>>(), vec!["3", "4"]);
        assert!(o.iter().all(|e| matches!(e.what, EspEventKind::Signup { .. })));
        assert!(observe(body, Some("optisync")).is_empty(), "made with our own key: an echo");
    }

    #[test]
    fn r_e5_contact_updates_are_field_changes_and_invalid_addresses_are_dropped() {
        assert_eq!(
            observe(r#"{"event":"contact_updated","email":"max@example.com","ts":1}"#, None)[0].what,
            EspEventKind::FieldsChanged
        );
        assert!(observe(r#"{"event":"contact_deleted","email":"not-an-address","ts":1}"#, None).is_empty());
    }
}

/// A log sink for one test: what the adapter writes while the closure runs.
fn captured_logs(run: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn r_j5_an_unknown_event_name_is_never_logged_as_received() {
    let logs = captured_logs(|| {
        let event = parse_event(br#"{"event":"lena.schmidt@example.org","email":"x@y.de"}"#).unwrap();
        assert!(matches!(event, WebhookEvent::Other { .. }));
        parse_event(br#"{"event":"opened","email":"x@y.de"}"#).unwrap();
    });
    assert!(logs.contains("event=\"unknown\"") && logs.contains("event=\"opened\""), "{logs}");
    assert!(!logs.contains('@') && !logs.contains("lena"), "{logs}");
}
