//! Classify: reading the name a client asked for from its first bytes. `cargo bench --bench classify`.
//!
//! - `client_hello`: `classify::tls::parse` over a 512-byte hello (one record, padded as browsers pad)
//!   and a 20 KiB one (an X25519MLKEM768 key share and padding, split over two records, so the
//!   reassembly path runs).
//! - `http_host`: `classify::http::parse` over a 439-byte browser request head (eight headers), which
//!   yields the method, path, headers and the lower-cased Host without its port.

mod common;

use divan::{Bencher, black_box};
use gatehouse::classify::{http, tls};

fn main() {
    divan::main();
}

#[divan::bench(args = [512, 20 * 1024])]
fn client_hello(bencher: Bencher, size: usize) {
    let hello = common::client_hello("www.shop.example.test", size, size > 16 * 1024);
    let parsed = tls::parse(&hello).expect("the hello parses");
    assert_eq!(parsed.sni.as_deref(), Some("www.shop.example.test"));
    assert_eq!(parsed.len, size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench(|| tls::parse(black_box(&hello)));
}

#[divan::bench]
fn http_host(bencher: Bencher) {
    let req = http::parse(common::REQUEST, http::DEFAULT_MAX_HEAD).expect("the request parses");
    assert_eq!(req.host(), Some("www.shop.example.test"));
    assert_eq!(
        (req.head_len, req.headers.len()),
        (439, 8),
        "as the docs say"
    );
    bencher.bench(|| http::parse(black_box(common::REQUEST), http::DEFAULT_MAX_HEAD));
}
