//! The hash algorithms: `balance source`, `hash EXPR`, `uri`, `url_param`, `hdr(NAME)`. Each turns the
//! session into a key; `hash-type` maps keys to servers: `map-based` (the key modulo the total weight:
//! even, but most keys move when a server comes or goes) or `consistent` (a ring with points per unit
//! of weight, placed by server name: when a server leaves, only its keys move).
//!
//! The hash is ours (FNV-1a with a 64-bit finaliser), stable across builds and restarts, so two
//! gatehouse instances map keys alike.

use super::{Algorithm, Candidate, Ctx};
use crate::config::model::{Balance, HashType};
use crate::rules::sample::Facts;

pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser: spreads nearby inputs over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The session's key for a hash algorithm; `None` when what it hashes is missing.
pub fn key(balance: &Balance, f: &Facts<'_>) -> Option<u64> {
    let text: String = match balance {
        Balance::Source => {
            return Some(match f.client.ip() {
                std::net::IpAddr::V4(a) => hash(&a.octets()),
                std::net::IpAddr::V6(a) => hash(&a.octets()),
            });
        }
        Balance::Hash(t) => t.render(f)?,
        Balance::Uri { whole, len, depth } => {
            let target = f.http?.target();
            let mut uri: &str = if *whole {
                target
            } else {
                target.split('?').next().unwrap_or("")
            };
            if *depth > 0 {
                // Keep the first `depth` directories: cut at the (depth + 1)-th slash.
                if let Some((i, _)) = uri.match_indices('/').nth(*depth) {
                    uri = &uri[..i];
                }
            }
            if *len > 0 && uri.len() > *len {
                let mut end = *len;
                while !uri.is_char_boundary(end) {
                    end -= 1;
                }
                uri = &uri[..end];
            }
            uri.to_string()
        }
        Balance::UrlParam(name) => {
            let query = f.http?.target().split_once('?')?.1;
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string())?
        }
        Balance::Hdr { name, domain_only } => {
            let r = f.http?;
            let v = if name == "host" {
                r.host()?.to_string()
            } else {
                r.header(name).next()?.to_string()
            };
            if *domain_only {
                let labels: Vec<&str> = v.split('.').collect();
                match labels.len() {
                    0 | 1 => v,
                    n => labels[n - 2].to_string(),
                }
            } else {
                v
            }
        }
        Balance::RdpCookie(name) => rdp_cookie(f.raw, name)?.to_string(),
        _ => return None,
    };
    Some(hash(text.as_bytes()))
}

/// The value of `Cookie: NAME=VALUE` in an RDP connection request (an X.224 CR after a TPKT header):
/// the line ends at CRLF.
fn rdp_cookie<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    // TPKT version 3, then the X.224 Connection Request (code 0xE0).
    if raw.len() < 11 || raw[0] != 3 || raw[5] & 0xf0 != 0xe0 {
        return None;
    }
    let needle = format!("Cookie: {name}=");
    let body = &raw[11..];
    let at = body
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let value = &body[at + needle.len()..];
    let end = value.windows(2).position(|w| w == b"\r\n")?;
    std::str::from_utf8(&value[..end]).ok()
}

/// Points on the consistent-hash ring per unit of weight.
const POINTS_PER_WEIGHT: u32 = 64;

pub struct Hashed(pub u64);

/// A consistent-hash ring for one set of candidates and weights, kept until the set changes.
#[derive(Debug, Default)]
pub struct Ring {
    /// (server index, weight) of the servers it was built for.
    built_for: Vec<(usize, u32)>,
    /// (point, server index), sorted.
    points: Vec<(u64, usize)>,
}

fn ring(ctx: &Ctx<'_>, cands: &[Candidate]) -> std::sync::Arc<Ring> {
    let want: Vec<(usize, u32)> = cands.iter().map(|c| (c.index, c.weight)).collect();
    let mut cache = ctx.state.ring.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.as_ref()
        && r.built_for == want
    {
        return r.clone();
    }
    let mut points = Vec::new();
    for c in cands {
        let base = hash(ctx.backend.servers[c.index].name.as_bytes());
        for r in 0..c.weight * POINTS_PER_WEIGHT {
            points.push((
                mix(base ^ u64::from(r).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                c.index,
            ));
        }
    }
    points.sort_unstable();
    let r = std::sync::Arc::new(Ring {
        built_for: want,
        points,
    });
    *cache = Some(r.clone());
    r
}

impl Algorithm for Hashed {
    fn choose(&self, ctx: &Ctx<'_>, cands: &[Candidate]) -> usize {
        let key = self.0;
        match ctx.backend.hash_type {
            HashType::MapBased => {
                let total: u64 = cands.iter().map(|c| u64::from(c.weight)).sum();
                let mut n = key % total.max(1);
                for (k, c) in cands.iter().enumerate() {
                    if n < u64::from(c.weight) {
                        return k;
                    }
                    n -= u64::from(c.weight);
                }
                0
            }
            HashType::Consistent => {
                let ring = ring(ctx, cands);
                let at = ring.points.partition_point(|(p, _)| *p < key);
                let server = ring
                    .points
                    .get(at)
                    .or(ring.points.first())
                    .map_or(0, |(_, s)| *s);
                cands.iter().position(|c| c.index == server).unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::super::testing::*;
    use super::super::{Ctx, candidates};
    use super::*;

    fn who(rt: &crate::account::Runtime, key: u64) -> usize {
        let c = candidates(rt, 0, &[]).unwrap();
        let f = facts();
        let ctx = Ctx {
            backend: &rt.cfg.backends[0],
            state: &rt.backends[0],
            facts: &f,
        };
        c[Hashed(key).choose(&ctx, &c)].index
    }

    #[test]
    fn consistent_hashing_moves_only_the_leavers_keys() {
        let servers: String = (0..5)
            .map(|i| format!("    server s{i} 10.0.0.{i}:80\n"))
            .collect();
        let rt = runtime(&format!(
            "    balance source\n    hash-type consistent\n{servers}"
        ));
        let keys: Vec<u64> = (0..5000u32).map(|k| hash(&k.to_be_bytes())).collect();
        let before: Vec<usize> = keys.iter().map(|k| who(&rt, *k)).collect();
        let mut per = [0usize; 5];
        for b in &before {
            per[*b] += 1;
        }
        assert!(
            per.iter().all(|n| (600..1400).contains(n)),
            "uneven: {per:?}"
        );
        rt.backends[0].health[2].up.store(false, Relaxed);
        let after: Vec<usize> = keys.iter().map(|k| who(&rt, *k)).collect();
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        // Only s2's keys (about 1/5) move, and all of them do.
        assert_eq!(moved, before.iter().filter(|b| **b == 2).count());
        assert!(moved < 5000 / 5 + 5000 / 20, "{moved} keys moved");
    }

    #[test]
    fn map_based_is_even_and_keys_are_stable() {
        let rt = runtime(
            "    balance source\n    server a 10.0.0.1:80\n    server b 10.0.0.2:80 weight 3\n",
        );
        let mut per = [0usize; 2];
        for k in 0..4000u32 {
            per[who(&rt, hash(&k.to_be_bytes()))] += 1;
        }
        assert!((850..1150).contains(&per[0]), "{per:?}");
        let f = facts();
        let a = super::super::pick(&rt, 0, &f, &[]).unwrap();
        assert!((0..20).all(|_| super::super::pick(&rt, 0, &f, &[]).unwrap() == a));
    }

    #[test]
    fn rdp_cookies() {
        // TPKT, X.224 CR, then the routing cookie Windows clients send.
        let mut cr = vec![3, 0, 0, 0x2b, 0x26, 0xe0, 0, 0, 0, 0, 0];
        cr.extend(b"Cookie: mstshash=alice\r\n");
        cr.extend([1, 0, 8, 0, 3, 0, 0, 0]);
        assert_eq!(rdp_cookie(&cr, "mstshash"), Some("alice"));
        assert_eq!(rdp_cookie(&cr, "other"), None);
        assert_eq!(
            rdp_cookie(b"GET / HTTP/1.1\r\nCookie: mstshash=x\r\n", "mstshash"),
            None
        );
        let mut f = facts();
        f.raw = &cr;
        assert_eq!(
            key(&Balance::RdpCookie("mstshash".into()), &f),
            Some(hash(b"alice"))
        );
    }

    #[test]
    fn keys_from_the_request() {
        let req = crate::classify::http::parse(
            b"GET /a/b/c?x=1&user=bob HTTP/1.1\r\nHost: www.example.test\r\nX-Id: 42\r\n\r\n",
            4096,
        )
        .unwrap();
        let mut f = facts();
        f.http = Some(&req);
        let k = |b: Balance| key(&b, &f);
        assert_eq!(
            k(Balance::Uri {
                whole: false,
                len: 0,
                depth: 0
            }),
            Some(hash(b"/a/b/c"))
        );
        assert_eq!(
            k(Balance::Uri {
                whole: true,
                len: 0,
                depth: 0
            }),
            Some(hash(b"/a/b/c?x=1&user=bob"))
        );
        assert_eq!(
            k(Balance::Uri {
                whole: false,
                len: 0,
                depth: 2
            }),
            Some(hash(b"/a/b"))
        );
        assert_eq!(
            k(Balance::Uri {
                whole: false,
                len: 3,
                depth: 0
            }),
            Some(hash(b"/a/"))
        );
        assert_eq!(k(Balance::UrlParam("user".into())), Some(hash(b"bob")));
        assert_eq!(k(Balance::UrlParam("nope".into())), None);
        assert_eq!(
            k(Balance::Hdr {
                name: "x-id".into(),
                domain_only: false
            }),
            Some(hash(b"42"))
        );
        assert_eq!(
            k(Balance::Hdr {
                name: "host".into(),
                domain_only: true
            }),
            Some(hash(b"example"))
        );
        let none = facts();
        assert_eq!(key(&Balance::UrlParam("user".into()), &none), None);
    }
}
