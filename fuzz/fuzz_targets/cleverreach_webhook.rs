//! Any body, query or call token a caller can send to hook-cleverreach: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use optisync_cleverreach::{Secret, webhook};

fuzz_target!(|data: &[u8]| {
    let _ = webhook::parse_event(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let expected = Secret::new("expected-call-token");
        let _ = webhook::authenticate(&expected, Some(text));
        let _ = webhook::verification_answer_for_query(&expected, Some(text));
    }
});
