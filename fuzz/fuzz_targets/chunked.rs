//! Any bytes fed to the chunked-body scanner, split anywhere, come back as "this much belongs to the
//! body" or an error, never a panic; the split never changes where the body ends.
#![no_main]

use gatehouse::l7::framing::Chunked;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut c = Chunked::default();
        c.feed(bytes).map(|n| (n, c.is_done()))
    };
    let step = usize::from(split).max(1);
    let mut c = Chunked::default();
    let mut used = 0;
    let mut result = Ok(());
    for piece in bytes.chunks(step) {
        match c.feed(piece) {
            Ok(n) => {
                assert!(n <= piece.len());
                used += n;
                if c.is_done() {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Ok((n, true)) = whole {
        assert!(result.is_ok(), "fed whole it ends at {n}, split it fails: {result:?}");
        assert!(c.is_done());
        assert_eq!(used, n);
    }
});
