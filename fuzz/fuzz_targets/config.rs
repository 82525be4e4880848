//! Any text given to the config reader must come back as a config or as file:line diagnostics,
//! never a panic. Covers the lexer (quotes, escapes, ${VAR}), the keyword tables and validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match gatehouse::config::from_str("fuzz.cfg", text) {
            Ok(loaded) => {
                // A valid config must also plan and render its plumbing without panicking.
                let plan = gatehouse::plumbing::Plan::from_config(&loaded.config);
                let _ = gatehouse::plumbing::render(&plan, gatehouse::plumbing::Firewall::Nft);
                let _ = gatehouse::plumbing::render(&plan, gatehouse::plumbing::Firewall::Iptables);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
