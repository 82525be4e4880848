//! Stopping the real binary: SIGUSR1 stops gracefully (the listeners close at once, open sessions
//! go on until they end, a keep-alive http connection is closed after its current request, then the
//! process exits 0), `hard-stop-after` bounds that wait, SIGHUP is refused without harm.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::process::{Gatehouse, Keep, echo_server, free_port};
use nix::sys::signal::Signal;

/// A keep-alive HTTP server answering every request with "ok" (`/slow` after half a second).
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut s = s;
                loop {
                    let mut line = String::new();
                    let mut slow = false;
                    // Read one head; `/slow` is answered after half a second.
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        slow |= line.starts_with("GET /slow");
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if slow {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn start(name: &str, cfg: &str, port: u16) -> Gatehouse {
    Gatehouse::start(&format!("stop-{name}"), cfg, port, Keep::Stdout)
}

fn signal(g: &Gatehouse, s: Signal) {
    g.signal(s);
}

fn exit_within(g: &mut Gatehouse, limit: Duration) -> (i32, String) {
    g.exit_within(limit)
}

fn echo(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

fn tcp_config(port: u16, server: u16, extra: &str) -> String {
    format!(
        "global\n plumbing none\n{extra}\ndefaults\n mode tcp\n timeout connect 2s\n timeout client 30s\n timeout server 30s\nfrontend f\n bind 127.0.0.1:{port}\n default_backend b\nbackend b\n server s 127.0.0.1:{server}\n"
    )
}

#[test]
fn sigusr1_drains_then_exits() {
    let (port, server) = (free_port(), echo_server(""));
    let mut g = start("drain", &tcp_config(port, server, ""), port);
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echo(&mut a, b"before");
    // A reload request changes nothing.
    signal(&g, Signal::SIGHUP);
    echo(&mut a, b"after hup");
    signal(&g, Signal::SIGUSR1);
    // The listener closes at once…
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
    // …the open session goes on…
    echo(&mut a, b"while draining");
    assert!(
        g.child.try_wait().unwrap().is_none(),
        "exited with a session open"
    );
    // …and when it ends, so does gatehouse.
    drop(a);
    let (code, out) = exit_within(&mut g, Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(out.contains(" f b/s ") && out.contains(" -- "), "{out}");
}

#[test]
fn hard_stop_after_bounds_the_drain() {
    let (port, server) = (free_port(), echo_server(""));
    let mut g = start(
        "hard",
        &tcp_config(port, server, " hard-stop-after 1s"),
        port,
    );
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    echo(&mut a, b"held open");
    let t0 = Instant::now();
    signal(&g, Signal::SIGUSR1);
    let (code, out) = exit_within(&mut g, Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    // The session killed at the end is logged with a K termination code.
    assert!(out.contains(" f b/s ") && out.contains(" KD "), "{out}");
}

#[test]
fn keep_alive_connections_close_after_their_request() {
    let (port, server) = (free_port(), http_server());
    let cfg = format!(
        "global\n plumbing none\ndefaults\n mode http\n timeout connect 2s\n timeout client 30s\n timeout server 30s\nfrontend f\n bind 127.0.0.1:{port}\n default_backend b\nbackend b\n server s 127.0.0.1:{server}\n"
    );
    let mut g = start("http", &cfg, port);
    let a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = a.try_clone().unwrap();
    let mut r = BufReader::new(a);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let read_response = |r: &mut BufReader<TcpStream>| -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = [0u8; 2];
        r.read_exact(&mut body).unwrap();
        head
    };
    w.write_all(request).unwrap();
    let first = read_response(&mut r);
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    // A request in flight when the stop comes is answered, with Connection: close.
    w.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&g, Signal::SIGUSR1);
    let second = read_response(&mut r);
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "the connection closes"
    );
    let (code, _) = exit_within(&mut g, Duration::from_secs(5));
    assert_eq!(code, 0);
}

#[test]
fn idle_keep_alive_connections_close_at_once() {
    let (port, server) = (free_port(), http_server());
    let cfg = format!(
        "global\n plumbing none\ndefaults\n mode http\n timeout connect 2s\n timeout client 30s\n timeout server 30s\nfrontend f\n bind 127.0.0.1:{port}\n default_backend b\nbackend b\n server s 127.0.0.1:{server}\n"
    );
    let mut g = start("idle", &cfg, port);
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"ok") {
        let n = a.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // The connection now waits for its next request (timeout client 30s).
    let t0 = Instant::now();
    signal(&g, Signal::SIGUSR1);
    assert_eq!(a.read(&mut buf).unwrap(), 0, "closed by the graceful stop");
    let (code, _) = exit_within(&mut g, Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// `log-format` through the real binary: the line is read from its standard output at exit.
#[test]
fn log_format_shapes_the_line() {
    let (port, server) = (free_port(), http_server());
    let cfg = format!(
        "global\n plumbing none\ndefaults\n mode http\n timeout connect 2s\n timeout client 30s\n timeout server 30s\nfrontend f\n bind 127.0.0.1:{port}\n log-format \"%ci %f %b/%s %ST %B %{{+Q}}r %%done\"\n default_backend b\nbackend b\n server s 127.0.0.1:{server}\n"
    );
    let mut g = start("logfmt", &cfg, port);
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.write_all(b"GET /x?y=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = Vec::new();
    a.read_to_end(&mut resp).unwrap();
    signal(&g, Signal::SIGUSR1);
    let (code, out) = exit_within(&mut g, Duration::from_secs(5));
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.contains("/x?y=1"))
        .unwrap_or_else(|| panic!("{out}"));
    let bytes = resp.len();
    assert_eq!(
        line,
        format!("127.0.0.1 f b/s 200 {bytes} \"GET /x?y=1 HTTP/1.1\" %done")
    );
}
