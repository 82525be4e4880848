//! Stick tables: per-key counters and server affinity, shared by every worker thread.
//!
//! A table (`stick-table type ip size 100k expire 30s store conn_rate(10s),conn_cur,gpc0`) maps keys
//! (addresses, integers, strings) to entries holding the data types it stores. Sessions *track* a key
//! (`tcp-request connection track-sc0 src`): the key's connection and session counters and rates count
//! them, and `sc0_*` / `src_*` fetches read them in ACLs, which is how rate limits are written.
//! `stick on|match|store-request` remember which server a key went to (`server_id`).
//!
//! Entries expire `expire` after their last use, and a full table evicts its least recently used entry
//! that no session is tracking. Every insert and update takes the next sequence number of its table, the
//! update stream a future replication (HAProxy's peers) will send.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::config::model::{DataType, KeyType, StickTableDef};

pub mod cli;

/// An entry as `show table` lists it: key, milliseconds to expiry, stored values by name.
pub type Dumped = (Key, Option<u64>, Vec<(String, u64)>);

/// A table key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(IpAddr),
    Int(i64),
    Str(Box<str>),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Ip(ip) => write!(f, "{ip}"),
            Key::Int(n) => write!(f, "{n}"),
            Key::Str(s) => f.write_str(s),
        }
    }
}

/// A stored data type: what reads it, and its name in `show table` (rates with their period in
/// milliseconds).
pub fn data_name(d: DataType) -> (Read, String) {
    let rate = |r: Read, name: &str, p: Duration| (r, format!("{name}({})", p.as_millis()));
    match d {
        DataType::ServerId => (Read::ServerId, "server_id".into()),
        DataType::ConnCnt => (Read::ConnCnt, "conn_cnt".into()),
        DataType::ConnCur => (Read::ConnCur, "conn_cur".into()),
        DataType::ConnRate(p) => rate(Read::ConnRate, "conn_rate", p),
        DataType::SessCnt => (Read::SessCnt, "sess_cnt".into()),
        DataType::SessRate(p) => rate(Read::SessRate, "sess_rate", p),
        DataType::HttpReqCnt => (Read::HttpReqCnt, "http_req_cnt".into()),
        DataType::HttpReqRate(p) => rate(Read::HttpReqRate, "http_req_rate", p),
        DataType::HttpErrCnt => (Read::HttpErrCnt, "http_err_cnt".into()),
        DataType::HttpErrRate(p) => rate(Read::HttpErrRate, "http_err_rate", p),
        DataType::BytesInCnt => (Read::BytesInCnt, "bytes_in_cnt".into()),
        DataType::BytesOutCnt => (Read::BytesOutCnt, "bytes_out_cnt".into()),
        DataType::BytesInRate(p) => rate(Read::BytesInRate, "bytes_in_rate", p),
        DataType::BytesOutRate(p) => rate(Read::BytesOutRate, "bytes_out_rate", p),
        DataType::Gpc0 => (Read::Gpc0, "gpc0".into()),
        DataType::Gpc0Rate(p) => rate(Read::Gpc0Rate, "gpc0_rate", p),
        DataType::Gpt0 => (Read::Gpt0, "gpt0".into()),
    }
}

impl Key {
    /// The key of type `ty` for a sample's text; `None` if it does not fit the type.
    pub fn of(ty: KeyType, text: &str) -> Option<Key> {
        match ty {
            KeyType::Ip | KeyType::Ipv6 => {
                let ip: IpAddr = text.parse().ok()?;
                let ip = match (ty, ip) {
                    (KeyType::Ip, IpAddr::V6(v6)) => IpAddr::V4(v6.to_ipv4_mapped()?),
                    (KeyType::Ipv6, IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
                    (_, ip) => ip,
                };
                Some(Key::Ip(ip))
            }
            KeyType::Integer => text.parse().ok().map(Key::Int),
            KeyType::String(len) | KeyType::Binary(len) => {
                let mut end = text.len().min(len);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                Some(Key::Str(text[..end].into()))
            }
        }
    }
}

/// An event rate over a sliding period, as HAProxy's freq_ctr: the previous period's count, weighted
/// by how much of it the window still covers, plus the current period's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    start: Option<Instant>,
    curr: u64,
    prev: u64,
}

impl Rate {
    fn roll(&mut self, now: Instant, period: Duration) {
        let Some(start) = self.start else {
            self.start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= period * 2 {
            self.prev = 0;
            self.curr = 0;
            self.start = Some(now);
        } else if elapsed >= period {
            self.prev = self.curr;
            self.curr = 0;
            self.start = Some(start + period);
        }
    }

    pub fn add(&mut self, now: Instant, period: Duration, n: u64) {
        self.roll(now, period);
        self.curr += n;
    }

    pub fn read(&mut self, now: Instant, period: Duration) -> u64 {
        self.roll(now, period);
        let Some(start) = self.start else {
            return 0;
        };
        let into = now.saturating_duration_since(start).as_secs_f64() / period.as_secs_f64();
        self.curr + (self.prev as f64 * (1.0 - into).max(0.0)).round() as u64
    }
}

/// One entry's data.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub server_id: Option<usize>,
    pub conn_cnt: u64,
    pub conn_cur: u64,
    pub conn_rate: Rate,
    pub sess_cnt: u64,
    pub sess_rate: Rate,
    pub http_req_cnt: u64,
    pub http_req_rate: Rate,
    pub http_err_cnt: u64,
    pub http_err_rate: Rate,
    pub bytes_in_cnt: u64,
    pub bytes_out_cnt: u64,
    pub bytes_in_rate: Rate,
    pub bytes_out_rate: Rate,
    pub gpc0: u64,
    pub gpc0_rate: Rate,
    pub gpt0: u64,
    last_used: Option<Instant>,
    /// The sequence number of its last change.
    pub seq: u64,
}

/// What a fetch reads from an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    ConnCnt,
    ConnCur,
    ConnRate,
    SessCnt,
    SessRate,
    HttpReqCnt,
    HttpReqRate,
    HttpErrCnt,
    HttpErrRate,
    BytesInCnt,
    BytesOutCnt,
    BytesInRate,
    BytesOutRate,
    Gpc0,
    Gpc0Rate,
    Gpt0,
    ServerId,
}

impl Read {
    pub fn parse(name: &str) -> Option<Read> {
        Some(match name {
            "conn_cnt" => Read::ConnCnt,
            "conn_cur" => Read::ConnCur,
            "conn_rate" => Read::ConnRate,
            "sess_cnt" => Read::SessCnt,
            "sess_rate" => Read::SessRate,
            "http_req_cnt" => Read::HttpReqCnt,
            "http_req_rate" => Read::HttpReqRate,
            "http_err_cnt" => Read::HttpErrCnt,
            "http_err_rate" => Read::HttpErrRate,
            "bytes_in_cnt" | "kbytes_in" => Read::BytesInCnt,
            "bytes_out_cnt" | "kbytes_out" => Read::BytesOutCnt,
            "bytes_in_rate" => Read::BytesInRate,
            "bytes_out_rate" => Read::BytesOutRate,
            "get_gpc0" | "gpc0" => Read::Gpc0,
            "gpc0_rate" => Read::Gpc0Rate,
            "get_gpt0" | "gpt0" => Read::Gpt0,
            "server_id" => Read::ServerId,
            _ => return None,
        })
    }
}

/// The periods of the rates a table stores (`None`: not stored).
#[derive(Debug, Default, Clone, Copy)]
struct Periods {
    conn: Option<Duration>,
    sess: Option<Duration>,
    gpc0: Option<Duration>,
    bytes_in: Option<Duration>,
    bytes_out: Option<Duration>,
    http_req: Option<Duration>,
    http_err: Option<Duration>,
}

/// A stick table at run time.
#[derive(Debug)]
pub struct Table {
    pub def: StickTableDef,
    periods: Periods,
    entries: Mutex<HashMap<Key, Entry>>,
    seq: AtomicU64,
}

impl Table {
    pub fn new(def: StickTableDef) -> Table {
        let mut periods = Periods::default();
        for d in &def.store {
            match *d {
                DataType::ConnRate(p) => periods.conn = Some(p),
                DataType::SessRate(p) => periods.sess = Some(p),
                DataType::Gpc0Rate(p) => periods.gpc0 = Some(p),
                DataType::BytesInRate(p) => periods.bytes_in = Some(p),
                DataType::BytesOutRate(p) => periods.bytes_out = Some(p),
                DataType::HttpReqRate(p) => periods.http_req = Some(p),
                DataType::HttpErrRate(p) => periods.http_err = Some(p),
                _ => {}
            }
        }
        Table {
            def,
            periods,
            entries: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
        }
    }

    /// Runs `f` on `key`'s entry, creating it (evicting if full) when `create`; returns `f`'s result.
    fn with<T>(
        &self,
        key: &Key,
        create: bool,
        f: impl FnOnce(&mut Entry, &Table, Instant) -> T,
    ) -> Option<T> {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(exp) = self.def.expire
            && map
                .get(key)
                .is_some_and(|e| e.conn_cur == 0 && e.last_used.is_some_and(|t| now - t > exp))
        {
            map.remove(key);
        }
        if !map.contains_key(key) {
            if !create {
                return None;
            }
            if map.len() >= self.def.size {
                self.evict(&mut map, now);
                if map.len() >= self.def.size {
                    return None;
                }
            }
            map.insert(key.clone(), Entry::default());
        }
        let e = map.get_mut(key).expect("present");
        e.last_used = Some(now);
        e.seq = self.seq.fetch_add(1, Relaxed) + 1;
        Some(f(e, self, now))
    }

    /// Drops expired entries, then the least recently used one nobody tracks.
    fn evict(&self, map: &mut HashMap<Key, Entry>, now: Instant) {
        if let Some(exp) = self.def.expire {
            map.retain(|_, e| e.conn_cur > 0 || e.last_used.is_none_or(|t| now - t <= exp));
        }
        if map.len() >= self.def.size
            && let Some(k) = map
                .iter()
                .filter(|(_, e)| e.conn_cur == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&k);
        }
    }

    /// A new session tracks `key`: counts the connection and the session. `false` if the table is
    /// full of tracked entries.
    pub fn track(&self, key: &Key) -> bool {
        let Periods { conn, sess, .. } = self.periods;
        self.with(key, true, |e, _, now| {
            e.conn_cnt += 1;
            e.conn_cur += 1;
            e.sess_cnt += 1;
            if let Some(p) = conn {
                e.conn_rate.add(now, p, 1);
            }
            if let Some(p) = sess {
                e.sess_rate.add(now, p, 1);
            }
        })
        .is_some()
    }

    /// A tracking session ends, having moved these bytes.
    pub fn untrack(&self, key: &Key, bytes_in: u64, bytes_out: u64) {
        let (rin, rout) = (self.periods.bytes_in, self.periods.bytes_out);
        self.with(key, false, |e, _, now| {
            e.conn_cur = e.conn_cur.saturating_sub(1);
            e.bytes_in_cnt += bytes_in;
            e.bytes_out_cnt += bytes_out;
            if let Some(p) = rin {
                e.bytes_in_rate.add(now, p, bytes_in);
            }
            if let Some(p) = rout {
                e.bytes_out_rate.add(now, p, bytes_out);
            }
        });
    }

    /// An HTTP request of a session tracking `key`; `error` for a 4xx answer (HAProxy's http_err).
    pub fn http_request(&self, key: &Key, error: bool) {
        let (preq, perr) = (self.periods.http_req, self.periods.http_err);
        self.with(key, false, |e, _, now| {
            e.http_req_cnt += 1;
            if let Some(p) = preq {
                e.http_req_rate.add(now, p, 1);
            }
            if error {
                e.http_err_cnt += 1;
                if let Some(p) = perr {
                    e.http_err_rate.add(now, p, 1);
                }
            }
        });
    }

    /// `sc-inc-gpc0`: adds one to the key's gpc0 (and its rate); returns the new value.
    pub fn inc_gpc0(&self, key: &Key) -> u64 {
        let p = self.periods.gpc0;
        self.with(key, true, |e, _, now| {
            e.gpc0 += 1;
            if let Some(p) = p {
                e.gpc0_rate.add(now, p, 1);
            }
            e.gpc0
        })
        .unwrap_or(0)
    }

    /// Reads one value of `key`'s entry (0 when the key is not in the table, as HAProxy returns).
    pub fn read(&self, key: &Key, what: Read) -> u64 {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get_mut(key).map_or(0, |e| self.value(e, what, now))
    }

    fn value(&self, e: &mut Entry, what: Read, now: Instant) -> u64 {
        let Periods {
            conn: p_conn,
            sess: p_sess,
            gpc0: p_gpc,
            bytes_in: p_in,
            bytes_out: p_out,
            http_req: p_req,
            http_err: p_err,
        } = self.periods;
        let rate = |r: &mut Rate, p: Option<Duration>| p.map_or(0, |p| r.read(now, p));
        match what {
            Read::ConnCnt => e.conn_cnt,
            Read::ConnCur => e.conn_cur,
            Read::ConnRate => rate(&mut e.conn_rate, p_conn),
            Read::SessCnt => e.sess_cnt,
            Read::SessRate => rate(&mut e.sess_rate, p_sess),
            Read::HttpReqCnt => e.http_req_cnt,
            Read::HttpReqRate => rate(&mut e.http_req_rate, p_req),
            Read::HttpErrCnt => e.http_err_cnt,
            Read::HttpErrRate => rate(&mut e.http_err_rate, p_err),
            Read::BytesInCnt => e.bytes_in_cnt,
            Read::BytesOutCnt => e.bytes_out_cnt,
            Read::BytesInRate => rate(&mut e.bytes_in_rate, p_in),
            Read::BytesOutRate => rate(&mut e.bytes_out_rate, p_out),
            Read::Gpc0 => e.gpc0,
            Read::Gpc0Rate => rate(&mut e.gpc0_rate, p_gpc),
            Read::Gpt0 => e.gpt0,
            Read::ServerId => e.server_id.map_or(0, |s| s as u64 + 1),
        }
    }

    /// The server `key` stuck to, if any.
    pub fn server(&self, key: &Key) -> Option<usize> {
        self.with(key, false, |e, _, _| e.server_id).flatten()
    }

    /// Remembers that `key` went to `server`.
    pub fn stick(&self, key: &Key, server: usize) {
        self.with(key, true, |e, _, _| e.server_id = Some(server));
    }

    /// Every live entry with its milliseconds to expiry (`None`: never) and the values the table
    /// stores, named as HAProxy's `show table` names them (`conn_cnt`, `http_req_rate(10000)`).
    pub fn entries(&self) -> Vec<Dumped> {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(map.len());
        for (k, e) in map.iter_mut() {
            let exp = match (self.def.expire, e.last_used) {
                (Some(exp), Some(t)) => {
                    let left = exp.saturating_sub(now.saturating_duration_since(t));
                    if left.is_zero() && e.conn_cur == 0 {
                        continue;
                    }
                    Some(left.as_millis() as u64)
                }
                _ => None,
            };
            let mut values = Vec::new();
            if let Some(s) = e.server_id {
                values.push(("server_id".to_string(), s as u64 + 1));
            }
            for d in &self.def.store {
                let (what, name) = data_name(*d);
                if what != Read::ServerId {
                    values.push((name, self.value(e, what, now)));
                }
            }
            out.push((k.clone(), exp, values));
        }
        out
    }

    /// Removes `key`'s entry, or every entry, leaving those a session tracks now (as HAProxy's
    /// `clear table` does). Returns how many went.
    pub fn clear(&self, key: Option<&Key>) -> usize {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let before = map.len();
        map.retain(|k, e| e.conn_cur > 0 || key.is_some_and(|only| only != k));
        before - map.len()
    }

    /// Sets a stored counter of `key`'s entry (creating it), for `set table`. `false` when the
    /// table does not store that type, or it is a rate.
    pub fn set(&self, key: &Key, what: Read, v: u64) -> bool {
        let stored = self.def.store.iter().any(|d| data_name(*d).0 == what);
        if !stored {
            return false;
        }
        self.with(key, true, |e, _, _| {
            let slot = match what {
                Read::ConnCnt => &mut e.conn_cnt,
                Read::SessCnt => &mut e.sess_cnt,
                Read::HttpReqCnt => &mut e.http_req_cnt,
                Read::HttpErrCnt => &mut e.http_err_cnt,
                Read::BytesInCnt => &mut e.bytes_in_cnt,
                Read::BytesOutCnt => &mut e.bytes_out_cnt,
                Read::Gpc0 => &mut e.gpc0,
                Read::Gpt0 => &mut e.gpt0,
                Read::ServerId => {
                    e.server_id = v.checked_sub(1).map(|s| s as usize);
                    return true;
                }
                _ => return false,
            };
            *slot = v;
            true
        })
        .unwrap_or(false)
    }

    /// Entries now (for tests and the stats socket).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest sequence number: every insert or update takes the next one.
    pub fn seq(&self) -> u64 {
        self.seq.load(Relaxed)
    }
}

/// A session's view of the stick tables while its rules run: the tables, its own section's table
/// (for `src_*`), and the keys it tracks (`track-sc0..2`).
pub struct StickCtx<'a> {
    pub tables: &'a [std::sync::Arc<Table>],
    pub own: Option<usize>,
    pub tracked: Mutex<Tracked>,
}

impl std::fmt::Debug for StickCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickCtx").field("own", &self.own).finish()
    }
}

/// What a session tracks: (table, key) per counter 0, 1, 2.
pub type Tracked = [Option<(usize, Key)>; 3];

impl StickCtx<'_> {
    /// `scN_*`: a value of the entry counter N tracks; `None` when it tracks nothing.
    pub fn sc(&self, n: usize, what: Read) -> Option<u64> {
        let tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let (t, k) = tracked.get(n)?.as_ref()?;
        Some(self.tables[*t].read(k, what))
    }

    /// `src_*[(TABLE)]`: a value of the client address's entry in TABLE (or the section's own).
    pub fn src(&self, ip: IpAddr, table: Option<&str>, what: Read) -> Option<u64> {
        let t = match table {
            Some(name) => self.tables.iter().position(|t| t.def.name == name)?,
            None => self.own?,
        };
        let key = Key::of(self.tables[t].def.key_type, &ip.to_string())?;
        Some(self.tables[t].read(&key, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(size: usize, expire: Option<Duration>, store: Vec<DataType>) -> Table {
        Table::new(StickTableDef {
            name: "t".into(),
            key_type: KeyType::Ip,
            size,
            expire,
            store,
        })
    }

    #[test]
    fn rates_count_and_decay() {
        let mut r = Rate::default();
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        for _ in 0..5 {
            r.add(t0, p, 1);
        }
        assert_eq!(r.read(t0, p), 5);
        // Half way through the next period, half of the previous one still counts.
        assert_eq!(r.read(t0 + Duration::from_secs(15), p), 3);
        assert_eq!(r.read(t0 + Duration::from_secs(30), p), 0);
    }

    #[test]
    fn tracking_eviction_and_sequence() {
        let t = table(
            2,
            None,
            vec![
                DataType::ConnRate(Duration::from_secs(10)),
                DataType::ConnCur,
            ],
        );
        let k = |s: &str| Key::of(KeyType::Ip, s).unwrap();
        assert!(t.track(&k("10.0.0.1")));
        assert!(t.track(&k("10.0.0.1")));
        assert_eq!(t.read(&k("10.0.0.1"), Read::ConnCur), 2);
        assert_eq!(t.read(&k("10.0.0.1"), Read::ConnRate), 2);
        // An IPv4-mapped address is the same client in an `ip` table; IPv6 does not fit one.
        assert_eq!(t.read(&k("::ffff:10.0.0.1"), Read::ConnCnt), 2);
        assert_eq!(Key::of(KeyType::Ip, "2001:db8::1"), None);
        t.stick(&k("10.0.0.2"), 3);
        // Full: the untracked 10.0.0.2 makes room; the tracked 10.0.0.1 stays.
        assert!(t.track(&k("10.0.0.3")));
        assert_eq!(t.server(&k("10.0.0.2")), None);
        assert_eq!(t.read(&k("10.0.0.1"), Read::ConnCur), 2);
        t.untrack(&k("10.0.0.1"), 10, 20);
        assert_eq!(t.read(&k("10.0.0.1"), Read::ConnCur), 1);
        assert!(t.seq() >= 5);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn expiry() {
        let t = table(10, Some(Duration::from_millis(1)), vec![]);
        let k = Key::of(KeyType::Ip, "10.0.0.9").unwrap();
        t.stick(&k, 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(t.server(&k), None);
    }
}
