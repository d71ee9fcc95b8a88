//! Any body and Authorization header a caller can send to hook-brevo: nothing panics, and the dedupe key
//! of a parsed event never contains the e-mail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use optisync_brevo::webhook;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = webhook::parse_events(data) {
        for event in &events {
            let key = webhook::dedupe_key(event);
            assert!(!key.contains('@'), "dedupe keys are hashes");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = webhook::authenticate(Some(text), "expected-token");
    }
});
