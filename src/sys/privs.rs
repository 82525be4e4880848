//! Dropping root: to the configured user and group, keeping only the capabilities the running
//! gateway still needs.
//!
//! What is kept, and why:
//! - CAP_NET_ADMIN: IP_TRANSPARENT on outbound `usesrc` sockets, SO_MARK, the rtnetlink rule and
//!   route, and `nft` when the plumbing unit is replaced on reload or removed at exit;
//! - CAP_NET_RAW: IP_TRANSPARENT also accepts it, and `iptables-legacy` opens a raw socket;
//! - CAP_NET_BIND_SERVICE: a reload may add a `bind` line on a port below 1024.
//!
//! The three are put in the effective, permitted, inheritable *and ambient* sets: the plumbing runs
//! `nft` (or `iptables`) as a child process, and a child of a non-root process keeps capabilities
//! across execve only through the ambient set. Every other capability leaves the bounding set too.
//!
//! Threads: credentials are per thread in Linux. glibc's `setgroups`/`setresgid`/`setresuid` (which
//! nix calls) change every thread of the process (glibc signals each one to make the same system
//! call), and a thread whose ids all leave 0 without the keep-capabilities flag loses every
//! capability. Capability sets, the bounding set and the keep-capabilities flag are set on the
//! calling thread only. So the caller must run this before it starts the threads that should hold
//! the three capabilities (they inherit the calling thread's sets); any thread that already exists
//! (a tokio blocking-pool thread, say) ends up as the user with no capabilities at all. [`drop_to`]
//! reads every thread's status afterwards and fails if any is still root or holds more.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid};

/// The capabilities gatehouse keeps after dropping root.
pub const KEEP: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_NET_BIND_SERVICE,
];

/// Why the drop failed, by step. The process must not go on when any of these happens.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        source: nix::Error,
    },
    #[error("{step}: {reason}")]
    Caps { step: &'static str, reason: String },
    #[error(
        "gatehouse runs as uid {uid} without the capabilities to become uid {want_uid} gid {want_gid}; start it as root, or as that user and group"
    )]
    NotPermitted {
        uid: u32,
        want_uid: u32,
        want_gid: u32,
    },
    #[error("after the drop, thread {tid} still has {what}")]
    Thread { tid: String, what: String },
    #[error("reading {path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
}

/// What the drop did, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Threads of the process when it was done (this one included).
    pub threads: usize,
}

fn mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

fn keep_set() -> HashSet<Capability> {
    KEEP.into_iter().collect()
}

fn caps_err(step: &'static str) -> impl Fn(caps::errors::CapsError) -> PrivError {
    move |e| PrivError::Caps {
        step,
        reason: e.to_string(),
    }
}

fn sys_err(step: &'static str) -> impl Fn(nix::Error) -> PrivError {
    move |source| PrivError::Sys { step, source }
}

/// Becomes `uid`:`gid` with `gid` as the only supplementary group, keeping [`KEEP`] in the
/// effective, permitted, inheritable and ambient sets and nothing else anywhere, sets no-new-privs,
/// then checks every thread of the process. Started as that user and group already (with the
/// capabilities given by systemd's `AmbientCapabilities=`, say), it only trims the sets.
pub fn drop_to(uid: u32, gid: u32) -> Result<Dropped, PrivError> {
    let u = nix::unistd::getresuid().map_err(sys_err("getresuid"))?;
    let g = nix::unistd::getresgid().map_err(sys_err("getresgid"))?;
    let euid = u.effective;
    let already = [u.real, u.effective, u.saved]
        .iter()
        .all(|u| u.as_raw() == uid)
        && [g.real, g.effective, g.saved]
            .iter()
            .all(|g| g.as_raw() == gid);
    let keep = keep_set();
    if !already {
        let setid = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETUID)
            .map_err(caps_err("reading the capabilities"))?
            && caps::has_cap(None, CapSet::Effective, Capability::CAP_SETGID)
                .map_err(caps_err("reading the capabilities"))?;
        if !setid {
            return Err(PrivError::NotPermitted {
                uid: euid.as_raw(),
                want_uid: uid,
                want_gid: gid,
            });
        }
        // The bounding set caps what any later execve can gain; dropping from it needs
        // CAP_SETPCAP, which root has until setresuid below.
        if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
            for c in caps::runtime::thread_all_supported() {
                if !keep.contains(&c) {
                    caps::drop(None, CapSet::Bounding, c)
                        .map_err(caps_err("dropping from the bounding set"))?;
                }
            }
        }
        // Without this flag, leaving uid 0 empties the permitted set.
        nix::sys::prctl::set_keepcaps(true).map_err(sys_err("prctl(PR_SET_KEEPCAPS)"))?;
        let g = Gid::from_raw(gid);
        nix::unistd::setgroups(&[g]).map_err(sys_err("setgroups"))?;
        nix::unistd::setresgid(g, g, g).map_err(sys_err("setresgid"))?;
        let u = Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u).map_err(sys_err("setresuid"))?;
        nix::sys::prctl::set_keepcaps(false).map_err(sys_err("prctl(PR_SET_KEEPCAPS)"))?;
    }
    // Held capabilities outside KEEP go; KEEP must be held (a non-root start without them fails
    // here with EPERM, which is the right answer: the gateway would not work).
    // Inheritable first (an ambient capability must be permitted and inheritable), then
    // permitted, then effective (effective must stay within permitted at each step).
    caps::set(None, CapSet::Inheritable, &keep).map_err(caps_err("setting the inheritable set"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(caps_err("setting the permitted set"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(caps_err("setting the effective set"))?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clearing the ambient set"))?;
    for c in KEEP {
        caps::raise(None, CapSet::Ambient, c).map_err(caps_err("raising an ambient capability"))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(sys_err("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    // Ours first: this thread must hold exactly KEEP.
    let own = nix::unistd::gettid().as_raw().to_string();
    let dir = "/proc/self/task";
    let read_dir = std::fs::read_dir(dir).map_err(|source| PrivError::Proc {
        path: dir.into(),
        source,
    })?;
    let mut threads = 0;
    for entry in read_dir {
        let entry = entry.map_err(|source| PrivError::Proc {
            path: dir.into(),
            source,
        })?;
        let tid = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{dir}/{tid}/status");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // The thread ended meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(PrivError::Proc { path, source }),
        };
        threads += 1;
        let exact = tid == own;
        check_status(&text, uid, gid, exact).map_err(|what| PrivError::Thread { tid, what })?;
    }
    Ok(Dropped { threads })
}

/// Checks one `/proc/…/status` text: every uid and gid field is the target's; CapEff, CapPrm and
/// CapAmb hold nothing beyond [`KEEP`] (exactly KEEP when `exact`). Returns what is wrong.
pub fn check_status(text: &str, uid: u32, gid: u32, exact: bool) -> Result<(), String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| format!("no {name} line in its status"))
    };
    for (name, want) in [("Uid", uid), ("Gid", gid)] {
        let v = field(name)?;
        if v.split_whitespace().any(|f| f.parse() != Ok(want)) {
            return Err(format!("{name} {v} (wanted {want} everywhere)"));
        }
    }
    let keep = mask(&KEEP);
    for name in ["CapEff", "CapPrm", "CapAmb"] {
        let v = field(name)?;
        let m = u64::from_str_radix(v, 16).map_err(|_| format!("{name} '{v}' is not hex"))?;
        if m & !keep != 0 || (exact && m != keep) {
            return Err(format!("{name} {m:016x} (wanted {keep:016x})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tgatehouse\nUid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\n\
        CapInh:\t0000000000003400\nCapPrm:\t0000000000003400\nCapEff:\t0000000000003400\n\
        CapBnd:\t0000000000003400\nCapAmb:\t0000000000003400\n";

    #[test]
    fn keep_is_net_admin_raw_bind_service() {
        // CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13.
        assert_eq!(mask(&KEEP), 0x3400);
    }

    #[test]
    fn status_checks() {
        assert_eq!(check_status(STATUS, 998, 997, true), Ok(()));
        let root = STATUS.replace("Uid:\t998\t998\t998", "Uid:\t998\t0\t998");
        assert!(
            check_status(&root, 998, 997, true)
                .unwrap_err()
                .contains("Uid")
        );
        let more = STATUS.replace("CapEff:\t0000000000003400", "CapEff:\t000001ffffffffff");
        assert!(
            check_status(&more, 998, 997, false)
                .unwrap_err()
                .contains("CapEff")
        );
        // Another thread with none at all is fine; ours must hold exactly the three.
        let none = STATUS
            .replace("CapPrm:\t0000000000003400", "CapPrm:\t0000000000000000")
            .replace("CapEff:\t0000000000003400", "CapEff:\t0000000000000000")
            .replace("CapAmb:\t0000000000003400", "CapAmb:\t0000000000000000");
        assert_eq!(check_status(&none, 998, 997, false), Ok(()));
        assert!(check_status(&none, 998, 997, true).is_err());
        assert!(check_status("Name:\tx\n", 1, 1, false).is_err());
    }
}
