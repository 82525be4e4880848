//! A timer with microsecond wake-ups, for the timetable. tokio's timer wheel ticks in milliseconds: at
//! 20000 requests/s it would release twenty requests at once each tick, a burst the proxy would then
//! queue, and the bench would measure the burst rather than the proxy. A timerfd wakes the runtime
//! through epoll at the requested instant (give or take the thread's timer slack, set to 1 ns in
//! `main`).
//!
//! The crate's one `unsafe` block is here: registering the timerfd with tokio's reactor.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// Owns the timerfd: the descriptor stays open, and the same, for as long as this lives.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct PreciseTimer {
    fd: AsyncFd<Fd>,
}

impl PreciseTimer {
    pub fn new() -> io::Result<Self> {
        let t = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `Fd` owns the descriptor, so it is open and the same from registration until the
        // `AsyncFd` (which owns the `Fd`) is dropped; `as_raw_fd` always returns that descriptor.
        let fd = unsafe { AsyncFd::register(Fd(t)) }.map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// Waits until `t` (returns at once if it has passed).
    pub async fn sleep_until(&self, t: Instant) -> io::Result<()> {
        let now = Instant::now();
        if t <= now {
            return Ok(());
        }
        // Relative to now: std's Instant is CLOCK_MONOTONIC but does not expose its value.
        let d = TimeSpec::from_duration(t - now);
        self.fd
            .get_ref()
            .0
            .set(Expiration::OneShot(d), TimerSetTimeFlags::empty())?;
        // One expiration ends the wait. A readiness left over from an earlier wait reads EAGAIN,
        // which clears it, and the loop waits again: at most one spurious turn per call.
        loop {
            let mut ready = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match ready.try_io(|fd| {
                nix::unistd::read(&fd.get_ref().0, &mut count).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }
}
