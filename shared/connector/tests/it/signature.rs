//! Every vector of `shared/specs/standard-webhooks/test-vectors.json` (the reference folder beside the
//! checkout), plus rotation and replay cases.

use optisync_connector::signature::*;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/specs/standard-webhooks/test-vectors.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (the reference folder must be beside the checkout)"));
    serde_json::from_str(&text).expect("vectors parse")
}

fn verdict(result: Result<&str, VerifyError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(VerifyError::MissingHeader) => "missing_header",
        Err(VerifyError::InvalidTimestamp) => "invalid_timestamp",
        Err(VerifyError::TimestampTooOld) => "timestamp_too_old",
        Err(VerifyError::TimestampTooNew) => "timestamp_too_new",
        Err(VerifyError::InvalidSignature) => "invalid_signature",
        Err(VerifyError::InvalidMessageId(_)) => "invalid_message_id",
    }
}

#[test]
fn every_verify_vector_gets_its_expected_verdict() {
    let v = vectors();
    let cases = v["verify_vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 21);
    for case in cases {
        let secret = SigningSecret::parse(case["secret"].as_str().unwrap()).unwrap();
        let h = &case["headers"];
        let headers = SignedHeaders {
            id: h["webhook-id"].as_str(),
            timestamp: h["webhook-timestamp"].as_str(),
            signature: h["webhook-signature"].as_str(),
        };
        let got = verdict(verify(
            &[secret],
            headers,
            case["payload"].as_str().unwrap().as_bytes(),
            case["now"].as_i64().unwrap(),
        ));
        assert_eq!(got, case["expect"].as_str().unwrap(), "{}", case["name"]);
    }
}

#[test]
fn both_sign_vectors_are_byte_equal() {
    let v = vectors();
    for case in v["sign_vectors"].as_array().unwrap() {
        let secret = SigningSecret::parse(case["secret"].as_str().unwrap()).unwrap();
        let signature = sign(
            &secret,
            case["msg_id"].as_str().unwrap(),
            case["timestamp"].as_i64().unwrap(),
            case["payload"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(signature, case["expected_signature"].as_str().unwrap());
    }
}

#[test]
fn rotation_accepts_old_and_new_secrets_together_and_nothing_else() {
    let old = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let new = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let other = SigningSecret::parse("whsec_dGhpcyBpcyBhbm90aGVyIGtleSEhIQ==").unwrap();
    let body = br#"{"events":[]}"#;
    for signer in [&old, &new] {
        let signature = sign(signer, "msg_1", 1_700_000_000, body);
        let headers = SignedHeaders { id: Some("msg_1"), timestamp: Some("1700000000"), signature: Some(&signature) };
        assert_eq!(verify(&[old.clone(), new.clone()], headers, body, 1_700_000_010), Ok("msg_1"));
        assert_eq!(
            verify(std::slice::from_ref(&other), headers, body, 1_700_000_010),
            Err(VerifyError::InvalidSignature)
        );
    }
    // A sender in rotation may sign with both.
    let both = format!("{} {}", sign(&old, "msg_2", 1_700_000_000, body), sign(&new, "msg_2", 1_700_000_000, body));
    let headers = SignedHeaders { id: Some("msg_2"), timestamp: Some("1700000000"), signature: Some(&both) };
    assert_eq!(verify(std::slice::from_ref(&new), headers, body, 1_700_000_000), Ok("msg_2"));
}

#[test]
fn a_replay_after_the_tolerance_is_rejected_even_with_a_valid_signature() {
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signature = sign(&secret, "msg_1", 1_700_000_000, b"{}");
    let headers = SignedHeaders { id: Some("msg_1"), timestamp: Some("1700000000"), signature: Some(&signature) };
    assert_eq!(verify(std::slice::from_ref(&secret), headers, b"{}", 1_700_000_300), Ok("msg_1"));
    assert_eq!(verify(&[secret], headers, b"{}", 1_700_000_301), Err(VerifyError::TimestampTooOld));
}

#[test]
fn secrets_are_never_printed() {
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
    assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err(), "too short");
    assert!(SigningSecret::parse("not base64!").is_err());
}

#[test]
fn timestamps_at_the_ends_of_the_range_are_rejected_without_overflow() {
    // Found by the fuzz target: `now - sent` overflowed for these.
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    for (ts, expected) in
        [("-9223372036854775808", VerifyError::TimestampTooOld), ("9223372036854775807", VerifyError::TimestampTooNew)]
    {
        let headers = SignedHeaders { id: Some("m"), timestamp: Some(ts), signature: Some("v1,AAAA") };
        assert_eq!(verify(std::slice::from_ref(&secret), headers, b"{}", 1_700_000_000), Err(expected));
    }
}

// The optisync extension for connector-api requests (M1): the method, path and query are signed too.
// Expected signatures computed independently (HMAC-SHA256 over the documented content, base64).

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;

fn request<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> SignedRequest<'a> {
    SignedRequest { method, path, query }
}

#[test]
fn m1_request_signatures_match_the_documented_content_byte_for_byte() {
    let secret = SigningSecret::parse(SECRET).unwrap();
    let result = request("POST", "/connector/t1/commands/C1/result", None);
    assert_eq!(result.line(), "POST /connector/t1/commands/C1/result");
    assert_eq!(
        sign_request(&secret, ID, TS, &result, br#"{"status":"done"}"#),
        "v1,wBEGTAuJsSEC2wMviZED06+BT9ftM3nOr1n4zI1fQ4s="
    );
    let feed = request("GET", "/connector/t1/commands", Some("after=0&limit=100"));
    assert_eq!(feed.line(), "GET /connector/t1/commands?after=0&limit=100");
    assert_eq!(sign_request(&secret, ID, TS, &feed, b""), "v1,T0s+Uk6FmSvHkgZs4FfB1Qgrq/5OkVUrjrzaCB5+Ggo=");
    assert_eq!(request("GET", "/p", Some("")).line(), "GET /p", "an empty query is no query");
}

#[test]
fn m1_a_request_signature_holds_only_for_the_method_path_query_and_body_signed() {
    let secret = SigningSecret::parse(SECRET).unwrap();
    let signed = request("GET", "/connector/t1/commands", Some("after=0&limit=10"));
    let signature = sign_request(&secret, ID, TS, &signed, b"");
    let ts = TS.to_string();
    let headers = SignedHeaders { id: Some(ID), timestamp: Some(&ts), signature: Some(&signature) };
    let secrets = std::slice::from_ref(&secret);
    assert_eq!(verify_request(secrets, headers, &signed, b"", TS), Ok(ID));
    for other in [
        request("GET", "/connector/t1/commands", Some("after=0&limit=500")),
        request("GET", "/connector/t1/commands", Some("limit=10&after=0")),
        request("GET", "/connector/t1/commands", None),
        request("POST", "/connector/t1/commands", Some("after=0&limit=10")),
        request("GET", "/connector/t2/commands", Some("after=0&limit=10")),
    ] {
        assert_eq!(verify_request(secrets, headers, &other, b"", TS), Err(VerifyError::InvalidSignature), "{other:?}");
    }
    assert_eq!(verify_request(secrets, headers, &signed, b"{}", TS), Err(VerifyError::InvalidSignature));
    assert_eq!(verify(secrets, headers, b"", TS), Err(VerifyError::InvalidSignature), "not a plain signature");
}

#[test]
fn m1_a_plain_standard_webhooks_signature_is_not_a_request_signature() {
    let secret = SigningSecret::parse(SECRET).unwrap();
    let body = br#"{"status":"done"}"#;
    let plain = sign(&secret, ID, TS, body);
    let ts = TS.to_string();
    let headers = SignedHeaders { id: Some(ID), timestamp: Some(&ts), signature: Some(&plain) };
    let result = request("POST", "/connector/t1/commands/C1/result", None);
    assert_eq!(verify_request(&[secret], headers, &result, body, TS), Err(VerifyError::InvalidSignature));
}

#[test]
fn m1_request_signatures_rotate_and_keep_the_tolerance_like_plain_ones() {
    let old = SigningSecret::parse(SECRET).unwrap();
    let new = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let page = request("PUT", "/connector/t1/snapshots/S1/pages/2", None);
    let both = format!("{} {}", sign_request(&old, ID, TS, &page, b"{}"), sign_request(&new, ID, TS, &page, b"{}"));
    let ts = TS.to_string();
    let headers = SignedHeaders { id: Some(ID), timestamp: Some(&ts), signature: Some(&both) };
    assert_eq!(verify_request(std::slice::from_ref(&new), headers, &page, b"{}", TS + 300), Ok(ID));
    assert_eq!(verify_request(&[new], headers, &page, b"{}", TS + 301), Err(VerifyError::TimestampTooOld));
}

#[test]
fn r_k2_a_webhook_id_longer_than_128_characters_or_with_a_separator_is_refused_before_the_signature() {
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let now = 1_700_000_000;
    for (id, ok) in [("m".repeat(128), true), ("m".repeat(129), false), ("msg#1".into(), false)] {
        let signature = sign(&secret, &id, now, b"{}");
        let headers = SignedHeaders { id: Some(&id), timestamp: Some("1700000000"), signature: Some(&signature) };
        let result = verify(std::slice::from_ref(&secret), headers, b"{}", now);
        assert_eq!(result.is_ok(), ok, "id of {} characters", id.len());
        if !ok {
            assert!(matches!(result, Err(VerifyError::InvalidMessageId(_))), "{result:?}");
        }
    }
}
