//! Forward: moves bytes both ways between client and server until both sides are done, with
//! half-close, idle timeouts and byte counts.
//!
//! Plain TCP to plain TCP goes through splice(2): socket → pipe → socket, the bytes never entering user
//! space. The pipe is borrowed from a per-thread pool only while bytes are in flight ([`Pipe::take`]),
//! so an idle connection holds no pipe and no buffer: it is two sockets and a small task.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::session::{Cause, Stage, Termination};
use crate::sys::pipe::{PIPE_SIZE, Pipe};

/// What one direction saw, updated as it goes so a timeout can still read it.
#[derive(Debug, Default)]
struct Flow {
    bytes: AtomicU64,
}

/// Milliseconds since the session's epoch of the last read from or write to a side.
#[derive(Debug, Default)]
struct Activity(AtomicU64);

impl Activity {
    fn touch(&self, epoch: Instant) {
        self.0.store(epoch.elapsed().as_millis() as u64, Relaxed);
    }
    fn last(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_millis(self.0.load(Relaxed))
    }
}

/// The result of forwarding.
#[derive(Debug)]
pub struct Forwarded {
    /// Client → server bytes.
    pub bytes_in: u64,
    /// Server → client bytes (HAProxy's `%B`).
    pub bytes_out: u64,
    pub termination: Termination,
}

/// How one direction ended.
enum End {
    Eof,
    /// Reading the source failed (it reset).
    Read(io::Error),
    /// Writing the destination failed (it reset or went away).
    Write(io::Error),
}

/// One direction: src → pipe → dst, until src's end of stream, then a half-close of dst.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    flow: &Flow,
    src_act: &Activity,
    dst_act: &Activity,
    epoch: Instant,
) -> End {
    loop {
        if let Err(e) = src.readable().await {
            return End::Read(e);
        }
        let mut pipe = match Pipe::take() {
            Ok(p) => p,
            // Out of file descriptors: this connection cannot go on, the process can.
            Err(e) => return End::Read(e),
        };
        let end = loop {
            match src.try_io(Interest::READABLE, || pipe.fill_from(src, PIPE_SIZE)) {
                Ok(0) => break Some(End::Eof),
                Ok(_) => src_act.touch(epoch),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) => break Some(End::Read(e)),
            }
            while pipe.len > 0 {
                match dst.try_io(Interest::WRITABLE, || pipe.drain_to(dst)) {
                    Ok(n) => {
                        flow.bytes.fetch_add(n as u64, Relaxed);
                        dst_act.touch(epoch);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = dst.writable().await {
                            return End::Write(e);
                        }
                    }
                    Err(e) => return End::Write(e),
                }
            }
        };
        pipe.give_back();
        match end {
            None => continue,
            Some(End::Eof) => {
                // Pass the end of stream on; the other direction keeps going (half-close).
                let _ = SockRef::from(dst).shutdown(Shutdown::Write);
                return End::Eof;
            }
            Some(other) => return other,
        }
    }
}

fn aborted(cause: Cause, doing: &str, e: &io::Error) -> Termination {
    tracing::debug!("{doing}: {e}");
    Termination::new(cause, Stage::Data)
}

/// Forwards until both directions end, one side fails, or a side stays idle past its timeout.
pub async fn forward(
    client: &TcpStream,
    server: &TcpStream,
    timeout_client: Option<Duration>,
    timeout_server: Option<Duration>,
) -> Forwarded {
    let epoch = Instant::now();
    let (up, down) = (Flow::default(), Flow::default());
    let (cli_act, srv_act) = (Activity::default(), Activity::default());
    let c2s = pump(client, server, &up, &cli_act, &srv_act, epoch);
    let s2c = pump(server, client, &down, &srv_act, &cli_act, epoch);
    tokio::pin!(c2s, s2c);
    let (mut c2s_done, mut s2c_done) = (false, false);
    // A far-future instant stands for "no timeout".
    let never = epoch + Duration::from_secs(86400 * 365);
    let termination = loop {
        let cli_deadline = timeout_client.map_or(never, |t| cli_act.last(epoch) + t);
        let srv_deadline = timeout_server.map_or(never, |t| srv_act.last(epoch) + t);
        tokio::select! {
            end = &mut c2s, if !c2s_done => {
                c2s_done = true;
                match end {
                    End::Eof => {}
                    End::Read(e) => break aborted(Cause::ClientAbort, "reading the client", &e),
                    End::Write(e) => break aborted(Cause::ServerAbort, "writing the server", &e),
                }
            }
            end = &mut s2c, if !s2c_done => {
                s2c_done = true;
                match end {
                    End::Eof => {}
                    End::Read(e) => break aborted(Cause::ServerAbort, "reading the server", &e),
                    End::Write(e) => break aborted(Cause::ClientAbort, "writing the client", &e),
                }
            }
            _ = tokio::time::sleep_until(cli_deadline.min(srv_deadline)) => {
                let now = Instant::now();
                // Deadlines move with activity; only a deadline still passed now is a timeout.
                if timeout_client.is_some_and(|t| cli_act.last(epoch) + t <= now) {
                    break Termination::new(Cause::ClientTimeout, Stage::Data);
                }
                if timeout_server.is_some_and(|t| srv_act.last(epoch) + t <= now) {
                    break Termination::new(Cause::ServerTimeout, Stage::Data);
                }
            }
        }
        if c2s_done && s2c_done {
            break Termination::NORMAL;
        }
    };
    Forwarded {
        bytes_in: up.bytes.load(Relaxed),
        bytes_out: down.bytes.load(Relaxed),
        termination,
    }
}
