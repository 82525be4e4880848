//! Allocations per operation on the hot paths: `cargo bench --bench allocs`.
//!
//! A counting global allocator (System underneath) counts every allocation, reallocation and the
//! bytes asked for; each row runs one operation many times after a warm-up and divides. The pure
//! rows call the library's functions directly. The `mode http` rows run a real gateway in this
//! process (as tests/http.rs does: the config parser, `listener::bind_all`, `server::run` on a
//! current-thread runtime, like one worker thread) between a blocking client and a blocking origin
//! on loopback, and send 10 000 requests on one keep-alive connection; the client and the origin
//! reuse fixed buffers and allocate nothing per request, so what is counted is the gateway's (and
//! tokio's) work for one request and its response.
//!
//! Plain `main`, no harness: it prints a table and takes a few seconds. With `ALLOCS_TRACE=1` it
//! also prints, on standard error, where each allocation of one more loopback request comes from.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gatehouse::classify::{http, tls};
use gatehouse::l7::{framing, message, rewrite};
use gatehouse::rules::pattern::{Map, Method};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// With `ALLOCS_TRACE=1`, the stack of each allocation made while this is set (one request).
static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STACKS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread records a stack, whose own allocations are not traced.
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records where an allocation of `size` bytes comes from, when tracing.
fn trace(size: usize) {
    if !TRACE.load(Relaxed) || IN_TRACE.with(|t| t.replace(true)) {
        return;
    }
    let stack = std::backtrace::Backtrace::force_capture().to_string();
    // Only our frames (and tokio's spawns) say where; the allocator's and std's are noise.
    let ours: Vec<&str> = stack
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("gatehouse::") || l.contains("at ./src/") || l.contains("at src/"))
        .take(8)
        .collect();
    STACKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{size} bytes:\n    {}", ours.join("\n    ")));
    IN_TRACE.with(|t| t.set(false));
}

/// Counts, then lets System do the work.
struct Counting;

// The crate denies unsafe code; a global allocator cannot be written without it (GlobalAlloc is an
// unsafe trait and its methods are unsafe functions). This impl only counts and forwards each call
// to System with the caller's own arguments, so System's contract is the caller's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        trace(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        trace(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size.saturating_sub(layout.size()) as u64, Relaxed);
        trace(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[derive(Clone, Copy)]
struct Counts {
    allocs: u64,
    reallocs: u64,
    bytes: u64,
}

fn counts() -> Counts {
    Counts {
        allocs: ALLOCS.load(Relaxed),
        reallocs: REALLOCS.load(Relaxed),
        bytes: BYTES.load(Relaxed),
    }
}

/// One table row: `n` operations counted between two snapshots.
fn row(what: &str, n: u64, before: Counts, after: Counts, took: Duration) {
    let per = |a: u64, b: u64| (b - a) as f64 / n as f64;
    println!(
        "| {what:<52} | {:>7.2} | {:>8.2} | {:>9.1} | {:>9.2} |",
        per(before.allocs, after.allocs),
        per(before.reallocs, after.reallocs),
        per(before.bytes, after.bytes),
        took.as_secs_f64() * 1e6 / n as f64,
    );
}

/// Runs `f` 100 times to warm up, then `n` times counted.
fn measure<R>(what: &str, n: u64, mut f: impl FnMut() -> R) {
    for _ in 0..100 {
        black_box(f());
    }
    let (before, start) = (counts(), Instant::now());
    for _ in 0..n {
        black_box(f());
    }
    let (took, after) = (start.elapsed(), counts());
    row(what, n, before, after, took);
}

fn main() {
    println!(
        "| {:<52} | {:>7} | {:>8} | {:>9} | {:>9} |",
        "operation", "allocs", "reallocs", "bytes", "µs (≈)"
    );
    println!(
        "|{:-<54}|{:->9}|{:->10}|{:->11}|{:->11}|",
        "", "", "", "", ""
    );

    for (size, pq) in [(512, false), (20 * 1024, true)] {
        let hello = common::client_hello("www.shop.example.test", size, pq);
        measure(&format!("ClientHello parse, {size} B"), 10_000, || {
            tls::parse(black_box(&hello)).unwrap()
        });
    }
    measure("HTTP request head parse (Host), 439 B", 10_000, || {
        http::parse(black_box(common::REQUEST), http::DEFAULT_MAX_HEAD).unwrap()
    });

    let req = common::request_for(&common::host(999));
    let client: SocketAddr = "10.3.231.77:40000".parse().unwrap();
    let f = common::facts(client, Some(&req));
    for (criterion, make) in [
        ("hdr(host) -i", common::host as fn(usize) -> String),
        ("hdr_end(host) -i", common::host),
        ("src", common::net),
    ] {
        let cfg = common::config_with_acl(criterion, make);
        let fe = &cfg.frontends[0];
        assert_eq!(gatehouse::route::select_backend(&cfg, fe, &f), Some(1));
        measure(
            &format!("use_backend if `{criterion}` ×1000, match"),
            10_000,
            || gatehouse::route::select_backend(&cfg, fe, black_box(&f)),
        );
    }

    let map = Map::from_text("bench.map", &common::map_text(100_000), Method::Dom).unwrap();
    let key = format!("a.b.c.d.{}", common::host(99_999));
    measure(
        "map_dom lookup, 100k entries, deep subdomain hit",
        20,
        || map.lookup(black_box(&key)).unwrap(),
    );

    stick_rows();
    l7_pieces();
    for (what, log) in [
        ("mode http keep-alive request, loopback, `no log`", false),
        ("… the same with option httplog to a UDP log", true),
    ] {
        loopback(what, log, 10_000);
    }
}

fn stick_rows() {
    use gatehouse::config::model::{DataType, KeyType, StickTableDef};
    let p = Duration::from_secs(10);
    let t = gatehouse::stick::Table::new(StickTableDef {
        name: "clients".into(),
        key_type: KeyType::Ip,
        size: 100_000,
        expire: Some(Duration::from_secs(60)),
        store: vec![
            DataType::ConnCnt,
            DataType::ConnRate(p),
            DataType::HttpReqRate(p),
        ],
    });
    let k = gatehouse::stick::Key::Ip("10.0.0.7".parse().unwrap());
    measure("stick table track + http_request + untrack", 10_000, || {
        t.track(&k);
        t.http_request(&k, false);
        t.untrack(&k, 512, 4096);
    });
}

/// The origin's answer: a small JSON body, as an API would send.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Content-Length: 27\r\n\
Cache-Control: no-store\r\n\
Date: Wed, 02 Dec 2026 11:00:00 GMT\r\n\
Server: origin\r\n\
\r\n\
{\"items\":[1,2,3],\"page\":3}\n";

/// The pure steps `l7::stream` takes for one request and its response, without sockets: parse the
/// request head, its body framing, copy the head with X-Forwarded-For added, parse the response head
/// (the plain path keeps only the headers gatehouse reads) and its body framing.
fn l7_pieces() {
    let client: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    measure(
        "mode http head path, no sockets (parse+ff+response)",
        10_000,
        || {
            let req = http::parse(black_box(common::REQUEST), http::DEFAULT_MAX_HEAD).unwrap();
            let body = framing::request_body(&req.headers).unwrap();
            let mut head = Vec::with_capacity(req.head_len + 96);
            head.extend_from_slice(&common::REQUEST[..req.head_len]);
            rewrite::append_forwarded_for(&mut head, client, None);
            let res = message::parse_response(black_box(RESPONSE), false).unwrap();
            let res_body = framing::response_body(res.status, req.method(), &res.headers).unwrap();
            (body, head, res_body)
        },
    );
}

/// Where a request head ends in `buf[..len]`, if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// An origin on a blocking thread: one connection, every request head answered with [`RESPONSE`],
/// from one fixed buffer.
fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        while let Ok((mut s, _)) = l.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 16 * 1024];
            let mut len = 0;
            loop {
                while let Some(n) = head_end(&buf[..len]) {
                    if s.write_all(RESPONSE).is_err() {
                        return;
                    }
                    buf.copy_within(n..len, 0);
                    len -= n;
                }
                match s.read(&mut buf[len..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
            }
        }
    });
    addr
}

/// A gateway running `cfg` on its own current-thread runtime (one worker); returns its address.
fn gateway(cfg: String) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let cfg = Arc::new(
                gatehouse::config::from_str("allocs.cfg", &cfg)
                    .unwrap()
                    .config,
            );
            let bound = gatehouse::listener::bind_all(&cfg).unwrap();
            tx.send(bound[0].listener.local_addr().unwrap()).unwrap();
            let rt = Arc::new(gatehouse::account::Runtime::new(cfg));
            // Runs until the process ends.
            gatehouse::server::run(rt, bound, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

/// `n` requests on one keep-alive connection through a gateway with `option forwardfor` and a
/// `use_backend … if { path_beg /api/ }` rule; with `log`, `option httplog` lines go to a UDP
/// socket read (and dropped) by another thread.
fn loopback(what: &str, log: bool, n: u64) {
    let server = origin();
    let log_lines = if log {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while sock.recv(&mut buf).is_ok() {}
        });
        format!("    log {addr} local0\n    option httplog\n")
    } else {
        "    no log\n".to_string()
    };
    let gw = gateway(format!(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         frontend fe\n    bind 127.0.0.1:0\n    option forwardfor\n{log_lines}\
         \x20   use_backend app if {{ path_beg /api/ }}\n    default_backend other\n\
         backend app\n    server s1 {server}\n\
         backend other\n    server s2 127.0.0.1:9\n"
    ));
    let mut c = TcpStream::connect(gw).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The first answer tells how long each is; every later one must be the same bytes.
    c.write_all(common::REQUEST).unwrap();
    let mut first = [0u8; 4096];
    let mut len = 0;
    let total = loop {
        let got = c.read(&mut first[len..]).unwrap();
        assert!(got > 0, "the gateway closed the connection");
        len += got;
        if let Some(h) = head_end(&first[..len]) {
            let head = std::str::from_utf8(&first[..h]).unwrap();
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("a Content-Length")
                .parse()
                .unwrap();
            if len >= h + cl {
                break h + cl;
            }
        }
    };
    assert!(first.starts_with(b"HTTP/1.1 200"), "{:?}", &first[..total]);
    let mut buf = [0u8; 4096];
    let mut one = |c: &mut TcpStream| {
        c.write_all(common::REQUEST).unwrap();
        c.read_exact(&mut buf[..total]).unwrap();
        assert_eq!(buf[..total], first[..total]);
    };
    for _ in 0..1000 {
        one(&mut c);
    }
    let (before, start) = (counts(), Instant::now());
    for _ in 0..n {
        one(&mut c);
    }
    let (took, after) = (start.elapsed(), counts());
    row(what, n, before, after, took);
    if std::env::var_os("ALLOCS_TRACE").is_some() {
        TRACE.store(true, Relaxed);
        one(&mut c);
        // The gateway's last steps (the log line) may end just after the client has its answer.
        std::thread::sleep(Duration::from_millis(50));
        TRACE.store(false, Relaxed);
        for s in STACKS.lock().unwrap().drain(..) {
            eprintln!("{s}");
        }
    }
}
