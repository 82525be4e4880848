//! Stick tables under contention. `cargo bench --bench stick`.
//!
//! One HTTP request's worth of table work, as a `track-sc0 src` frontend does it: `track` (a
//! connection and a session), `http_request`, `untrack`, against one table storing `conn_cnt`,
//! `conn_rate(10s)`, `http_req_rate(10s)` and `http_req_cnt`. Run on 1 thread and on 2 at once
//! (divan starts them together; every table operation takes the table's one lock). Samples are 20 000
//! updates long: with short ones, on a busy 2-core machine, the second thread often ran after the
//! first rather than beside it, and the figure showed no contention at all:
//!
//! - `same_key`: every thread updates the same client's entry.
//! - `spread_keys`: each update goes to one of 1024 clients.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use divan::{Bencher, black_box};
use gatehouse::config::model::{DataType, KeyType, StickTableDef};
use gatehouse::stick::{Key, Table};

fn main() {
    divan::main();
}

fn table() -> Table {
    let p = Duration::from_secs(10);
    Table::new(StickTableDef {
        name: "clients".into(),
        key_type: KeyType::Ip,
        size: 100_000,
        expire: Some(Duration::from_secs(60)),
        store: vec![
            DataType::ConnCnt,
            DataType::ConnRate(p),
            DataType::HttpReqCnt,
            DataType::HttpReqRate(p),
        ],
    })
}

fn client(i: u32) -> Key {
    Key::Ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

/// What one request does to the table.
fn request(t: &Table, k: &Key) {
    t.track(k);
    t.http_request(k, false);
    t.untrack(k, 512, 4096);
}

#[divan::bench(threads = [1, 2], sample_size = 20_000)]
fn same_key(bencher: Bencher) {
    let t = table();
    let k = client(7);
    bencher.bench(|| request(&t, black_box(&k)));
}

#[divan::bench(threads = [1, 2], sample_size = 20_000)]
fn spread_keys(bencher: Bencher) {
    let t = table();
    let keys: Vec<Key> = (0..1024).map(client).collect();
    // Each thread starts at its own place in the key list, so two threads do not walk it in step.
    static START: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static NEXT: Cell<usize> = Cell::new(START.fetch_add(509, Relaxed)));
    bencher.bench(|| {
        let i = NEXT.with(|n| {
            let i = n.get();
            n.set(i.wrapping_add(7));
            i
        });
        request(&t, black_box(&keys[i % keys.len()]));
    });
}
