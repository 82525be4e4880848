//! Route: rule evaluation and map lookups. `cargo bench --bench rules`.
//!
//! - `acl_1000`: `route::select_backend` for a frontend with `use_backend b1 if big`, where `big` is
//!   one ACL line of 1000 patterns, built by the config parser as an operator would write it:
//!   `hdr(host) -i` (exact strings: a hash set), `hdr_end(host) -i` (suffixes: an index) and `src`
//!   (networks: a walk over the list). `last` matches the 1000th pattern, `miss` none.
//! - `map_dom_100k`: `Map::lookup` in a 100 000-line `map_dom` map: a host that is a key (the
//!   50 001st line), a deep subdomain of the last line's, and a name that matches no line.

mod common;

use std::net::SocketAddr;

use divan::{Bencher, black_box};
use gatehouse::route::select_backend;
use gatehouse::rules::pattern::{Map, Method};

fn main() {
    divan::main();
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Last,
    Miss,
}

const CASES: [Case; 2] = [Case::Last, Case::Miss];

/// Runs `select_backend` over `cfg` for a request to `host` from `client`, checking the backend
/// chosen first (1: the ACL matched; 0: the default).
fn bench_select(
    bencher: Bencher,
    cfg: gatehouse::config::Config,
    host: &str,
    client: &str,
    want: usize,
) {
    let client: SocketAddr = client.parse().unwrap();
    let req = common::request_for(host);
    let f = common::facts(client, Some(&req));
    let fe = &cfg.frontends[0];
    assert_eq!(select_backend(&cfg, fe, &f), Some(want));
    bencher.bench_local(|| select_backend(&cfg, fe, black_box(&f)));
}

#[divan::bench(args = CASES)]
fn acl_1000_hdr_host_str(bencher: Bencher, case: Case) {
    let cfg = common::config_with_acl("hdr(host) -i", common::host);
    let (host, want) = match case {
        Case::Last => (common::host(999).to_uppercase(), 1),
        Case::Miss => ("www.nowhere.example.test".to_string(), 0),
    };
    bench_select(bencher, cfg, &host, "198.51.100.7:40000", want);
}

#[divan::bench(args = CASES)]
fn acl_1000_hdr_end_host(bencher: Bencher, case: Case) {
    let cfg = common::config_with_acl("hdr_end(host) -i", common::host);
    let (host, want) = match case {
        Case::Last => (format!("www.{}", common::host(999)), 1),
        Case::Miss => ("www.nowhere.example.test".to_string(), 0),
    };
    bench_select(bencher, cfg, &host, "198.51.100.7:40000", want);
}

#[divan::bench(args = CASES)]
fn acl_1000_src(bencher: Bencher, case: Case) {
    let cfg = common::config_with_acl("src", common::net);
    let (client, want) = match case {
        Case::Last => ("10.3.231.77:40000", 1),
        Case::Miss => ("198.51.100.7:40000", 0),
    };
    bench_select(bencher, cfg, "www.shop.example.test", client, want);
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    Key,
    DeepSubdomain,
    Miss,
}

#[divan::bench(args = [Lookup::Key, Lookup::DeepSubdomain, Lookup::Miss])]
fn map_dom_100k(bencher: Bencher, what: Lookup) {
    let map = Map::from_text("bench.map", &common::map_text(100_000), Method::Dom).unwrap();
    let (key, want) = match what {
        Lookup::Key => (common::host(50_000), Some("be_0")),
        Lookup::DeepSubdomain => (format!("a.b.c.d.{}", common::host(99_999)), Some("be_49")),
        Lookup::Miss => ("www.nowhere.example.test".to_string(), None),
    };
    assert_eq!(map.lookup(&key).as_deref(), want);
    bencher.bench_local(|| map.lookup(black_box(&key)));
}
