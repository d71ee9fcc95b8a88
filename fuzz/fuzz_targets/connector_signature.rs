//! Any headers and body a caller can send to hook-optigem or connector-api: neither verification nor the
//! body parser panics, and verification never accepts what was not signed with the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use optisync_connector::signature::{SignedHeaders, SigningSecret, sign, verify};
use optisync_connector::wire::parse_batch;

fuzz_target!(|data: &[u8]| {
    // The body parser: any bytes, never a panic.
    let _ = parse_batch(data);
    let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (id, timestamp, signature, body) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
    let headers = SignedHeaders { id, timestamp, signature };
    if verify(std::slice::from_ref(&secret), headers, body.as_bytes(), 1_700_000_000).is_ok() {
        // Only a correct signature may pass.
        let (id, ts) = (id.unwrap_or_default(), timestamp.unwrap_or_default().trim().parse::<i64>().unwrap_or(0));
        let good = sign(&secret, id, ts, body.as_bytes());
        assert!(signature.unwrap_or_default().split(' ').any(|s| s == good) || ts.to_string() != timestamp.unwrap_or_default());
    }
});
