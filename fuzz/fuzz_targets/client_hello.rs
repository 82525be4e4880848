//! Any bytes given to the ClientHello reader come back as a hello, "need more", "not TLS" or
//! "malformed", never a panic; a name it returns is a lower-case DNS name, and every prefix of an
//! input that parses is "need more" or the same verdict the kernel could have delivered first.
#![no_main]

use gatehouse::classify::tls::{TlsError, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse(data) {
        if let Some(name) = &h.sni {
            assert!(!name.is_empty() && name.len() <= 253);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            );
        }
        // A shorter read can never have claimed more than the full one.
        for cut in [data.len() / 2, data.len().saturating_sub(1)] {
            match parse(&data[..cut]) {
                Ok(_) | Err(TlsError::Incomplete) => {}
                Err(e) => panic!("prefix of {cut}: {e}, but the whole input parses"),
            }
        }
    }
});
