//! Pattern matching for ACLs and maps: HAProxy's match methods (`-m str|beg|end|sub|reg|dom|found|ip|
//! int|bool`), case folding (`-i`) and pattern/map files.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use super::index::{IndexedList, KeyIndex, Kind, is_dom_delim};
use super::sample::Value;

/// How values are compared with patterns (`-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Str,
    Beg,
    End,
    Sub,
    Reg,
    /// A dot- or slash-delimited part of the value equals the pattern (`www.example.com` contains
    /// `example.com` and `www`), as HAProxy defines it.
    Dom,
    /// Any value at all.
    Found,
    Ip,
    /// Whole numbers and ranges `N`, `N:M`, `:M`, `N:`; versions as `3.1`.
    Int,
    /// The value is non-zero (no patterns).
    Bool,
}

impl Method {
    pub fn parse(s: &str) -> Result<Method, String> {
        Ok(match s {
            "str" => Method::Str,
            "beg" => Method::Beg,
            "end" => Method::End,
            "sub" => Method::Sub,
            "reg" => Method::Reg,
            "dom" => Method::Dom,
            "found" => Method::Found,
            "ip" => Method::Ip,
            "int" => Method::Int,
            "bool" => Method::Bool,
            "len" | "dir" | "bin" => {
                return Err(format!(
                    "match method '-m {s}' is not supported; use str, beg, end, sub, reg, dom, found, ip, int or bool"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown match method '-m {s}'; use str, beg, end, sub, reg, dom, found, ip, int or bool"
                ));
            }
        })
    }
}

/// A compiled pattern list. Strings are lower-cased when case-insensitive.
#[derive(Debug, Clone)]
pub enum Patterns {
    Str(HashSet<String>),
    /// Prefixes, suffixes and domains: indexed, so a test costs a few lookups per value, not a walk.
    Beg(IndexedList),
    End(IndexedList),
    /// Substrings: walked in order (no index fits both a simple structure and run-time changes).
    Sub(Vec<String>),
    Dom(IndexedList),
    Reg(RegexSet),
    Found,
    Ip(Vec<IpNet>),
    Int(Vec<(i64, i64)>),
    Bool,
}

/// Patterns with their case rule. The patterns can change at run time (`add acl`, `del acl`,
/// `clear acl` on the runtime API): they sit behind a read-mostly lock shared by every copy of the
/// matcher (a `defaults` section's ACL and the sections inheriting it are one pattern list).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub shared: std::sync::Arc<PatternList>,
    pub icase: bool,
}

/// An ACL test's patterns: as written (for `show acl` and rebuilding) and compiled.
#[derive(Debug)]
pub struct PatternList {
    pub method: Method,
    pub icase: bool,
    /// The `-f` files the patterns came from (the runtime API names lists by file).
    pub files: Vec<String>,
    lists: std::sync::RwLock<(Vec<String>, Patterns)>,
}

impl PatternList {
    /// The patterns as written.
    pub fn patterns(&self) -> Vec<String> {
        self.lists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Replaces the patterns (compiled first: a bad one changes nothing).
    pub fn set(&self, pats: Vec<String>) -> Result<(), String> {
        let compiled = Matcher::compile(self.method, self.icase, &pats)?;
        *self.lists.write().unwrap_or_else(|e| e.into_inner()) = (pats, compiled);
        Ok(())
    }
}

impl Matcher {
    pub fn new(method: Method, icase: bool, pats: &[String]) -> Result<Matcher, String> {
        Matcher::with_files(method, icase, pats, Vec::new())
    }

    /// A matcher whose patterns came (partly) from the `-f` files `files`.
    pub fn with_files(
        method: Method,
        icase: bool,
        pats: &[String],
        files: Vec<String>,
    ) -> Result<Matcher, String> {
        let compiled = Matcher::compile(method, icase, pats)?;
        Ok(Matcher {
            shared: std::sync::Arc::new(PatternList {
                method,
                icase,
                files,
                lists: std::sync::RwLock::new((pats.to_vec(), compiled)),
            }),
            icase,
        })
    }

    fn compile(method: Method, icase: bool, pats: &[String]) -> Result<Patterns, String> {
        let fold = |p: &String| {
            if icase {
                p.to_ascii_lowercase()
            } else {
                p.clone()
            }
        };
        let patterns = match method {
            Method::Str => Patterns::Str(pats.iter().map(fold).collect()),
            Method::Beg => {
                Patterns::Beg(IndexedList::new(Kind::Beg, pats.iter().map(fold).collect()))
            }
            Method::End => {
                Patterns::End(IndexedList::new(Kind::End, pats.iter().map(fold).collect()))
            }
            Method::Sub => Patterns::Sub(pats.iter().map(fold).collect()),
            Method::Dom => {
                Patterns::Dom(IndexedList::new(Kind::Dom, pats.iter().map(fold).collect()))
            }
            Method::Reg => Patterns::Reg(
                RegexSetBuilder::new(pats)
                    .case_insensitive(icase)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("bad regular expression: {e}"))?,
            ),
            Method::Found | Method::Bool => {
                if let Some(p) = pats.first() {
                    return Err(format!(
                        "'-m {}' takes no patterns, but '{p}' was given",
                        if method == Method::Found {
                            "found"
                        } else {
                            "bool"
                        }
                    ));
                }
                if method == Method::Found {
                    Patterns::Found
                } else {
                    Patterns::Bool
                }
            }
            Method::Ip => Patterns::Ip(
                pats.iter()
                    .map(|p| parse_net(p))
                    .collect::<Result<_, _>>()?,
            ),
            Method::Int => {
                // `gt N`, `ge N`, `lt N`, `le N`, `eq N` as in HAProxy, besides ranges.
                let mut ranges = Vec::new();
                let mut i = 0;
                while i < pats.len() {
                    let p = pats[i].as_str();
                    if let "gt" | "ge" | "lt" | "le" | "eq" = p {
                        let v = pats
                            .get(i + 1)
                            .ok_or_else(|| format!("'{p}' needs a number after it"))?;
                        let (n, _) = parse_range(v)?;
                        ranges.push(match p {
                            "gt" => (n.saturating_add(1), i64::MAX),
                            "ge" => (n, i64::MAX),
                            "lt" => (i64::MIN, n.saturating_sub(1)),
                            "le" => (i64::MIN, n),
                            _ => (n, n),
                        });
                        i += 2;
                    } else {
                        ranges.push(parse_range(p)?);
                        i += 1;
                    }
                }
                Patterns::Int(ranges)
            }
        };
        Ok(patterns)
    }

    /// A string, integer or address list with no pattern: it never matches (HAProxy warns too).
    pub fn is_empty(&self) -> bool {
        let lists = self.shared.lists.read().unwrap_or_else(|e| e.into_inner());
        match &lists.1 {
            Patterns::Str(s) => s.is_empty(),
            Patterns::Beg(l) | Patterns::End(l) | Patterns::Dom(l) => l.is_empty(),
            Patterns::Sub(l) => l.is_empty(),
            Patterns::Reg(r) => r.is_empty(),
            Patterns::Ip(l) => l.is_empty(),
            Patterns::Int(l) => l.is_empty(),
            Patterns::Found | Patterns::Bool => false,
        }
    }

    /// Whether `v` matches one of the patterns; an empty list matches nothing, like HAProxy's.
    pub fn matches(&self, v: &Value) -> bool {
        let lists = self.shared.lists.read().unwrap_or_else(|e| e.into_inner());
        match (&lists.1, v) {
            (Patterns::Found, _) => true,
            (Patterns::Bool, Value::Int(n)) => *n != 0,
            (Patterns::Bool, Value::Str(s)) => !s.is_empty(),
            (Patterns::Bool, Value::Ip(_)) => true,
            (Patterns::Ip(nets), v) => match v.as_ip() {
                Some(ip) => nets.iter().any(|n| n.contains(&ip)),
                None => false,
            },
            (Patterns::Int(ranges), v) => match v.as_int() {
                Some(n) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&n)),
                None => false,
            },
            (p, v) => {
                let text = v.to_text();
                let folded;
                // Most values come already lower-case (Host and SNI are folded when read): fold
                // only when there is something to fold, not a copy per test and value.
                let s: &str = if self.icase && text.bytes().any(|b| b.is_ascii_uppercase()) {
                    folded = text.to_ascii_lowercase();
                    &folded
                } else {
                    &text
                };
                match p {
                    Patterns::Str(set) => set.contains(s),
                    Patterns::Beg(l) | Patterns::End(l) | Patterns::Dom(l) => l.matches(s),
                    Patterns::Sub(l) => l.iter().any(|p| s.contains(p.as_str())),
                    Patterns::Reg(set) => set.is_match(&text),
                    _ => false,
                }
            }
        }
    }
}

/// HAProxy's `dom` match: `pat`, without delimiters at its ends, occurs in `s` with a delimiter (`.`,
/// `/`, `?`, `:`, or the ends of `s`) on each side. So `example.com` and `.example.com` both match
/// `www.example.com` and `example.com:8080`. Lists and maps use the equivalent [`KeyIndex`]; this is
/// the definition it is tested against.
pub fn dom_match(s: &str, pat: &str) -> bool {
    let delim = is_dom_delim;
    let pat = pat.trim_matches(|c: char| c.is_ascii() && delim(c as u8));
    if pat.is_empty() {
        return false;
    }
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find(pat) {
        let start = from + i;
        let end = start + pat.len();
        let left = start == 0 || delim(bytes[start - 1]);
        let right = end == bytes.len() || delim(bytes[end]);
        if left && right {
            return true;
        }
        from = start + 1;
        if from >= s.len() {
            break;
        }
        while !s.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not an address or CIDR (e.g. 10.0.0.0/8)"))
}

/// `N`, `N:M`, `:M`, `N:`, and versions `3.1` (3 << 16 | 1), as HAProxy's int and version matches.
fn parse_range(s: &str) -> Result<(i64, i64), String> {
    let num = |t: &str| -> Result<i64, String> {
        if let Some((maj, min)) = t.split_once('.') {
            let (a, b): (i64, i64) = (
                maj.parse().map_err(|_| format!("'{t}' is not a version"))?,
                min.parse().map_err(|_| format!("'{t}' is not a version"))?,
            );
            return Ok((a << 16) | b);
        }
        t.parse()
            .map_err(|_| format!("'{t}' is not a number; write N, N:M, :M or N:"))
    };
    match s.split_once(':') {
        None => {
            let n = num(s)?;
            Ok((n, n))
        }
        Some(("", hi)) => Ok((i64::MIN, num(hi)?)),
        Some((lo, "")) => Ok((num(lo)?, i64::MAX)),
        Some((lo, hi)) => Ok((num(lo)?, num(hi)?)),
    }
}

/// Reads a pattern file (`-f`): one pattern per line, blank lines and `#` comments skipped, spaces
/// at both ends trimmed. Errors name the file.
pub fn read_pattern_file(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pattern file '{path}': {e}"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// The key matching of a map converter (`map`, `map_str`, `map_beg`, `map_end`, `map_sub`, `map_dom`,
/// `map_reg`). Its entries can change at run time (`add map`, `set map`, `del map`, `clear map` on the
/// runtime API), so they sit behind a lock that lookups only read.
#[derive(Debug)]
pub struct Map {
    pub path: String,
    method: Method,
    data: std::sync::RwLock<MapData>,
}

#[derive(Debug, Default)]
struct MapData {
    entries: Vec<(String, std::sync::Arc<str>)>,
    /// Exact maps: the first entry of each key.
    exact: std::collections::HashMap<String, usize>,
    /// Regex maps: one per entry.
    regs: Vec<Regex>,
    /// `beg`, `end` and `dom` maps: the first entry of each key, found from the parts of the value.
    keys: Option<KeyIndex>,
}

impl MapData {
    /// Rebuilds the indexes after a change that moved entries.
    fn index(&mut self, method: Method) -> Result<(), String> {
        self.exact.clear();
        self.regs.clear();
        self.keys = index_kind(method).map(KeyIndex::new);
        for i in 0..self.entries.len() {
            self.index_last(method, i)?;
        }
        Ok(())
    }

    /// Indexes entry `i`, which comes after every entry indexed so far (`add map` appends).
    fn index_last(&mut self, method: Method, i: usize) -> Result<(), String> {
        match method {
            Method::Str => {
                self.exact.entry(self.entries[i].0.clone()).or_insert(i);
            }
            Method::Reg => {
                let k = &self.entries[i].0;
                self.regs.push(
                    RegexBuilder::new(k)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("bad regular expression '{k}': {e}"))?,
                );
            }
            _ => {
                if let Some(ix) = &mut self.keys {
                    ix.push(&self.entries[..], i);
                }
            }
        }
        Ok(())
    }
}

/// The methods whose maps a [`KeyIndex`] answers.
fn index_kind(method: Method) -> Option<Kind> {
    match method {
        Method::Beg => Some(Kind::Beg),
        Method::End => Some(Kind::End),
        Method::Dom => Some(Kind::Dom),
        _ => None,
    }
}

impl Map {
    /// Loads `path`: lines `KEY VALUE` (the value is the rest of the line), `#` comments. A lookup
    /// takes the first line that matches, in file order; exact, `beg`, `end` and `dom` maps find it
    /// through an index, `sub` and `reg` maps by walking the lines.
    pub fn load(path: &str, method: Method) -> Result<Map, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read map file '{path}': {e}"))?;
        Map::from_text(path, &text, method)
    }

    pub fn from_text(path: &str, text: &str, method: Method) -> Result<Map, String> {
        let mut data = MapData::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => {
                    return Err(format!(
                        "{path}:{}: '{line}' has a key but no value; write 'KEY VALUE'",
                        i + 1
                    ));
                }
            };
            data.entries.push((k.to_string(), v.into()));
        }
        data.index(method).map_err(|e| format!("{path}: {e}"))?;
        Ok(Map {
            path: path.to_string(),
            method,
            data: std::sync::RwLock::new(data),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, MapData> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, MapData> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lookup(&self, key: &str) -> Option<std::sync::Arc<str>> {
        let d = self.read();
        let hit = match self.method {
            Method::Str => d.exact.get(key).copied(),
            Method::Beg | Method::End | Method::Dom => d
                .keys
                .as_ref()
                .and_then(|ix| ix.first_match(&d.entries[..], key)),
            Method::Sub => d.entries.iter().position(|(k, _)| key.contains(k.as_str())),
            Method::Reg => d.regs.iter().position(|r| r.is_match(key)),
            _ => None,
        };
        hit.map(|i| d.entries[i].1.clone())
    }

    /// Every entry, in order.
    pub fn entries(&self) -> Vec<(String, std::sync::Arc<str>)> {
        self.read().entries.clone()
    }

    pub fn values(&self) -> Vec<std::sync::Arc<str>> {
        self.read().entries.iter().map(|(_, v)| v.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `add map`: a new entry at the end.
    pub fn add(&self, key: &str, value: &str) -> Result<(), String> {
        let mut d = self.write();
        d.entries.push((key.to_string(), value.into()));
        let i = d.entries.len() - 1;
        if let Err(e) = d.index_last(self.method, i) {
            // A bad regular expression: the map stays as it was.
            d.entries.pop();
            return Err(e);
        }
        Ok(())
    }

    /// `set map`: every entry with this key gets the value; `false` when there is none.
    pub fn set(&self, key: &str, value: &str) -> bool {
        let mut d = self.write();
        let mut found = false;
        for (_, v) in d.entries.iter_mut().filter(|(k, _)| k == key) {
            *v = value.into();
            found = true;
        }
        found
    }

    /// `del map`: removes every entry with this key; `false` when there was none.
    pub fn remove(&self, key: &str) -> bool {
        let mut d = self.write();
        let before = d.entries.len();
        d.entries.retain(|(k, _)| k != key);
        let gone = d.entries.len() != before;
        if gone {
            let _ = d.index(self.method);
        }
        gone
    }

    /// `clear map`: no entries.
    pub fn clear(&self) {
        let mut d = self.write();
        d.entries.clear();
        let _ = d.index(self.method);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(method: Method, icase: bool, pats: &[&str]) -> Matcher {
        let p: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
        Matcher::new(method, icase, &p).unwrap()
    }
    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    #[test]
    fn string_methods() {
        assert!(m(Method::Str, false, &["a.test"]).matches(&s("a.test")));
        assert!(!m(Method::Str, false, &["a.test"]).matches(&s("A.test")));
        assert!(m(Method::Str, true, &["a.TEST"]).matches(&s("A.test")));
        assert!(m(Method::Beg, false, &["/api"]).matches(&s("/api/v1")));
        assert!(m(Method::End, false, &[".test"]).matches(&s("x.test")));
        assert!(m(Method::Sub, false, &["pi/v"]).matches(&s("/api/v1")));
        assert!(m(Method::Reg, true, &["^WWW\\."]).matches(&s("www.a.test")));
        assert!(m(Method::Found, false, &[]).matches(&s("")));
        assert!(!m(Method::Str, false, &[]).matches(&s("x")));
    }

    #[test]
    fn case_insensitive_methods_fold_only_the_values_that_need_it() {
        for method in [
            Method::Str,
            Method::Beg,
            Method::End,
            Method::Sub,
            Method::Dom,
        ] {
            let any_case = m(method, true, &["WWW.Example.test"]);
            let exact = m(method, false, &["WWW.Example.test"]);
            for v in ["www.example.test", "WWW.EXAMPLE.TEST", "www.Example.test"] {
                assert!(any_case.matches(&s(v)), "{method:?} -i ~ {v}");
                assert!(!exact.matches(&s(v)), "{method:?} ~ {v}");
            }
            assert!(!any_case.matches(&s("www.other.test")), "{method:?}");
        }
    }

    #[test]
    fn domain_match_is_haproxys() {
        for (v, p, want) in [
            ("www.example.com", "example.com", true),
            ("example.com", "example.com", true),
            ("example.com.evil.test", "example.com", true),
            ("notexample.com", "example.com", false),
            ("www.example.com", "www", true),
            ("www.example.com", "ww", false),
            ("/img/x.png", "img", true),
            ("a.b", "", false),
            ("www.example.com", ".example.com", true),
            ("example.com:8080", "example.com", true),
            ("www.example.com", "example.com.", true),
            ("a.b", ".", false),
        ] {
            assert_eq!(dom_match(v, p), want, "{v} ~ {p}");
        }
    }

    #[test]
    fn ip_and_int() {
        let ip = m(Method::Ip, false, &["10.0.0.0/8", "2001:db8::1"]);
        assert!(ip.matches(&Value::Ip("10.2.3.4".parse().unwrap())));
        assert!(ip.matches(&Value::Ip("2001:db8::1".parse().unwrap())));
        assert!(!ip.matches(&Value::Ip("11.0.0.1".parse().unwrap())));
        assert!(ip.matches(&s("10.9.9.9")));
        let int = m(Method::Int, false, &["443", "8000:8099", ":10"]);
        for (n, want) in [(443, true), (8050, true), (5, true), (444, false)] {
            assert_eq!(int.matches(&Value::Int(n)), want, "{n}");
        }
        let ops = m(Method::Int, false, &["gt", "10", "eq", "3"]);
        for (n, want) in [(11, true), (10, false), (3, true), (4, false)] {
            assert_eq!(ops.matches(&Value::Int(n)), want, "{n}");
        }
        let le = m(Method::Int, false, &["le", "5"]);
        assert!(le.matches(&Value::Int(5)) && !le.matches(&Value::Int(6)));
        let ver = m(Method::Int, false, &["3.1:3.3"]);
        assert!(ver.matches(&Value::Int(0x0003_0003)));
        assert!(!ver.matches(&Value::Int(0x0003_0000)));
        assert!(Matcher::new(Method::Int, false, &["x".into()]).is_err());
        assert!(Matcher::new(Method::Found, false, &["x".into()]).is_err());
    }

    #[test]
    fn maps() {
        let text = "# comment\n.a.test be_a\nb.test   be_b\nexample.test be_ex\n";
        let dom = Map::from_text("m", text, Method::Dom).unwrap();
        assert_eq!(dom.lookup("www.example.test").as_deref(), Some("be_ex"));
        assert_eq!(dom.lookup("b.test").as_deref(), Some("be_b"));
        assert_eq!(dom.lookup("c.test"), None);
        assert_eq!(
            dom.lookup("x.a.test").as_deref(),
            Some("be_a"),
            "a leading dot in a key is ignored"
        );
        let exact = Map::from_text("m", text, Method::Str).unwrap();
        assert_eq!(exact.lookup("b.test").as_deref(), Some("be_b"));
        assert_eq!(exact.lookup("x.b.test"), None);
        let end = Map::from_text("m", text, Method::End).unwrap();
        assert_eq!(end.lookup("x.a.test").as_deref(), Some("be_a"));
        let err = Map::from_text("m", "lonely\n", Method::Str).unwrap_err();
        assert!(err.contains("m:1"), "{err}");
    }

    /// The lookup the map did before its indexes: the first entry that matches, in order.
    fn walk_map(map: &Map, key: &str) -> Option<std::sync::Arc<str>> {
        let entries = map.entries();
        let hit = entries.iter().position(|(k, _)| match map.method {
            Method::Str => key == k,
            Method::Beg => key.starts_with(k.as_str()),
            Method::End => key.ends_with(k.as_str()),
            Method::Sub => key.contains(k.as_str()),
            Method::Dom => dom_match(key, k),
            _ => unreachable!(),
        });
        hit.map(|i| entries[i].1.clone())
    }

    #[test]
    fn map_lookups_find_what_a_walk_finds_through_runtime_changes() {
        use crate::rules::index::tests::Rng;
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        for method in [
            Method::Str,
            Method::Beg,
            Method::End,
            Method::Sub,
            Method::Dom,
        ] {
            for _ in 0..30 {
                // Values are unique per `add` and `set`, so equal values mean the same entry.
                let mut serial = 0;
                let mut text = String::new();
                for _ in 0..rng.below(30) {
                    serial += 1;
                    text.push_str(&format!("{} v{serial}\n", rng.key()));
                }
                let map = Map::from_text("m", &text, method).unwrap();
                for _ in 0..40 {
                    let keys: Vec<String> = map.entries().into_iter().map(|(k, _)| k).collect();
                    let some_key = |rng: &mut Rng| match keys.len() {
                        0 => rng.key(),
                        n => keys[rng.below(n)].clone(),
                    };
                    serial += 1;
                    match rng.below(10) {
                        0..=3 => map.add(&rng.key(), &format!("v{serial}")).unwrap(),
                        4 => map.add(&some_key(&mut rng), &format!("v{serial}")).unwrap(),
                        5 | 6 => {
                            map.remove(&some_key(&mut rng));
                        }
                        7 | 8 => {
                            map.set(&some_key(&mut rng), &format!("v{serial}"));
                        }
                        _ => {
                            if rng.below(4) == 0 {
                                map.clear();
                            }
                        }
                    }
                    let keys: Vec<String> = map.entries().into_iter().map(|(k, _)| k).collect();
                    for _ in 0..20 {
                        let v = rng.value(&keys);
                        let want = walk_map(&map, &v);
                        assert_eq!(map.lookup(&v), want, "{method:?} {v:?}");
                        // The lookup may have walked a small map: the index must agree too.
                        let d = map.read();
                        if let Some(ix) = &d.keys {
                            let hit = ix.lookup(&d.entries[..], &v);
                            let got = hit.map(|i| d.entries[i].1.clone());
                            assert_eq!(got, want, "{method:?} {v:?} by index");
                        }
                    }
                }
            }
        }
    }

    /// What a list's test did before its indexes: walk the (folded) patterns.
    fn walk_list(method: Method, icase: bool, pats: &[String], v: &str) -> bool {
        let fold = |t: &str| {
            if icase {
                t.to_ascii_lowercase()
            } else {
                t.to_string()
            }
        };
        let v = fold(v);
        pats.iter().map(|p| fold(p)).any(|p| match method {
            Method::Str => v == p,
            Method::Beg => v.starts_with(p.as_str()),
            Method::End => v.ends_with(p.as_str()),
            Method::Sub => v.contains(p.as_str()),
            Method::Dom => dom_match(&v, &p),
            _ => unreachable!(),
        })
    }

    #[test]
    fn acl_lists_match_what_a_walk_matches_through_add_and_del_acl() {
        use crate::rules::index::tests::Rng;
        let mut rng = Rng(0xda94_2042_e4dd_58b5);
        for method in [
            Method::Str,
            Method::Beg,
            Method::End,
            Method::Sub,
            Method::Dom,
        ] {
            for icase in [false, true] {
                for _ in 0..20 {
                    let pats: Vec<String> = (0..rng.below(20)).map(|_| rng.word(4)).collect();
                    let acl = Matcher::new(method, icase, &pats).unwrap();
                    for _ in 0..30 {
                        // As `add acl` and `del acl` do.
                        let mut pats = acl.shared.patterns();
                        if !pats.is_empty() && rng.below(3) == 0 {
                            let gone = pats[rng.below(pats.len())].clone();
                            pats.retain(|p| *p != gone);
                        } else {
                            pats.push(rng.word(4));
                        }
                        acl.shared.set(pats.clone()).unwrap();
                        for _ in 0..20 {
                            let v = rng.value(&pats);
                            let want = walk_list(method, icase, &pats, &v);
                            assert_eq!(
                                acl.matches(&s(&v)),
                                want,
                                "{method:?} -i {icase} {v:?} in {pats:?}"
                            );
                            let lists = acl.shared.lists.read().unwrap();
                            if let Patterns::Beg(l) | Patterns::End(l) | Patterns::Dom(l) = &lists.1
                            {
                                let folded = if icase { v.to_ascii_lowercase() } else { v };
                                assert_eq!(
                                    l.matches_by_index(&folded),
                                    want,
                                    "{method:?} by index"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
