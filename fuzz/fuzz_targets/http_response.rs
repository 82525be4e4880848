//! Any bytes as a server's response head, and any text as request cookies: the response parser, the
//! head edits of mode http and the cookie readers return a value or an error, never a panic; a parsed
//! head keeps parsing the same after a header is set on it.
#![no_main]

use gatehouse::l7::{cookie, message, rewrite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = message::parse_response(data, true) {
        assert!(r.head_len <= data.len());
        let head = &data[..r.head_len];
        let edited = message::set_header(head, "X-Test", "1");
        let again = message::parse_response(&edited, true).expect("an edited head still parses");
        assert_eq!(again.status, r.status);
        let _ = rewrite::remove_header(head, "set-cookie");
        let mut appended = head.to_vec();
        rewrite::append_header(&mut appended, "X-Test", b"1");
        assert_eq!(appended, rewrite::add_header(head, "X-Test", "1"));
        let _ = cookie::response_cookie(&r.headers, "SRV");
    }
    let _ = message::set_target(data, "/x");
    let _ = message::request_line(data);
    let text = String::from_utf8_lossy(data);
    let headers: gatehouse::classify::http::Headers = [("Cookie", &*text)].into_iter().collect();
    let _ = cookie::request_cookie(&headers, "SRV");
});
