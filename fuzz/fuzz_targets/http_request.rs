//! Any bytes given to the request head reader come back as a request, "need more", "not HTTP",
//! "too large" or "malformed", never a panic; a host it returns is lower-case without a port.
#![no_main]

use gatehouse::classify::http::{DEFAULT_MAX_HEAD, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse(data, DEFAULT_MAX_HEAD) {
        assert!(r.head_len <= data.len());
        if let Some(h) = r.host() {
            assert_eq!(h, h.to_ascii_lowercase());
            assert!(h.starts_with('[') || !h.contains(':'));
        }
    }
    let _ = parse(data, 64);
});
