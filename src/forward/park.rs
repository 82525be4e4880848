//! Parking: a spliced tcp session that has been quiet in both directions for `tune.idle-park`
//! gives back its task and its two sockets' registrations in the runtime's reactor, and waits on a
//! shelf until a byte (or an end) arrives on either socket.
//!
//! Why: a task costs its whole future (the session's, sized for its busiest moment) and tokio
//! gives every registered socket a cache-line-aligned readiness slot; an idle connection held
//! about 2 KiB that way. Parked, it is its [`Flow`] (the record to log, the counts it holds, the
//! forwarding state) plus a shelf entry: no task, no buffer, no pipe, no timer.
//!
//! Each worker thread has one shelf: a slab of parked sessions and a kernel epoll set watching
//! their sockets (level-triggered, for reading and hang-up), itself registered in the thread's
//! reactor. When a socket stirs, its session is taken off the shelf and carried on in a new task
//! ([`Flow::carry_on`]). The shelf also ends parked sessions whose `timeout client`/`server`
//! passes. The runtime API lists parked sessions from the shelves and ends them there (`show
//! sess`, `shutdown session`): a parked session is not in the session registry. Dropping the shelf
//! (the runtime shutting down) drops its sessions, which log themselves as killed.
//!
//! Parked flows sit in the shelf's slab itself, one array, not each in an allocation of its own:
//! allocations made at parking time would land in the holes the freed tasks left and keep those
//! pages from going back to the system. After a crowd has parked, the shelf asks the allocator to
//! give free pages back ([`crate::sys::trim_heap`]), at most once a second.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use crate::session::{Flow, Parking, Permits};

/// One parked session.
struct Parked {
    flow: Flow,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
}

struct Shelf {
    parked: slab::Slab<Parked>,
    epoll: Epoll,
    /// No parked session's timeout passes before this (may be early: then a scan finds nothing).
    next_deadline: Option<Instant>,
    /// Sessions parked since the heap was last trimmed.
    since_trim: usize,
}

impl Drop for Shelf {
    fn drop(&mut self) {
        // The runtime is going: the sessions still parked end here, logged as killed.
        for (_, p) in self.parked.iter() {
            p.flow.runtime().parked.fetch_sub(1, Relaxed);
        }
    }
}

/// A worker thread's shelf, shared by its sessions (which park), its driver task (which wakes
/// them) and the runtime API (which lists and ends them).
pub struct Park {
    shelf: Mutex<Shelf>,
    /// Wakes the driver: an earlier deadline, or a crowd to trim after.
    wake: Notify,
    fd: RawFd,
}

/// Every thread's shelf, for the runtime API.
static SHELVES: Mutex<Vec<Weak<Park>>> = Mutex::new(Vec::new());

fn shelves() -> Vec<Arc<Park>> {
    let mut all = SHELVES.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.iter().filter_map(Weak::upgrade).collect()
}

/// What `show sess` shows of every parked session.
pub fn listings() -> Vec<crate::sessions::Listing> {
    shelves()
        .iter()
        .flat_map(|p| {
            p.lock()
                .parked
                .iter()
                .map(|(_, s)| s.flow.listing())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Ends the parked sessions `which` picks (each logs itself as killed); how many.
pub fn end_where(which: &dyn Fn(&crate::sessions::Listing) -> bool) -> usize {
    let mut ended = Vec::new();
    for park in shelves() {
        let mut shelf = park.lock();
        let keys: Vec<usize> = shelf
            .parked
            .iter()
            .filter(|(_, p)| which(&p.flow.listing()))
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            ended.push(shelf.take(k));
        }
    }
    // Outside the shelves' locks: ending logs and counts.
    let n = ended.len();
    drop(ended);
    n
}

impl Shelf {
    /// Takes session `key` off the shelf and out of the epoll set.
    fn take(&mut self, key: usize) -> Parked {
        let p = self.parked.remove(key);
        let _ = self.epoll.delete(&p.client);
        let _ = self.epoll.delete(&p.server);
        p.flow.runtime().parked.fetch_sub(1, Relaxed);
        p
    }
}

impl AsRawFd for Park {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

// The descriptor is the epoll set's, owned by the shelf inside, closed only when the `Park` goes.
impl crate::sys::OwnsFd for Arc<Park> {}

thread_local! {
    /// This thread's shelf, owned by its driver task (so that it goes with the runtime).
    static PARK: std::cell::RefCell<Weak<Park>> = const { std::cell::RefCell::new(Weak::new()) };
}

/// This thread's shelf, made (with its driver task) on first use; `None` if the kernel refuses an
/// epoll set or the reactor refuses it.
fn shelf() -> Option<Arc<Park>> {
    if let Some(p) = PARK.with(|p| p.borrow().upgrade()) {
        return Some(p);
    }
    let made = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(std::io::Error::from);
    let park = made.and_then(|epoll| {
        let fd = epoll.0.as_raw_fd();
        let park = Arc::new(Park {
            shelf: Mutex::new(Shelf {
                parked: slab::Slab::new(),
                epoll,
                next_deadline: None,
                since_trim: 0,
            }),
            wake: Notify::new(),
            fd,
        });
        let watched = crate::sys::watch_in_reactor(park.clone(), tokio::io::Interest::READABLE)?;
        Ok((park, watched))
    });
    match park {
        Ok((park, watched)) => {
            PARK.with(|p| *p.borrow_mut() = Arc::downgrade(&park));
            SHELVES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Arc::downgrade(&park));
            tokio::spawn(drive(watched));
            Some(park)
        }
        Err(e) => {
            tracing::warn!("no shelf for idle sessions, they stay in their tasks: {e}");
            None
        }
    }
}

impl Park {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shelves a quiet session, from inside its task (which then ends), with the `maxconn` permits
/// the task held (if it is the session's first task). Without a shelf it carries on in a new task,
/// never parking.
pub fn park(p: Parking, permits: Option<Permits>) {
    let Parking {
        mut flow,
        client,
        server,
    } = p;
    flow.id = crate::sessions::hand_over();
    if let Some(permits) = permits {
        flow.take_slots(permits);
    }
    let Some(park) = shelf() else {
        carry_on_in_task(flow, client, server, false);
        return;
    };
    let deadline = flow.deadline();
    let (from_client, from_server) = flow.reading();
    let mut guard = park.lock();
    let shelf = &mut *guard;
    let entry = shelf.parked.vacant_entry();
    let key = entry.key() as u64;
    // Reading (data or the end) on a socket that still has a direction to read; errors and a full
    // hang-up are reported whatever the interest.
    let interest = |reading| {
        if reading {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP
        } else {
            EpollFlags::empty()
        }
    };
    let watched = shelf
        .epoll
        .add(&client, EpollEvent::new(interest(from_client), key))
        .and_then(|()| {
            shelf
                .epoll
                .add(&server, EpollEvent::new(interest(from_server), key))
        });
    if let Err(e) = watched {
        let _ = shelf.epoll.delete(&client);
        drop(guard);
        tracing::warn!("parking an idle session: {e}");
        (*flow).finish(crate::session::Termination::new(
            crate::session::Cause::Resource,
            crate::session::Stage::Data,
        ));
        return;
    }
    flow.runtime().parked.fetch_add(1, Relaxed);
    entry.insert(Parked {
        flow: *flow,
        client,
        server,
    });
    shelf.since_trim += 1;
    // The first since the last trim: the driver plans the next one.
    let mut wake = shelf.since_trim == 1;
    if let Some(d) = deadline
        && shelf.next_deadline.is_none_or(|n| d < n)
    {
        shelf.next_deadline = Some(d);
        // The driver may be sleeping towards a later deadline.
        wake = true;
    }
    drop(guard);
    if wake {
        park.wake.notify_one();
    }
}

/// The heap is trimmed at most this often, and only after sessions parked (their tasks freed).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The shelf's task: wakes sessions whose sockets stirred, ends those timed out or asked to end.
async fn drive(watched: AsyncFd<Arc<Park>>) {
    let park = watched.get_ref().clone();
    let mut events = vec![EpollEvent::empty(); 64];
    let mut last_trim = Instant::now();
    loop {
        let (next, trim_at) = {
            let shelf = park.lock();
            let trim_at = (shelf.since_trim > 0).then(|| last_trim + TRIM_EVERY);
            (shelf.next_deadline, trim_at)
        };
        let wake_at = next.into_iter().chain(trim_at).min();
        let timer = async {
            match wake_at {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = watched.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => {
                        // The reactor is going away with the runtime; the shelf goes with it.
                        tracing::debug!("idle shelf: {e}");
                        return;
                    }
                };
                let n = match park.lock().epoll.wait(&mut events, EpollTimeout::ZERO) {
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::error!("idle shelf: epoll_wait: {e}");
                        guard.clear_ready();
                        continue;
                    }
                };
                if n < events.len() {
                    guard.clear_ready();
                }
                for ev in &events[..n] {
                    stir(&park, ev.data() as usize);
                }
            }
            () = park.wake.notified() => {}
            () = timer => {
                let now = Instant::now();
                if next.is_some_and(|d| d <= now) {
                    reap(&park, |f| f.expired(now));
                }
            }
        }
        // Sessions parked: give the pages their tasks used back to the system, at most once a
        // second (a trim walks the allocator's free lists).
        let now = Instant::now();
        if now >= last_trim + TRIM_EVERY && std::mem::take(&mut park.lock().since_trim) > 0 {
            last_trim = now;
            crate::sys::trim_heap();
        }
    }
}

/// Takes the session `key` off the shelf (its socket stirred) and carries it on in a new task.
fn stir(shelf_of: &Arc<Park>, key: usize) {
    let Parked {
        flow,
        client,
        server,
    } = {
        let mut shelf = shelf_of.lock();
        if !shelf.parked.contains(key) {
            return; // the other socket's event for a session already taken
        }
        shelf.take(key)
    };
    carry_on_in_task(Box::new(flow), client, server, true);
}

/// Carries a session on in a new task, registered again under its id; if it goes quiet again it
/// parks again (its `maxconn` slots stay taken in the flow).
fn carry_on_in_task(
    flow: Box<Flow>,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    park_again: bool,
) {
    let (listing, rt) = (flow.listing(), flow.runtime().clone());
    crate::sessions::resume(listing, &rt, async move {
        if let Some(p) = flow.carry_on(client, server, park_again).await {
            park(p, None);
        }
    });
}

/// Ends the parked sessions whose timeout `judge` says has passed; recomputes the next deadline.
fn reap(park: &Park, judge: impl Fn(&Flow) -> Option<crate::session::Termination>) {
    let mut ended = Vec::new();
    {
        let mut shelf = park.lock();
        let keys: Vec<(usize, crate::session::Termination)> = shelf
            .parked
            .iter()
            .filter_map(|(k, p)| judge(&p.flow).map(|t| (k, t)))
            .collect();
        for (k, t) in keys {
            ended.push((shelf.take(k), t));
        }
        shelf.next_deadline = shelf
            .parked
            .iter()
            .filter_map(|(_, p)| p.flow.deadline())
            .min();
    }
    // Outside the lock: ending a session logs it and counts.
    for (p, end) in ended {
        p.flow.finish(end);
    }
}
