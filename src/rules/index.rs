//! An index for the list-based string matches `beg`, `end` and `dom` of ACL pattern lists and maps.
//!
//! HAProxy walks such a list in order and takes the first pattern that matches the value; at 100 000
//! map lines that walk costs milliseconds per lookup. The index gives the same answer without the
//! walk: it knows, for each distinct key, the first position holding it, and it looks up every part
//! of the value that could equal a key — each prefix (`beg`), each suffix (`end`), each run bounded
//! by delimiters or the ends (`dom`) — keeping the smallest position found. A value has few such
//! parts, and only the parts as long as some key are looked up.
//!
//! A short list, or a long value with many delimiters, is cheaper to walk than to take apart (a
//! `hdr_dom(host)` with one pattern and a Host header of 4000 labels): [`KeyIndex::first_match`]
//! estimates both and walks when walking is cheaper. Both give the same answer.
//!
//! Keys are hashed with a polynomial fingerprint modulo 2⁶¹−1, so a part's fingerprint grows by one
//! byte at a time as the part is extended, and the index holds no copy of the keys: a fingerprint
//! hit is confirmed against the key itself. Different keys with one fingerprint are rare (for two
//! keys of n bytes, n chances in 2⁶¹) but handled.

use super::pattern::dom_match;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Which parts of a value a key must equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A prefix (`-m beg`, `map_beg`).
    Beg,
    /// A suffix (`-m end`, `map_end`).
    End,
    /// A run of the value with a delimiter or an end on each side (`-m dom`, `map_dom`); keys are
    /// compared without their leading and trailing delimiters. See [`super::pattern::dom_match`].
    Dom,
}

/// The keys an index refers to by position: an ACL's patterns or a map's entries.
pub trait Keys {
    fn key(&self, i: usize) -> &str;
    fn count(&self) -> usize;
}

impl Keys for [String] {
    fn key(&self, i: usize) -> &str {
        &self[i]
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl<V> Keys for [(String, V)] {
    fn key(&self, i: usize) -> &str {
        &self[i].0
    }
    fn count(&self) -> usize {
        self.len()
    }
}

/// HAProxy's `dom` delimiters (`pat_match_dom`): `/`, `?`, `.`, `:`.
pub fn is_dom_delim(b: u8) -> bool {
    matches!(b, b'.' | b'/' | b'?' | b':')
}

/// The positions of keys by fingerprint, for one list of keys.
#[derive(Debug, Clone)]
pub struct KeyIndex {
    kind: Kind,
    /// The fingerprint's base, random per index so that no fixed set of keys collides everywhere.
    base: u64,
    /// Fingerprint → the first position holding a key with that fingerprint.
    first: HashMap<u64, usize, BuildHasherDefault<FpHasher>>,
    /// For a fingerprint that several different keys share: the first position of each key but the
    /// one in `first`. Almost always empty.
    clashes: HashMap<u64, Vec<usize>, BuildHasherDefault<FpHasher>>,
    /// Bit `n` is set when some key is `n` bytes long: parts of other lengths are not looked up.
    lengths: Vec<u64>,
    /// The longest key, which bounds how far a part is extended.
    max_len: usize,
    /// Fingerprint bits kept: all but in tests, which keep few to make different keys collide.
    mask: u64,
}

const P: u64 = (1 << 61) - 1;

/// Appends byte `b` to a fingerprint: `h·base + b mod 2⁶¹−1`.
fn step(h: u64, base: u64, b: u8) -> u64 {
    let x = u128::from(h) * u128::from(base) + u128::from(b);
    let r = (x as u64 & P) + (x >> 61) as u64;
    let r = (r & P) + (r >> 61);
    if r >= P { r - P } else { r }
}

/// Fingerprints start at 1, so leading zero bytes still count.
const EMPTY: u64 = 1;

/// How many bytes a walk compares in the time the index grows a fingerprint by one byte and looks
/// it up (a walk's `find` compares many bytes per instruction; a step is a 128-bit multiplication).
const WALK_BYTES_PER_STEP: usize = 16;

impl KeyIndex {
    pub fn new(kind: Kind) -> KeyIndex {
        // Any base in [2¹⁶, P) will do; RandomState is std's per-process random seed.
        let r = std::collections::hash_map::RandomState::new().hash_one(0x6761_7465_686f_7573_u64);
        KeyIndex {
            kind,
            base: (1 << 16) + r % (P - (1 << 16)),
            first: HashMap::default(),
            clashes: HashMap::default(),
            lengths: Vec::new(),
            max_len: 0,
            mask: u64::MAX,
        }
    }

    /// An index of `keys[0..n]`.
    pub fn build<K: Keys + ?Sized>(kind: Kind, keys: &K, n: usize) -> KeyIndex {
        let mut ix = KeyIndex::new(kind);
        ix.rebuild(keys, n);
        ix
    }

    /// Forgets everything and indexes `keys[0..n]` (after a removal shifted the positions).
    pub fn rebuild<K: Keys + ?Sized>(&mut self, keys: &K, n: usize) {
        self.first.clear();
        self.clashes.clear();
        self.lengths.clear();
        self.max_len = 0;
        self.first.reserve(n);
        for i in 0..n {
            self.push(keys, i);
        }
    }

    /// The part of a key that must appear in the value.
    fn indexed<'k>(&self, key: &'k str) -> &'k [u8] {
        indexed(self.kind, key)
    }

    fn fingerprint(&self, part: &[u8]) -> u64 {
        let h = match self.kind {
            Kind::End => part.iter().rev().fold(EMPTY, |h, &b| step(h, self.base, b)),
            Kind::Beg | Kind::Dom => part.iter().fold(EMPTY, |h, &b| step(h, self.base, b)),
        };
        h & self.mask
    }

    /// Indexes `keys[i]`, which comes after every key indexed so far (so an earlier equal key wins).
    pub fn push<K: Keys + ?Sized>(&mut self, keys: &K, i: usize) {
        let key = self.indexed(keys.key(i));
        if self.kind == Kind::Dom && key.is_empty() {
            // An empty `dom` pattern matches nothing (`dom_match`).
            return;
        }
        let fp = self.fingerprint(key);
        match self.first.get(&fp).copied() {
            None => {
                self.first.insert(fp, i);
            }
            Some(j) if self.indexed(keys.key(j)) == key => {}
            Some(_) => {
                let kind = self.kind;
                let others = self.clashes.entry(fp).or_default();
                if !others.iter().any(|&o| indexed(kind, keys.key(o)) == key) {
                    others.push(i);
                }
            }
        }
        let n = key.len();
        let word = n / 64;
        if self.lengths.len() <= word {
            self.lengths.resize(word + 1, 0);
        }
        self.lengths[word] |= 1 << (n % 64);
        self.max_len = self.max_len.max(n);
    }

    fn has_len(&self, n: usize) -> bool {
        self.lengths
            .get(n / 64)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// The first position whose key is exactly `part`, given `part`'s fingerprint.
    fn find<K: Keys + ?Sized>(&self, keys: &K, h: u64, part: &[u8]) -> Option<usize> {
        let fp = h & self.mask;
        let &i = self.first.get(&fp)?;
        if self.indexed(keys.key(i)) == part {
            return Some(i);
        }
        self.clashes
            .get(&fp)?
            .iter()
            .copied()
            .find(|&j| self.indexed(keys.key(j)) == part)
    }

    /// Keeps in `best` the first position whose key is `part`, if any key is as long.
    fn probe<K: Keys + ?Sized>(&self, keys: &K, h: u64, part: &[u8], best: &mut Option<usize>) {
        if self.has_len(part.len())
            && let Some(i) = self.find(keys, h, part)
        {
            *best = Some(best.map_or(i, |b| b.min(i)));
        }
    }

    /// The first position (in list order) of `keys` (the keys indexed) whose key matches `value`;
    /// `None` when no key matches. Walks the keys when that looks cheaper than the index.
    pub fn first_match<K: Keys + ?Sized>(&self, keys: &K, value: &str) -> Option<usize> {
        let v = value.as_bytes();
        let longest = v.len().min(self.max_len);
        let steps = match self.kind {
            Kind::Beg | Kind::End => longest,
            Kind::Dom => dom_starts(v).count() * longest,
        };
        let walk_bytes = keys.count().saturating_mul(v.len());
        if walk_bytes <= steps.saturating_mul(WALK_BYTES_PER_STEP) {
            self.walk(keys, value)
        } else {
            self.lookup(keys, value)
        }
    }

    /// The first matching key, found by testing each in order, as HAProxy does.
    pub(crate) fn walk<K: Keys + ?Sized>(&self, keys: &K, value: &str) -> Option<usize> {
        (0..keys.count()).find(|&i| {
            let k = keys.key(i);
            match self.kind {
                Kind::Beg => value.starts_with(k),
                Kind::End => value.ends_with(k),
                Kind::Dom => dom_match(value, k),
            }
        })
    }

    /// The first matching key, found through the index.
    pub(crate) fn lookup<K: Keys + ?Sized>(&self, keys: &K, value: &str) -> Option<usize> {
        let v = value.as_bytes();
        let mut best = None;
        let longest = v.len().min(self.max_len);
        match self.kind {
            Kind::Beg => {
                let mut h = EMPTY;
                self.probe(keys, h, &[], &mut best);
                for n in 1..=longest {
                    h = step(h, self.base, v[n - 1]);
                    self.probe(keys, h, &v[..n], &mut best);
                }
            }
            Kind::End => {
                let mut h = EMPTY;
                self.probe(keys, h, &[], &mut best);
                for n in 1..=longest {
                    h = step(h, self.base, v[v.len() - n]);
                    self.probe(keys, h, &v[v.len() - n..], &mut best);
                }
            }
            Kind::Dom => {
                // A part ends at the value's end or before a delimiter, and neither starts nor ends
                // with a delimiter (keys are trimmed of them).
                for start in dom_starts(v) {
                    let mut h = EMPTY;
                    for end in start..v.len().min(start + self.max_len) {
                        h = step(h, self.base, v[end]);
                        let bounded = end + 1 == v.len() || is_dom_delim(v[end + 1]);
                        if bounded && !is_dom_delim(v[end]) {
                            self.probe(keys, h, &v[start..=end], &mut best);
                        }
                    }
                }
            }
        }
        best
    }
}

/// Where a `dom` part may start: at the value's start or after a delimiter, on a non-delimiter.
fn dom_starts(v: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..v.len()).filter(|&i| !is_dom_delim(v[i]) && (i == 0 || is_dom_delim(v[i - 1])))
}

/// The part of a key that must appear in the value: for `dom`, the key without its leading and
/// trailing delimiters.
fn indexed(kind: Kind, key: &str) -> &[u8] {
    let b = key.as_bytes();
    match kind {
        Kind::Beg | Kind::End => b,
        Kind::Dom => {
            let start = b.iter().position(|&c| !is_dom_delim(c)).unwrap_or(b.len());
            let end = b
                .iter()
                .rposition(|&c| !is_dom_delim(c))
                .map_or(start, |e| e + 1);
            &b[start..end]
        }
    }
}

/// A fingerprint is already a uniform 61-bit number: the table only needs it spread over all 64
/// bits (hashbrown takes the bucket from the low bits and a tag from the top seven).
#[derive(Default)]
struct FpHasher(u64);

impl Hasher for FpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// A pattern list with its index: the `beg`, `end` and `dom` lists of an ACL.
#[derive(Debug, Clone)]
pub struct IndexedList {
    pats: Vec<String>,
    index: KeyIndex,
}

impl IndexedList {
    pub fn new(kind: Kind, pats: Vec<String>) -> IndexedList {
        let index = KeyIndex::build(kind, &pats[..], pats.len());
        IndexedList { pats, index }
    }

    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }

    pub fn matches(&self, value: &str) -> bool {
        self.index.first_match(&self.pats[..], value).is_some()
    }

    /// Whether the index (not the walk) finds a match: for tests of the index after changes.
    #[cfg(test)]
    pub(crate) fn matches_by_index(&self, value: &str) -> bool {
        self.index.lookup(&self.pats[..], value).is_some()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rules::pattern::dom_match;

    /// xorshift64: deterministic, no dependency.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A short string over few letters, every delimiter, an upper-case letter and a two-byte
        /// one, so that random keys and values often match each other.
        pub(crate) fn word(&mut self, max: usize) -> String {
            const CHARS: [char; 10] = ['a', 'b', 'a', 'b', '.', '/', ':', '?', 'é', 'A'];
            let n = self.below(max + 1);
            (0..n).map(|_| CHARS[self.below(CHARS.len())]).collect()
        }

        /// A map key: not empty.
        pub(crate) fn key(&mut self) -> String {
            loop {
                let w = self.word(4);
                if !w.is_empty() {
                    return w;
                }
            }
        }

        /// A value: random, or keys (and random words) joined by random delimiters.
        pub(crate) fn value(&mut self, keys: &[String]) -> String {
            if keys.is_empty() || self.below(3) == 0 {
                return self.word(10);
            }
            let mut v = String::new();
            for _ in 0..1 + self.below(4) {
                if self.below(3) == 0 {
                    v.push_str(&self.word(3));
                } else {
                    v.push_str(&keys[self.below(keys.len())]);
                }
                if self.below(4) != 0 {
                    v.push(['.', '/', ':', '?', 'a'][self.below(5)]);
                }
            }
            v
        }
    }

    /// The walk the index replaces: the first key that matches, in order.
    fn walk(kind: Kind, keys: &[String], v: &str) -> Option<usize> {
        keys.iter().position(|k| match kind {
            Kind::Beg => v.starts_with(k.as_str()),
            Kind::End => v.ends_with(k.as_str()),
            Kind::Dom => dom_match(v, k),
        })
    }

    /// Random lists, grown one key at a time and shrunk by removals, checked against the walk
    /// after each change; `mask` keeps few fingerprint bits so that different keys share them.
    fn check_against_walk(kind: Kind, mask: u64, seed: u64) {
        let mut rng = Rng(seed);
        for _ in 0..40 {
            let mut keys: Vec<String> = Vec::new();
            let mut ix = KeyIndex::new(kind);
            ix.mask = mask;
            for _ in 0..60 {
                if !keys.is_empty() && rng.below(5) == 0 {
                    let gone = keys[rng.below(keys.len())].clone();
                    keys.retain(|k| *k != gone);
                    ix.rebuild(&keys[..], keys.len());
                } else {
                    keys.push(rng.word(4));
                    ix.push(&keys[..], keys.len() - 1);
                }
                for _ in 0..20 {
                    let v = rng.value(&keys);
                    let want = walk(kind, &keys, &v);
                    assert_eq!(ix.lookup(&keys[..], &v), want, "{kind:?} {v:?} in {keys:?}");
                    assert_eq!(ix.walk(&keys[..], &v), want, "{kind:?} {v:?} in {keys:?}");
                    assert_eq!(ix.first_match(&keys[..], &v), want, "{kind:?} {v:?}");
                }
            }
        }
    }

    #[test]
    fn finds_what_the_walk_finds() {
        for kind in [Kind::Beg, Kind::End, Kind::Dom] {
            check_against_walk(kind, u64::MAX, 0x9e37_79b9_7f4a_7c15);
        }
    }

    #[test]
    fn finds_what_the_walk_finds_when_fingerprints_clash() {
        for kind in [Kind::Beg, Kind::End, Kind::Dom] {
            for mask in [0, 0b11] {
                check_against_walk(kind, mask, 0x2545_f491_4f6c_dd1d);
            }
        }
    }

    #[test]
    fn first_key_in_order_wins() {
        let keys: Vec<String> = ["test", "example.test", "www.example.test", ".example.test"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let dom = KeyIndex::build(Kind::Dom, &keys[..], keys.len());
        assert_eq!(dom.lookup(&keys[..], "www.example.test"), Some(0));
        assert_eq!(dom.lookup(&keys[..], "example.test:443"), Some(0));
        assert_eq!(dom.lookup(&keys[..], "example.testing"), None);
        let end = KeyIndex::build(Kind::End, &keys[1..], 3);
        assert_eq!(end.lookup(&keys[1..], "www.example.test"), Some(0));
        assert_eq!(end.lookup(&keys[1..], "xexample.test"), Some(0));
        let beg = KeyIndex::build(Kind::Beg, &keys[..], keys.len());
        assert_eq!(beg.lookup(&keys[..], "testing"), Some(0));
        assert_eq!(beg.lookup(&keys[..], "www.example.test.x"), Some(2));
    }

    #[test]
    fn empty_keys() {
        let keys = [String::new(), ".".to_string()];
        for (kind, want) in [
            (Kind::Beg, Some(0)),
            (Kind::End, Some(0)),
            (Kind::Dom, None),
        ] {
            let ix = KeyIndex::build(kind, &keys[..], 2);
            assert_eq!(ix.lookup(&keys[..], "a.b"), want, "{kind:?}");
            assert_eq!(ix.lookup(&keys[..], ""), want, "{kind:?}");
        }
    }

    #[test]
    fn step_reduces_modulo_the_prime() {
        assert_eq!(step(P - 1, P - 1, 0), 1);
        assert_eq!(step(P - 1, 2, 2), 0);
        assert!(step(P - 1, P - 1, 255) < P);
    }
}
