//! The real binary, for the tests that signal it (stop, reload): started on a configuration file in
//! its own folder, killed and cleaned up when dropped.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A server on a thread that says `greeting` (may be empty) to each connection, then echoes what
/// it reads until the peer closes. Returns its port.
pub fn echo_server(greeting: &'static str) -> u16 {
    use std::io::Write;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                if s.write_all(greeting.as_bytes()).is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (10 s at most) until something accepts on 127.0.0.1:`port`.
pub fn wait_open(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which of the process's outputs the test reads (the other is thrown away).
pub enum Keep {
    Stdout,
    Stderr,
}

pub struct Gatehouse {
    pub child: Child,
    pub dir: PathBuf,
    pub file: PathBuf,
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gatehouse {
    /// The folder a run tagged `tag` uses (for paths its configuration names, such as a socket).
    pub fn dir_for(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("gh-{tag}-{}", std::process::id()))
    }

    /// Starts gatehouse on `cfg` and waits until `port` accepts.
    pub fn start(tag: &str, cfg: &str, port: u16, keep: Keep) -> Gatehouse {
        let dir = Gatehouse::dir_for(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gh.cfg");
        std::fs::write(&file, cfg).unwrap();
        let (out, err) = match keep {
            Keep::Stdout => (Stdio::piped(), Stdio::null()),
            Keep::Stderr => (Stdio::null(), Stdio::piped()),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("-f")
            .arg(&file)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        wait_open(port);
        Gatehouse { child, dir, file }
    }

    pub fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    /// Waits for the process to exit; its status and standard output (when kept).
    pub fn exit_within(&mut self, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    o.read_to_string(&mut out).unwrap();
                }
                return (st.code().unwrap_or(-1), out);
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
