//! Rules: HAProxy's ACLs and conditions, and the sample expressions routing uses.
//!
//! `acl NAME CRITERION [-i] [-m METHOD] [-f FILE] [--] PATTERN…` defines (or extends: several lines
//! with one name are ORed) a named test; `if`/`unless` conditions combine them with implicit AND,
//! `||` (or `or`) and `!`, and `{ … }` holds an anonymous ACL inline. This module is pure: it parses
//! words handed over by the config layer and evaluates against [`sample::Facts`].

pub mod cli;
pub mod index;
pub mod pattern;
pub mod sample;

use std::sync::Arc;

use pattern::{Map, Matcher, Method};
use sample::{Facts, Fetch};

/// One ACL line (or anonymous ACL): a criterion and its patterns.
#[derive(Debug, Clone)]
pub struct AclTest {
    pub fetch: Fetch,
    pub matcher: Matcher,
}

impl AclTest {
    pub fn eval(&self, f: &Facts<'_>) -> bool {
        self.fetch.values(f).iter().any(|v| self.matcher.matches(v))
    }
}

/// A named ACL: its lines, ORed.
#[derive(Debug, Clone)]
pub struct Acl {
    pub name: String,
    pub tests: Vec<AclTest>,
}

impl Acl {
    pub fn eval(&self, f: &Facts<'_>) -> bool {
        self.tests.iter().any(|t| t.eval(f))
    }
    pub fn needs_content(&self) -> bool {
        self.tests.iter().any(|t| t.fetch.needs_content())
    }
    pub fn needs_handshake(&self) -> bool {
        self.tests.iter().any(|t| t.fetch.needs_handshake())
    }
}

/// The criteria an ACL may test: a fetch, its argument, and the match method it implies.
fn criterion(word: &str) -> Result<(Fetch, Method), String> {
    let (name, arg) = match word.split_once('(') {
        Some((n, rest)) => (
            n,
            Some(
                rest.strip_suffix(')')
                    .ok_or_else(|| format!("'{word}': expected ')' at the end"))?,
            ),
        ),
        None => (word, None),
    };
    let hdr = |m: Method| -> Result<(Fetch, Method), String> {
        Ok((Fetch::parse("hdr", Some(arg.unwrap_or("")))?, m))
    };
    let path = |m: Method| -> Result<(Fetch, Method), String> {
        if arg.is_some() {
            return Err(format!("'{name}' takes no argument"));
        }
        Ok((Fetch::Path, m))
    };
    Ok(match name {
        "hdr_beg" => hdr(Method::Beg)?,
        "hdr_end" => hdr(Method::End)?,
        "hdr_sub" => hdr(Method::Sub)?,
        "hdr_reg" => hdr(Method::Reg)?,
        "hdr_dom" => hdr(Method::Dom)?,
        "hdr_ip" => hdr(Method::Ip)?,
        "path_beg" => path(Method::Beg)?,
        "path_end" => path(Method::End)?,
        "path_sub" => path(Method::Sub)?,
        "path_reg" => path(Method::Reg)?,
        "path_dom" => path(Method::Dom)?,
        _ => {
            let fetch = Fetch::parse(name, arg)?;
            let method = match fetch {
                Fetch::SslHelloType
                | Fetch::SslVer
                | Fetch::SrcPort
                | Fetch::DstPort
                | Fetch::ReqLen
                | Fetch::Sc(..)
                | Fetch::SrcTable(..) => Method::Int,
                Fetch::SslEch | Fetch::SslFc | Fetch::SslCUsed | Fetch::Const(_) => Method::Bool,
                Fetch::Src | Fetch::Dst => Method::Ip,
                _ => Method::Str,
            };
            (fetch, method)
        }
    })
}

/// Parses `CRITERION [flags] [--] PATTERN…` (the words after `acl NAME`, or inside `{ }`).
/// `read_file` reads `-f` pattern files; `load_map` is unused here but kept for symmetry.
pub fn parse_test(
    words: &[String],
    read_file: &mut dyn FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<AclTest, String> {
    let Some(first) = words.first() else {
        return Err("missing criterion; write e.g. 'req.ssl_sni -i example.test'".into());
    };
    let (fetch, mut method) = criterion(first)?;
    let mut icase = false;
    let mut pats = Vec::new();
    let mut files = Vec::new();
    let mut i = 1;
    while i < words.len() {
        let w = words[i].as_str();
        match w {
            "-i" => icase = true,
            "-n" | "-u" => {}
            "-m" => {
                i += 1;
                let m = words
                    .get(i)
                    .ok_or("'-m' needs a method; write e.g. '-m dom'")?;
                method = Method::parse(m)?;
            }
            "-f" => {
                i += 1;
                let f = words.get(i).ok_or("'-f' needs a file; write '-f FILE'")?;
                pats.extend(read_file(f)?);
                files.push(f.clone());
            }
            "--" => {
                pats.extend(words[i + 1..].iter().cloned());
                break;
            }
            w if w.starts_with('-') && w.len() > 1 && !matches!(method, Method::Int) => {
                return Err(format!(
                    "unknown ACL flag '{w}'; use -i, -m METHOD, -f FILE, or '--' before a pattern that starts with '-'"
                ));
            }
            _ => pats.push(w.to_string()),
        }
        i += 1;
    }
    // With no patterns, a string criterion means "present" (HAProxy needs -m found for that; we
    // accept the obvious reading of `acl has_sni req.ssl_sni -m found` only, to stay compatible).
    let matcher = Matcher::with_files(method, icase, &pats, files)?;
    Ok(AclTest { fetch, matcher })
}

/// An `if`/`unless` condition: OR of AND-terms of (negated?) ACL references.
#[derive(Debug, Clone)]
pub struct Cond {
    pub unless: bool,
    pub any_of: Vec<Vec<(bool, usize)>>,
}

impl Cond {
    pub fn eval(&self, acls: &[Acl], f: &Facts<'_>) -> bool {
        let hit = self.any_of.iter().any(|and| {
            and.iter()
                .all(|&(neg, i)| acls.get(i).is_some_and(|a| a.eval(f)) != neg)
        });
        hit != self.unless
    }

    pub fn needs_content(&self, acls: &[Acl]) -> bool {
        self.any_of
            .iter()
            .flatten()
            .any(|&(_, i)| acls.get(i).is_some_and(Acl::needs_content))
    }

    pub fn needs_handshake(&self, acls: &[Acl]) -> bool {
        self.any_of
            .iter()
            .flatten()
            .any(|&(_, i)| acls.get(i).is_some_and(Acl::needs_handshake))
    }
}

/// ACLs every proxy knows without defining them.
pub fn predefined(name: &str) -> Option<AclTest> {
    let t = |fetch, method, pats: &[&str]| {
        let p: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
        AclTest {
            fetch,
            matcher: Matcher::new(method, false, &p).expect("predefined patterns are valid"),
        }
    };
    Some(match name {
        "TRUE" => t(Fetch::Const(true), Method::Bool, &[]),
        "FALSE" => t(Fetch::Const(false), Method::Bool, &[]),
        "LOCALHOST" => t(Fetch::Src, Method::Ip, &["127.0.0.0/8", "::1"]),
        "REQ_CONTENT" => t(Fetch::ReqLen, Method::Int, &["1:"]),
        _ => return None,
    })
}

/// Parses the words after `if`/`unless` (the keyword included) into a condition, adding anonymous
/// ACLs to `acls` and resolving names through `lookup` (which may add predefined ACLs).
pub fn parse_cond(
    words: &[String],
    acls: &mut Vec<Acl>,
    read_file: &mut dyn FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Cond, String> {
    let unless = match words.first().map(String::as_str) {
        Some("if") => false,
        Some("unless") => true,
        _ => return Err("a condition starts with 'if' or 'unless'".into()),
    };
    let mut any_of = vec![Vec::new()];
    let mut i = 1;
    while i < words.len() {
        let w = words[i].as_str();
        if w == "||" || w == "or" {
            if any_of.last().is_some_and(Vec::is_empty) {
                return Err(format!("'{w}' needs an ACL on each side"));
            }
            any_of.push(Vec::new());
            i += 1;
            continue;
        }
        let (neg, w) = match w.strip_prefix('!') {
            Some("") => {
                i += 1;
                let next = words.get(i).ok_or("'!' needs an ACL after it")?;
                (true, next.as_str())
            }
            Some(rest) => (true, rest),
            None => (false, w),
        };
        let idx = if w == "{" {
            let close = words[i + 1..]
                .iter()
                .position(|x| x == "}")
                .ok_or("'{' without '}'; anonymous ACLs are written '{ CRITERION PATTERN… }' with spaces around the braces")?;
            let test = parse_test(&words[i + 1..i + 1 + close], read_file)?;
            acls.push(Acl {
                name: String::new(),
                tests: vec![test],
            });
            i += close + 1;
            acls.len() - 1
        } else if w.starts_with('{') {
            return Err(format!(
                "'{w}': put a space after '{{' (write '{{ req.ssl_sni -i example.test }}')"
            ));
        } else {
            match acls.iter().position(|a| a.name == w) {
                Some(j) => j,
                None => match predefined(w) {
                    Some(t) => {
                        acls.push(Acl {
                            name: w.to_string(),
                            tests: vec![t],
                        });
                        acls.len() - 1
                    }
                    None => {
                        return Err(format!(
                            "no ACL named '{w}' in this section; define it first with 'acl {w} CRITERION PATTERN…'"
                        ));
                    }
                },
            }
        };
        any_of.last_mut().expect("never empty").push((neg, idx));
        i += 1;
    }
    if any_of.iter().any(Vec::is_empty) {
        return Err("the condition is empty or ends with '||'; name at least one ACL".into());
    }
    Ok(Cond { unless, any_of })
}

/// Adds a line to a named ACL (several lines with one name are ORed).
pub fn define(acls: &mut Vec<Acl>, name: &str, test: AclTest) {
    match acls.iter_mut().find(|a| a.name == name) {
        Some(a) => a.tests.push(test),
        None => acls.push(Acl {
            name: name.to_string(),
            tests: vec![test],
        }),
    }
}

/// A map file loader that shares one copy per (file, method).
#[derive(Debug, Clone, Default)]
pub struct MapCache {
    maps: Vec<Arc<Map>>,
    methods: Vec<Method>,
}

impl MapCache {
    /// Every map loaded, in the order first used.
    pub fn all(&self) -> Vec<Arc<Map>> {
        self.maps.clone()
    }

    pub fn load(&mut self, path: &str, method: Method) -> Result<Arc<Map>, String> {
        if let Some(i) = self
            .maps
            .iter()
            .zip(&self.methods)
            .position(|(m, k)| m.path == path && *k == method)
        {
            return Ok(self.maps[i].clone());
        }
        let m = Arc::new(Map::load(path, method)?);
        self.maps.push(m.clone());
        self.methods.push(method);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::http::Request;
    use crate::classify::tls::ClientHello;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }
    fn no_files(f: &str) -> Result<Vec<String>, String> {
        Err(format!("no file {f}"))
    }
    fn facts<'a>(hello: Option<&'a ClientHello>, http: Option<&'a Request>) -> Facts<'a> {
        Facts {
            client: "10.0.0.2:40000".parse().unwrap(),
            dst: "192.0.2.9:443".parse().unwrap(),
            hello,
            http,
            peeked: 100,
            raw: &[],
            stick: None,
            res: None,
            tls: None,
        }
    }

    #[test]
    fn acls_and_conditions() {
        let mut acls = Vec::new();
        let mut nf = no_files;
        define(
            &mut acls,
            "is_a",
            parse_test(&words("req.ssl_sni -i A.test"), &mut nf).unwrap(),
        );
        define(
            &mut acls,
            "is_a",
            parse_test(&words("req.ssl_sni -m end .a.test"), &mut nf).unwrap(),
        );
        define(
            &mut acls,
            "h2",
            parse_test(&words("req.ssl_alpn h2"), &mut nf).unwrap(),
        );
        define(
            &mut acls,
            "https",
            parse_test(&words("dst_port 443"), &mut nf).unwrap(),
        );
        let hello = ClientHello {
            sni: Some("www.a.test".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
            ..Default::default()
        };
        let f = facts(Some(&hello), None);
        let mut c = |s: &str, acls: &mut Vec<Acl>| parse_cond(&words(s), acls, &mut nf).unwrap();
        for (cond, want) in [
            ("if is_a", true),
            ("unless is_a", false),
            ("if is_a h2 https", true),
            ("if !is_a || h2", true),
            ("if ! is_a", false),
            ("if !h2 || !https", false),
            ("if { req.ssl_sni -m dom a.test } https", true),
            ("if { src 10.0.0.0/8 } { req.ssl_ver 0:3.2 }", true),
            ("if TRUE !FALSE", true),
            ("if REQ_CONTENT", true),
            ("if { req.ssl_sni -m found }", true),
            ("if { hdr(host) -m found }", false),
        ] {
            let cond = c(cond, &mut acls);
            assert_eq!(cond.eval(&acls, &f), want, "{cond:?}");
        }
        for bad in [
            "if nosuch",
            "if is_a ||",
            "if { req.ssl_sni x",
            "if {req.ssl_sni x }",
            "when is_a",
            "if",
        ] {
            assert!(
                parse_cond(&words(bad), &mut acls, &mut nf).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn tls_fetches_after_a_handshake() {
        let mut acls = Vec::new();
        let mut nf = no_files;
        let info = crate::tls::Info {
            sni: Some("a.test".into()),
            alpn: Some("h2".into()),
            client_cert: true,
            client_dn: Some("/O=gatehouse tests/CN=client".into()),
            version: Some("TLSv1.3"),
            ..Default::default()
        };
        let mut with = facts(None, None);
        with.tls = Some(&info);
        let without = facts(None, None);
        let mut c = |s: &str, acls: &mut Vec<Acl>| parse_cond(&words(s), acls, &mut nf).unwrap();
        // (condition, after a handshake, on a plain connection)
        for (cond, tls, plain) in [
            // Booleans, as in HAProxy: true without a pattern.
            ("if { ssl_fc }", true, false),
            ("if { ssl_c_used }", true, false),
            ("if !{ ssl_c_used }", false, true),
            ("if { ssl_fc_sni a.test }", true, false),
            ("if { ssl_fc_alpn h2 }", true, false),
            ("if { ssl_fc_protocol TLSv1.3 }", true, false),
            ("if { ssl_c_s_dn -m end /CN=client }", true, false),
            ("if { ssl_c_s_dn -m sub CN=client2 }", false, false),
        ] {
            let cond = c(cond, &mut acls);
            assert_eq!(cond.eval(&acls, &with), tls, "{cond:?}");
            assert_eq!(cond.eval(&acls, &without), plain, "{cond:?} (plain)");
        }
    }

    #[test]
    fn criteria_and_flags() {
        let mut nf = no_files;
        for good in [
            "hdr(host) -i example.test",
            "req.hdr(Host) -m beg www.",
            "hdr_end(host) .test",
            "hdr_reg(user-agent) ^curl/",
            "path_beg /api",
            "path_reg ^/v[0-9]+/",
            "method GET",
            "src 10.0.0.0/8 ::1",
            "dst_port 80 443 8000:8100",
            "req.ssl_hello_type 1",
            "req_ssl_ver 3.1:3.4",
            "req.ssl_ech",
            "req_ssl_sni -m dom example.test",
            "req.ssl_sni -- -weird-",
        ] {
            assert!(parse_test(&words(good), &mut nf).is_ok(), "{good}");
        }
        for bad in [
            "req.ssl_snii x",
            "hdr_beg x",
            "req.ssl_sni -m nope x",
            "req.ssl_sni -x y",
            "src notanip",
            "req.ssl_sni -f /nonexistent",
        ] {
            assert!(parse_test(&words(bad), &mut nf).is_err(), "{bad}");
        }
        let mut files = |f: &str| -> Result<Vec<String>, String> {
            assert_eq!(f, "names.lst");
            Ok(vec!["a.test".into(), "b.test".into()])
        };
        let t = parse_test(&words("req.ssl_sni -f names.lst c.test"), &mut files).unwrap();
        let hello = ClientHello {
            sni: Some("b.test".into()),
            ..Default::default()
        };
        assert!(t.eval(&facts(Some(&hello), None)));
    }
}
