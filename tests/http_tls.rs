//! `mode http` over TLS on both sides, through the real binary, with curl as the client: a bind that
//! terminates TLS serves keep-alive requests (one TLS connection, several requests, X-Forwarded-For
//! added), and a server line that originates TLS with the PROXY header inside it (`proxy-in-tls`)
//! reaches a second frontend that terminates that TLS and reads the header: the far side logs the
//! real client. Certificates come from scripts/tunnel-certs.sh.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{Gatehouse, Keep, free_port};
use nix::sys::signal::Signal;

/// A plain HTTP/1.1 origin on a thread: each response's body is `xff=<X-Forwarded-For> conn=<n>`,
/// where n counts the connections it accepted. Keep-alive until the peer closes.
fn origin() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().flatten().enumerate() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                loop {
                    let mut xff = String::from("-");
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("X-Forwarded-For: ") {
                            xff = v.trim().to_string();
                        }
                    }
                    let body = format!("xff={xff} conn={n}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn certs(tag: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("gh-certs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("bash")
        .arg(root.join("scripts/tunnel-certs.sh"))
        .arg(&dir)
        .args(["web.test", "entry"])
        .output()
        .expect("scripts/tunnel-certs.sh needs bash and openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// curl over HTTPS to web.test:PORT (resolved to 127.0.0.1), every path in one keep-alive run:
/// the bodies, then the number of connections curl made.
fn curl(ca: &Path, port: u16, paths: &[&str]) -> (Vec<String>, u32) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("web.test:{port}:127.0.0.1")])
        .args(["-w", "\n%{num_connects}\n"]);
    for p in paths {
        cmd.arg(format!("https://web.test:{port}{p}"));
    }
    let out = cmd
        .output()
        .expect("curl is installed by scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let bodies = lines.iter().step_by(2).map(|s| s.to_string()).collect();
    let connects = lines
        .iter()
        .skip(1)
        .step_by(2)
        .map(|n| n.parse::<u32>().unwrap())
        .sum();
    (bodies, connects)
}

#[test]
fn http_over_tls_both_sides_with_the_proxy_header_inside() {
    let dir = certs("http-tls");
    let origin = origin();
    let (web, inner) = (free_port(), free_port());
    let d = dir.display();
    let cfg = format!(
        "global\n plumbing none\n log stdout format raw local0\n\
         defaults\n timeout connect 2s\n timeout client 10s\n timeout server 10s\n log global\n\
         frontend web\n mode http\n option httplog\n option forwardfor\n\
         \x20bind 127.0.0.1:{web} ssl crt {d}/exit.pem alpn http/1.1\n\
         \x20use_backend far if {{ path_beg /far }}\n default_backend near\n\
         backend near\n mode http\n server o 127.0.0.1:{origin}\n\
         backend far\n mode http\n\
         \x20server t 127.0.0.1:{inner} ssl crt {d}/entry.pem ca-file {d}/ca.crt verifyhost web.test send-proxy-v2 proxy-in-tls\n\
         frontend inner\n mode tcp\n option tcplog\n\
         \x20bind 127.0.0.1:{inner} ssl crt {d}/exit.pem ca-file {d}/ca.crt verify required accept-proxy proxy-in-tls\n\
         \x20default_backend plain\n\
         backend plain\n mode tcp\n server o 127.0.0.1:{origin}\n"
    );
    let g = Gatehouse::start("http-tls", &cfg, web, Keep::Stdout);

    // Terminated TLS, keep-alive: three requests over one client connection, each forwarded.
    let (bodies, connects) = curl(&dir.join("ca.crt"), web, &["/a", "/b", "/c"]);
    assert_eq!(
        connects, 1,
        "one TLS connection for three requests: {bodies:?}"
    );
    assert_eq!(bodies.len(), 3);
    for b in &bodies {
        assert!(b.starts_with("xff=127.0.0.1 "), "{bodies:?}");
    }
    // The server connection was kept too: the origin saw one connection for the three.
    let conn_of = |b: &String| b.rsplit("conn=").next().unwrap().to_string();
    assert!(
        bodies.iter().all(|b| conn_of(b) == conn_of(&bodies[0])),
        "{bodies:?}"
    );

    // Originated TLS with the header inside it, two requests on one client connection.
    let (bodies, _) = curl(&dir.join("ca.crt"), web, &["/far/1", "/far/2"]);
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies.iter().all(|b| b.starts_with("xff=127.0.0.1 ")),
        "{bodies:?}"
    );

    g.signal(Signal::SIGTERM);
    let mut g = g;
    let (code, log) = g.exit_within(Duration::from_secs(10));
    assert_eq!(code, 0, "{log}");
    // The far frontend's tcplog names the client curl was (from the header), not the near side's
    // outgoing connection.
    let far: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" inner plain/o "))
        .collect();
    assert_eq!(
        far.len(),
        1,
        "one server connection carried both requests: {log}"
    );
    let near_client = log
        .lines()
        .find(|l| l.contains("\"GET /far/1 "))
        .and_then(|l| l.split(' ').next())
        .expect("httplog line of /far/1")
        .to_string();
    assert!(far[0].starts_with(&format!("{near_client} ")), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
