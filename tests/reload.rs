//! Reloading the real binary with SIGHUP: the new configuration takes new connections, listeners
//! that stay are never closed (no connection refused, even while connections keep coming during
//! ten reloads), a session opened before keeps its old backend, server states and stick tables carry
//! over, a broken file changes nothing, a bind line that goes away closes its port.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::process::{Gatehouse, Keep, echo_server, free_port};
use nix::sys::signal::Signal;

/// The runtime API on the run's admin socket.
fn cli(g: &Gatehouse, cmd: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(g.dir.join("admin.sock")).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Writes `cfg` and sends SIGHUP.
fn reload(g: &Gatehouse, cfg: &str) {
    std::fs::write(&g.file, cfg).unwrap();
    g.signal(Signal::SIGHUP);
}

/// Connects through `port` and returns the tag of the server reached.
fn tag_via(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tag = [0u8; 1];
    s.read_exact(&mut tag).unwrap();
    String::from_utf8_lossy(&tag).into_owned()
}

fn config(dir_sock: &std::path::Path, body: &str) -> String {
    format!(
        "global\n plumbing none\n stats socket {} level admin\ndefaults\n mode tcp\n timeout connect 2s\n timeout client 30s\n timeout server 30s\n{body}",
        dir_sock.display()
    )
}

/// Waits until `f` holds (a reload is asynchronous to the signal).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_without_refusing_anything() {
    let (x, y) = (echo_server("X"), echo_server("Y"));
    let (p1, p2) = (free_port(), free_port());
    let sock = Gatehouse::dir_for("reload").join("admin.sock");
    let one = config(
        &sock,
        &format!(
            "frontend f\n bind 127.0.0.1:{p1}\n default_backend b\nbackend b\n stick-table type ip size 10 store gpc0\n server s1 127.0.0.1:{x}\n server s2 127.0.0.1:{y}\n"
        ),
    );
    let g = Gatehouse::start("reload", &one, p1, Keep::Stderr);

    // A session opened before any reload, on s1 or s2.
    let mut long = TcpStream::connect(("127.0.0.1", p1)).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 1];
    long.read_exact(&mut first).unwrap();
    // State the reload must keep: s1 in maintenance, a stick table entry.
    assert_eq!(cli(&g, "disable server b/s1"), "\n");
    assert_eq!(cli(&g, "set table b key 10.9.9.9 data.gpc0 5"), "\n");

    // Connections keep coming while ten reloads happen (some change the backend).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let churn = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Relaxed) && Instant::now() < deadline {
                let got = TcpStream::connect(("127.0.0.1", p1)).and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    let mut t = [0u8; 1];
                    s.read_exact(&mut t)
                });
                match got {
                    Ok(()) => ok.fetch_add(1, Relaxed),
                    Err(_) => failed.fetch_add(1, Relaxed),
                };
            }
        })
    };
    for i in 0..10 {
        // Odd reloads add a second frontend; even ones go back (its port closes again).
        let extra = if i % 2 == 0 {
            format!("frontend g\n bind 127.0.0.1:{p2}\n default_backend b\n")
        } else {
            String::new()
        };
        reload(&g, &format!("{one}{extra}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    // One broken file in the middle of it all changes nothing.
    reload(
        &g,
        &format!("{one}frontend broken\n bind 127.0.0.1:1\n default_backend nowhere\n"),
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Relaxed);
    churn.join().unwrap();
    assert!(
        ok.load(Relaxed) > 20,
        "only {} connections went through",
        ok.load(Relaxed)
    );
    assert_eq!(
        failed.load(Relaxed),
        0,
        "{} refused or failed",
        failed.load(Relaxed)
    );

    // The last good configuration (no frontend g) runs: its port is closed.
    assert!(
        TcpStream::connect(("127.0.0.1", p2)).is_err(),
        "frontend g's port is still open"
    );
    // s1 stayed in maintenance, the table entry stayed.
    for _ in 0..4 {
        assert_eq!(tag_via(p1), "Y");
    }
    assert!(
        cli(&g, "show table b").contains("key=10.9.9.9 use=0"),
        "{}",
        cli(&g, "show table b")
    );
    // The session from before every reload still works.
    long.write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    long.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");

    // A reload that moves the backend: new connections go to the new server only.
    reload(
        &g,
        &config(
            &sock,
            &format!(
                "frontend f\n bind 127.0.0.1:{p1}\n default_backend c\nbackend c\n server only 127.0.0.1:{x}\n"
            ),
        ),
    );
    eventually("the new backend takes connections", || tag_via(p1) == "X");
    for _ in 0..4 {
        assert_eq!(tag_via(p1), "X");
    }
    long.write_all(b"old backend").unwrap();
    let mut back = [0u8; 11];
    long.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"old backend");
    assert!(cli(&g, "show stat").contains("\nc,only,"));
}
