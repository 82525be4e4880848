//! Pipes for splice(2), pooled per thread: a connection borrows one only while bytes are in flight,
//! so an idle connection holds no pipe and no buffer.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use nix::fcntl::{OFlag, SpliceFFlags};

/// Bytes a pipe holds; one splice moves at most this much.
pub const PIPE_SIZE: usize = 256 * 1024;
/// Pipes kept per thread when returned; more are closed.
const POOL_MAX: usize = 256;

#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes sitting in the pipe. A pipe goes back to the pool only when this is 0.
    pub len: usize,
    /// It sits in a pool (counted in [`POOLED`]).
    pooled: bool,
}

/// Pipes open in the process, and how many of them sit in the pools: `show info` reports them as
/// HAProxy's PipesUsed (the difference) and PipesFree.
pub static OPEN: AtomicU64 = AtomicU64::new(0);
pub static POOLED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A bigger pipe moves bulk transfers in fewer calls; if the limit forbids it, 64 KiB still works.
        let _ = nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
        OPEN.fetch_add(1, Relaxed);
        Ok(Pipe {
            read,
            write,
            len: 0,
            pooled: false,
        })
    }

    /// Borrows a pipe from this thread's pool, or makes one.
    pub fn take() -> io::Result<Pipe> {
        match POOL.with(|p| p.borrow_mut().pop()) {
            Some(mut p) => {
                p.pooled = false;
                POOLED.fetch_sub(1, Relaxed);
                Ok(p)
            }
            None => Pipe::new(),
        }
    }

    /// Returns an empty pipe to the pool; a pipe with bytes left in it is closed instead.
    pub fn give_back(mut self) {
        if self.len != 0 {
            return;
        }
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_MAX {
                self.pooled = true;
                POOLED.fetch_add(1, Relaxed);
                p.push(self);
            }
        });
    }

    /// Moves up to `max` bytes from a socket into the pipe. `Ok(0)` is end of stream.
    pub fn fill_from(&mut self, src: impl AsFd, max: usize) -> io::Result<usize> {
        let room = PIPE_SIZE.min(max).max(1);
        let n = nix::fcntl::splice(
            src,
            None,
            &self.write,
            None,
            room,
            SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
        )?;
        self.len += n;
        Ok(n)
    }

    /// Moves bytes from the pipe to a socket.
    pub fn drain_to(&mut self, dst: impl AsFd) -> io::Result<usize> {
        let n = nix::fcntl::splice(
            &self.read,
            None,
            dst,
            None,
            self.len,
            SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
        )?;
        self.len -= n;
        Ok(n)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Relaxed);
        // A pool is dropped with its thread.
        if self.pooled {
            POOLED.fetch_sub(1, Relaxed);
        }
    }
}
