//! Forwarding when TLS is on either side: bytes must pass through user space to be decrypted or
//! encrypted, so splice(2) is out. Each direction copies through a 16 KiB buffer borrowed from a
//! per-thread pool while bytes are in flight and given back as soon as it is drained, so an idle
//! session holds none (rustls keeps its own, smaller, buffers); the rest (half-close, idle timeouts
//! with one lazily re-armed timer, byte counts into the record, termination codes) is as in
//! [`super::Forward`].
//!
//! A TLS peer that closes its socket without a close_notify alert is taken as a plain end of
//! stream, as browsers and servers commonly do it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::{IdleClock, Timeouts, Traffic};
use crate::session::{Cause, Stage, Termination};
use crate::tls::Sock;

const BUF_SIZE: usize = 16 * 1024;

/// Drained buffers a worker thread keeps for its sessions' next reads.
const SPARE_BUFS: usize = 64;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn borrow() -> Box<[u8]> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; BUF_SIZE].into_boxed_slice())
}

fn give_back(buf: Box<[u8]>) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_BUFS {
            s.push(buf);
        }
    });
}

/// Moves one direction may make in one poll before yielding.
const ROUNDS_PER_POLL: usize = 32;

enum Stop {
    Pending,
    Eof,
    Read(io::Error),
    Write(io::Error),
}

#[derive(Default)]
struct Half {
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    eof: bool,
    done: bool,
}

impl Half {
    fn pump(
        &mut self,
        cx: &mut Context<'_>,
        src: &Sock,
        dst: &Sock,
        bytes: &mut u64,
        read: &mut bool,
        wrote: &mut bool,
    ) -> Stop {
        for _ in 0..ROUNDS_PER_POLL {
            let buf = self.buf.get_or_insert_with(borrow);
            if self.start < self.end {
                match dst.poll_write_ref(cx, &buf[self.start..self.end]) {
                    Poll::Pending => return Stop::Pending,
                    Poll::Ready(Ok(0)) => {
                        return Stop::Write(io::ErrorKind::WriteZero.into());
                    }
                    Poll::Ready(Ok(n)) => {
                        self.start += n;
                        *bytes += n as u64;
                        *wrote = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Stop::Write(e),
                }
            }
            if self.eof {
                // Passes the end on (a TLS side sends close_notify, then FIN).
                return match dst.poll_shutdown_ref(cx) {
                    Poll::Pending => Stop::Pending,
                    Poll::Ready(_) => Stop::Eof,
                };
            }
            let mut rb = ReadBuf::new(buf);
            match src.poll_read_ref(cx, &mut rb) {
                Poll::Pending => {
                    // Nothing more to read now: the drained buffer goes back, and what the TLS
                    // layer still holds goes out.
                    if let Some(b) = self.buf.take() {
                        give_back(b);
                    }
                    if let Poll::Ready(Err(e)) = dst.poll_flush_ref(cx) {
                        return Stop::Write(e);
                    }
                    return Stop::Pending;
                }
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        self.eof = true;
                    } else {
                        (self.start, self.end) = (0, n);
                        *read = true;
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                }
                Poll::Ready(Err(e)) => return Stop::Read(e),
            }
        }
        cx.waker().wake_by_ref();
        Stop::Pending
    }
}

/// The relay of one session with TLS on at least one side.
pub struct Relay<'a> {
    client: &'a Sock,
    server: &'a Sock,
    traffic: &'a mut Traffic,
    up: Half,
    down: Half,
    idle: IdleClock,
}

/// Relays until both directions end, one side fails, or a side stays idle past its timeout.
pub fn relay<'a>(
    client: &'a Sock,
    server: &'a Sock,
    timeouts: Timeouts,
    traffic: &'a mut Traffic,
) -> Relay<'a> {
    Relay {
        client,
        server,
        traffic,
        up: Half::default(),
        down: Half::default(),
        idle: IdleClock::new(timeouts),
    }
}

fn aborted(cause: Cause, doing: &str, e: &io::Error) -> Termination {
    tracing::debug!("{doing}: {e}");
    Termination::new(cause, Stage::Data)
}

impl Future for Relay<'_> {
    type Output = Termination;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Termination> {
        let this = self.get_mut();
        let (mut cli_read, mut srv_wrote, mut srv_read, mut cli_wrote) =
            (false, false, false, false);
        if !this.up.done {
            let bytes = &mut this.traffic.bytes_in;
            match this.up.pump(
                cx,
                this.client,
                this.server,
                bytes,
                &mut cli_read,
                &mut srv_wrote,
            ) {
                Stop::Pending => {}
                Stop::Eof => this.up.done = true,
                Stop::Read(e) => {
                    return Poll::Ready(aborted(Cause::ClientAbort, "reading the client", &e));
                }
                Stop::Write(e) => {
                    return Poll::Ready(aborted(Cause::ServerAbort, "writing the server", &e));
                }
            }
        }
        if !this.down.done {
            let bytes = &mut this.traffic.bytes_out;
            match this.down.pump(
                cx,
                this.server,
                this.client,
                bytes,
                &mut srv_read,
                &mut cli_wrote,
            ) {
                Stop::Pending => {}
                Stop::Eof => this.down.done = true,
                Stop::Read(e) => {
                    return Poll::Ready(aborted(Cause::ServerAbort, "reading the server", &e));
                }
                Stop::Write(e) => {
                    return Poll::Ready(aborted(Cause::ClientAbort, "writing the client", &e));
                }
            }
        }
        // A direction's buffer goes once it is done.
        for h in [&mut this.up, &mut this.down] {
            if h.done
                && let Some(b) = h.buf.take()
            {
                give_back(b);
            }
        }
        if this.up.done && this.down.done {
            return Poll::Ready(Termination::NORMAL);
        }
        // The relay never parks (no park delay is set): only timeouts end it here.
        match this
            .idle
            .poll(cx, cli_read || cli_wrote, srv_read || srv_wrote)
        {
            Poll::Ready(super::Ending::End(t)) => Poll::Ready(t),
            _ => Poll::Pending,
        }
    }
}
