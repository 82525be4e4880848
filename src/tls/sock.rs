//! One side of a session once TLS may be on it: the plain socket, or a TLS session over it.
//!
//! [`Sock`] is used through `&self`, like tokio's `TcpStream` (`readable`, `try_read_buf`,
//! `try_write`, `writable`), so the http-mode code drives a TLS client or server exactly as it
//! drives a plain one, and through `poll_*_ref` (the relay, tunnels). The TLS
//! state is a `rustls::Connection` behind a mutex that is never held across an await (only one
//! task ever uses a session, so it is never contended). The handshake itself is tokio-rustls's;
//! the data phase is ours, because tokio-rustls's streams need `&mut` for every read and write.
//!
//! Written bytes may wait in rustls's buffer when the socket is full: [`Sock::pending`] says so,
//! and [`Sock::writable`] / [`Sock::flushed`] wait until they are on the wire. Reading first
//! flushes, so a request is never left half-sent while we wait for its answer.

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;
use tokio::net::TcpStream;

pub enum Sock {
    Plain(TcpStream),
    /// Boxed: a TLS session is large, and most sessions are plain.
    Tls(Box<TlsSock>),
}

pub struct TlsSock {
    tcp: TcpStream,
    inner: Mutex<Inner>,
}

struct Inner {
    conn: rustls::Connection,
    /// close_notify queued (by a shutdown).
    closing: bool,
    /// The socket reached its end.
    eof: bool,
    /// The last read from the socket got less than it asked for: the socket was drained.
    drained: bool,
}

/// The socket as rustls reads it, non-blocking, noting whether a read drained it.
struct RawRead<'a> {
    tcp: &'a TcpStream,
    drained: &'a mut bool,
}

impl Read for RawRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.try_read(buf)?;
        *self.drained = n < buf.len();
        Ok(n)
    }
}

/// The socket as rustls writes to it, non-blocking.
struct Raw<'a>(&'a TcpStream);

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl TlsSock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what rustls holds: `Ok` when all of it went, `WouldBlock` when the socket is full.
    fn flush_now(&self, i: &mut Inner) -> io::Result<()> {
        while i.conn.wants_write() {
            i.conn.write_tls(&mut Raw(&self.tcp))?;
        }
        Ok(())
    }

    fn try_read(&self, out: &mut [u8]) -> io::Result<usize> {
        self.read_with(|r, _| r.read(out))
    }

    /// [`TlsSock::try_read`] into a vector's spare room, growing it by exactly the bytes rustls
    /// holds: no zeroing of a whole buffer per read.
    fn try_read_vec(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.read_with(|r, avail| {
            let room = (buf.capacity() - buf.len()).max(1);
            let start = buf.len();
            buf.resize(start + avail.min(room), 0);
            let got = r.read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            got
        })
    }

    /// Decrypted bytes for `take` (given the reader and how many it holds), reading TLS records
    /// from the socket until there are some: `Ok(0)` at the end (close_notify, or the socket closed
    /// without one), `WouldBlock` when the socket has nothing more.
    fn read_with(
        &self,
        take: impl FnOnce(&mut rustls::Reader<'_>, usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut i = self.lock();
        loop {
            let st = match i.conn.process_new_packets() {
                Ok(st) => st,
                Err(e) => {
                    // Tell the peer why (an alert), best effort.
                    let _ = self.flush_now(&mut i);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            let avail = st.plaintext_bytes_to_read();
            if avail > 0 {
                return take(&mut i.conn.reader(), avail);
            }
            if st.peer_has_closed() || i.eof {
                return Ok(0);
            }
            let mut drained = false;
            let read = i.conn.read_tls(&mut RawRead {
                tcp: &self.tcp,
                drained: &mut drained,
            });
            i.drained = drained;
            match read {
                Ok(0) => i.eof = true,
                Ok(_) => {}
                Err(e) => return Err(e),
            }
            // Key updates, tickets, alerts to answer.
            if i.conn.wants_write() {
                match self.flush_now(&mut i) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut i = self.lock();
        self.flush_now(&mut i)?;
        let n = i.conn.writer().write(bytes)?;
        if n == 0 && !bytes.is_empty() {
            return Err(would_block());
        }
        match self.flush_now(&mut i) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    /// Whether there is something to read without waiting for the socket: decrypted bytes, or
    /// the end.
    fn has_input(&self) -> io::Result<bool> {
        let mut i = self.lock();
        if i.eof {
            return Ok(true);
        }
        let st = i
            .conn
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(st.plaintext_bytes_to_read() > 0 || st.peer_has_closed())
    }

    fn pending(&self) -> bool {
        self.lock().conn.wants_write()
    }

    fn poll_flush_tls(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.flush_now(&mut self.lock()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                r => return Poll::Ready(r),
            }
        }
    }
}

impl Sock {
    /// A TLS session whose handshake tokio-rustls completed.
    pub fn tls(tcp: TcpStream, conn: impl Into<rustls::Connection>) -> Sock {
        Sock::Tls(Box::new(TlsSock {
            tcp,
            inner: Mutex::new(Inner {
                conn: conn.into(),
                closing: false,
                eof: false,
                drained: false,
            }),
        }))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Sock::Plain(s) => s,
            Sock::Tls(t) => &t.tcp,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Sock::Tls(_))
    }

    /// Waits until a read may find bytes (a TLS side first sends what it still holds).
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Sock::Plain(s) => s.readable().await,
            Sock::Tls(t) => {
                if t.pending() {
                    self.flushed().await?;
                }
                if t.has_input()? {
                    return Ok(());
                }
                t.tcp.readable().await
            }
        }
    }

    /// Reads what is there into `buf`'s spare room (growing it if it has none).
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.try_read_buf(buf),
            Sock::Tls(t) => {
                if buf.capacity() == buf.len() {
                    buf.reserve(16 * 1024);
                }
                t.try_read_vec(buf)
            }
        }
    }

    /// Reads what is there into `out`.
    pub fn try_read(&self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.try_read(out),
            Sock::Tls(t) => t.try_read(out),
        }
    }

    /// Forgets a plain socket's read readiness after a short read drained it (so the next wait
    /// goes to epoll rather than a read that would say EAGAIN). Nothing to do with TLS.
    /// On a TLS side, only when the last read from the socket was short too (what rustls still
    /// holds is found by `readable` without the socket).
    pub fn drained(&self) {
        let drained = match self {
            Sock::Plain(_) => true,
            Sock::Tls(t) => t.lock().drained,
        };
        if drained {
            let _ = self.tcp().try_io(tokio::io::Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
    }

    /// Writes what the socket takes now. On a TLS side the bytes may still wait in rustls
    /// (see [`Sock::pending`]).
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.try_write(bytes),
            Sock::Tls(t) => t.try_write(bytes),
        }
    }

    /// Whether written bytes still wait to go out (TLS only).
    pub fn pending(&self) -> bool {
        match self {
            Sock::Plain(_) => false,
            Sock::Tls(t) => t.pending(),
        }
    }

    /// Waits until a write may go through.
    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Sock::Plain(s) => s.writable().await,
            Sock::Tls(_) => self.flushed().await,
        }
    }

    /// Waits until every written byte is on the wire.
    pub async fn flushed(&self) -> io::Result<()> {
        match self {
            Sock::Plain(_) => Ok(()),
            Sock::Tls(t) => std::future::poll_fn(|cx| t.poll_flush_tls(cx)).await,
        }
    }

    /// Writes all of `buf` and waits until it is on the wire.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.writable().await?;
            match self.try_write(buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.flushed().await
    }

    /// Whether an idle connection is still open with nothing unexpected to read.
    pub fn still_open(&self) -> bool {
        let mut b = [0u8; 1];
        match self {
            Sock::Plain(s) => {
                matches!(s.try_read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            // Any byte from an idle TLS server (a close_notify, most likely) ends its reuse.
            Sock::Tls(t) => {
                let waker = std::task::Waker::noop();
                let mut cx = Context::from_waker(waker);
                let mut rb = ReadBuf::new(&mut b);
                !t.has_input().unwrap_or(true) && t.tcp.poll_peek(&mut cx, &mut rb).is_pending()
            }
        }
    }

    /// Ends our sending side: a TLS side sends close_notify first. Best effort, no waiting.
    pub fn shutdown_write(&self) {
        if let Sock::Tls(t) = self {
            let mut i = t.lock();
            i.conn.send_close_notify();
            i.closing = true;
            let _ = t.flush_now(&mut i);
        }
        let _ = socket2::SockRef::from(self.tcp()).shutdown(std::net::Shutdown::Write);
    }
}

impl Sock {
    /// Reads into `buf`, registering for readiness when there is nothing.
    pub fn poll_read_ref(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let r = match self {
                Sock::Plain(s) => s.try_read(buf.initialize_unfilled()),
                Sock::Tls(t) => t.try_read(buf.initialize_unfilled()),
            };
            match r {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp().poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes from `buf`, registering for readiness when the socket is full.
    pub fn poll_write_ref(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp().poll_write_ready(cx))?;
                }
                r => return Poll::Ready(r),
            }
        }
    }

    /// Sends what a TLS side still holds.
    pub fn poll_flush_ref(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Sock::Plain(_) => Poll::Ready(Ok(())),
            Sock::Tls(t) => t.poll_flush_tls(cx),
        }
    }

    /// Ends our sending side once everything is out (a TLS side sends close_notify first).
    pub fn poll_shutdown_ref(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Sock::Tls(t) = self {
            {
                let mut i = t.lock();
                if !i.closing {
                    i.conn.send_close_notify();
                    i.closing = true;
                }
            }
            ready!(t.poll_flush_tls(cx))?;
        }
        let _ = socket2::SockRef::from(self.tcp()).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

/// For readers written against `AsyncRead` (the PROXY protocol header inside a TLS session).
impl tokio::io::AsyncRead for Sock {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_ref(cx, buf)
    }
}
