//! Any bytes given to the PROXY header parser come back as a header, "need more" or an error, never
//! a panic. A header is never longer than the input or than its version allows, parsing it alone
//! gives the same header, and every strict prefix of it says "need more" (which is what lets the
//! readers consume exactly the header).
#![no_main]

use gatehouse::proxy_protocol::{V1_MAX, V2_MAX, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((h, used))) = parse(data) else {
        return;
    };
    assert!(used <= data.len());
    assert!(used <= if h.version == 1 { V1_MAX } else { V2_MAX });
    let (again, used_again) = parse(&data[..used]).unwrap().unwrap();
    assert_eq!((&again, used_again), (&h, used));
    for n in 0..used {
        assert!(
            matches!(parse(&data[..n]), Ok(None)),
            "the prefix of {n} bytes of a {used}-byte header is not 'need more'"
        );
    }
    if h.local {
        assert!(h.addrs.is_none());
    }
});
