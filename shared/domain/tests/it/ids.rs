//! The dry run's tenant (R-F8): a tenant of its own that stands for the real one.

use optisync_domain::TenantId;

#[test]
fn r_f8_a_dry_runs_tenant_is_marked_and_stands_for_the_real_one() {
    let real = TenantId::new("t1");
    let preview = real.preview();
    assert_eq!(preview.as_str(), "t1~preview");
    assert!(preview.is_preview() && !real.is_preview());
    assert_eq!((preview.real(), real.real()), (real.clone(), real));
}

use optisync_domain::{
    AccountId, IdProblem, LinkId, ListId, MAX_ID_LEN, PREVIEW_SUFFIX, SegmentId, parse_id, parse_message_id,
};
use proptest::prelude::*;

#[test]
fn r_k2_ids_of_every_kind_accept_what_optigem_and_the_esps_send() {
    assert_eq!(TenantId::parse("demo").unwrap().as_str(), "demo");
    assert!(LinkId::parse("rundbrief-2024_v1.0").is_ok());
    assert!(AccountId::parse("brevo-main").is_ok());
    assert!(ListId::parse("17").is_ok(), "Brevo list ids and CleverReach group ids are numbers");
    assert!(SegmentId::parse("4711").is_ok());
    assert!(TenantId::parse(&"a".repeat(MAX_ID_LEN)).is_ok());
    assert!(parse_message_id("msg_0123456789abcdef0123456789abcdef").is_ok());
}

#[test]
fn r_k2_ids_with_store_separators_dots_or_reserved_scopes_are_refused() {
    for bad in ["a#b", "a/b", "a|b", "a~b", "a:b", "a b", "a%23b", "aä", "a\u{0}b", "a@b.de"] {
        assert_eq!(TenantId::parse(bad).unwrap_err().problem, IdProblem::BadCharacter, "{bad:?}");
    }
    for bad in [".", "..", "-a", "_a", ".hidden"] {
        assert_eq!(LinkId::parse(bad).unwrap_err().problem, IdProblem::BadStart, "{bad:?}");
    }
    assert_eq!(TenantId::parse("").unwrap_err().problem, IdProblem::Empty);
    assert_eq!(TenantId::parse(&"a".repeat(MAX_ID_LEN + 1)).unwrap_err().problem, IdProblem::TooLong);
    assert!(TenantId::parse(&format!("t1{PREVIEW_SUFFIX}")).is_err(), "a dry run's scope is not reachable");
}

#[test]
fn r_k2_a_webhook_id_of_3000_characters_is_refused() {
    assert_eq!(parse_message_id(&"a".repeat(3000)).unwrap_err().problem, IdProblem::TooLong);
    assert!(parse_message_id("msg\u{ff}").is_err());
}

#[test]
fn r_j5_an_id_error_names_the_kind_but_never_the_value() {
    let e = AccountId::parse("lena@example.org").unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("AccountId"), "{text}");
    assert!(!text.contains('@') && !text.contains("lena"), "{text}");
}

proptest! {
    /// Every accepted id is free of every store key separator, so `{tenant}#{link}`-style keys split back
    /// into exactly the parts they were made of.
    #[test]
    fn r_k2_parsed_ids_round_trip_through_composite_keys(a in "\\PC{0,70}", b in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}") {
        if let Ok(a) = parse_id("TenantId", &a) {
            for sep in ['#', '/', '|', '~', ':'] {
                let key = format!("{a}{sep}{b}");
                let parts: Vec<&str> = key.split(sep).collect();
                prop_assert_eq!(parts, vec![a, b.as_str()]);
            }
            prop_assert!(!a.ends_with(PREVIEW_SUFFIX));
        }
        prop_assert!(parse_id("LinkId", &b).is_ok());
    }
}

#[test]
fn r_j5_decoder_messages_lose_every_quoted_value() {
    use optisync_domain::{decode_path, decode_problem};
    let cases = [
        (
            r#"invalid type: string "lena@example.org", expected a boolean at line 1 column 9"#,
            "invalid type: string, expected a boolean",
        ),
        ("unknown field `lena@example.org`, expected one of `a`, `b`", "unknown field, expected one of `a`, `b`"),
        ("unknown variant `lena@example.org`, expected `assignment`", "unknown variant, expected `assignment`"),
        (r#"invalid value: string "lena@example.org""#, "invalid value: string"),
        ("missing field `email`", "missing field `email`"),
        ("trailing characters at line 1 column 3", "trailing characters"),
    ];
    for (raw, want) in cases {
        assert_eq!(decode_problem(raw), want, "{raw}");
    }
    assert_eq!(decode_path("events[0].person.privacy.lena@example.org"), "events[0].person.privacy.?");
    assert_eq!(decode_path("events[0].assignment.email"), "events[0].assignment.email");
}
