//! Samples: what a rule can read about a connection (HAProxy's sample fetches), the converters that
//! transform it (`lower`, `map_dom(FILE,DEFAULT)`, …) and templates such as `be_%[req.ssl_sni,lower]`.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::pattern::{Map, Method};
use crate::classify::http::Request;
use crate::classify::tls::ClientHello;

/// What is known about a connection when rules run.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub client: SocketAddr,
    /// The original destination (the accepted socket's local address).
    pub dst: SocketAddr,
    pub hello: Option<&'a ClientHello>,
    pub http: Option<&'a Request>,
    /// Bytes read from the client so far.
    pub peeked: usize,
    /// Those bytes (for `balance rdp-cookie`).
    pub raw: &'a [u8],
    /// Stick tables and what this session tracks, when the config has tables.
    pub stick: Option<&'a crate::stick::StickCtx<'a>>,
    /// The response's headers (http mode, once a response head arrived).
    pub res: Option<&'a crate::classify::http::Headers>,
    /// What the TLS handshake told, when this bind terminates TLS.
    pub tls: Option<&'a crate::tls::Info>,
}

impl<'a> Facts<'a> {
    /// What is known of a connection before any of its bytes: its two addresses (and the stick
    /// tables, for tracking rules).
    pub fn addresses(
        client: SocketAddr,
        dst: SocketAddr,
        stick: Option<&'a crate::stick::StickCtx<'a>>,
    ) -> Facts<'a> {
        Facts {
            client,
            dst,
            hello: None,
            http: None,
            peeked: 0,
            raw: &[],
            stick,
            res: None,
            tls: None,
        }
    }
}

/// One sample value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Ip(IpAddr),
}

impl Value {
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Int(n) => Cow::Owned(n.to_string()),
            Value::Ip(ip) => Cow::Owned(ip.to_string()),
        }
    }
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Value::Ip(ip) => Some(*ip),
            Value::Str(s) => s.parse().ok(),
            Value::Int(_) => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Str(s) => s.parse().ok(),
            Value::Ip(_) => None,
        }
    }
}

/// A sample fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// `req.ssl_sni`: the server name of the ClientHello, lower-cased.
    SslSni,
    /// `req.ssl_alpn`: each protocol the client offers.
    SslAlpn,
    /// `req.ssl_hello_type`: 1 for a ClientHello.
    SslHelloType,
    /// `req.ssl_ver`: the hello's version as MAJOR << 16 | MINOR (TLS 1.2 = 3.3).
    SslVer,
    /// `req.ssl_ech` (gatehouse): 1 when the hello carries encrypted_client_hello.
    SslEch,
    /// `req.hdr(NAME)`: each value of a request header; for `host`, the host name without its port.
    Hdr(String),
    Method,
    /// The request path without the query string.
    Path,
    /// The request target as sent.
    Url,
    Src,
    Dst,
    SrcPort,
    DstPort,
    /// `req.len`: bytes read from the client so far.
    ReqLen,
    /// `req.cook(NAME)`: the request's cookie NAME.
    ReqCook(String),
    /// `res.cook(NAME)`: the cookie NAME the response sets.
    ResCook(String),
    /// `res.hdr(NAME)`: each value of a response header.
    ResHdr(String),
    /// `always_true` / `always_false`.
    Const(bool),
    /// `scN_<data>`: from the entry tracked by counter N.
    Sc(usize, crate::stick::Read),
    /// `src_<data>[(TABLE)]`: from the client address's entry.
    SrcTable(crate::stick::Read, Option<String>),
    /// `ssl_fc`: 1 when the client connection is TLS terminated here.
    SslFc,
    /// `ssl_fc_sni`: the SNI of the terminated handshake.
    SslFcSni,
    /// `ssl_fc_alpn`: the protocol ALPN settled on.
    SslFcAlpn,
    /// `ssl_fc_protocol`: `TLSv1.3` / `TLSv1.2`.
    SslFcProtocol,
    /// `ssl_fc_cipher`.
    SslFcCipher,
    /// `ssl_c_used`: 1 when the client presented a (verified) certificate.
    SslCUsed,
    /// `ssl_c_s_dn`: the client certificate's subject, `/C=…/CN=…`.
    SslCSDn,
}

impl Fetch {
    /// Whether the fetch needs the client's first bytes.
    pub fn needs_content(&self) -> bool {
        !matches!(
            self,
            Fetch::Src
                | Fetch::Dst
                | Fetch::SrcPort
                | Fetch::DstPort
                | Fetch::Const(_)
                | Fetch::Sc(..)
                | Fetch::SrcTable(..)
                | Fetch::SslFc
                | Fetch::SslFcSni
                | Fetch::SslFcAlpn
                | Fetch::SslFcProtocol
                | Fetch::SslFcCipher
                | Fetch::SslCUsed
                | Fetch::SslCSDn
        )
    }

    /// Whether the fetch reads what gatehouse's own TLS handshake with the client told
    /// (`ssl_fc*`, `ssl_c_*`): nothing before that handshake.
    pub fn needs_handshake(&self) -> bool {
        matches!(
            self,
            Fetch::SslFc
                | Fetch::SslFcSni
                | Fetch::SslFcAlpn
                | Fetch::SslFcProtocol
                | Fetch::SslFcCipher
                | Fetch::SslCUsed
                | Fetch::SslCSDn
        )
    }

    pub fn values(&self, f: &Facts<'_>) -> Vec<Value> {
        let hello = f.hello.filter(|h| !h.sslv2);
        match self {
            Fetch::SslSni => hello
                .and_then(|h| h.sni.as_ref())
                .map(|s| vec![Value::Str(s.to_ascii_lowercase())])
                .unwrap_or_default(),
            Fetch::SslAlpn => hello
                .map(|h| h.alpn.iter().map(|a| Value::Str(a.clone())).collect())
                .unwrap_or_default(),
            Fetch::SslHelloType => f.hello.map(|_| vec![Value::Int(1)]).unwrap_or_default(),
            Fetch::SslVer => f
                .hello
                .map(|h| {
                    let v = if h.sslv2 { 0x0002 } else { h.legacy_version };
                    vec![Value::Int(i64::from(v >> 8) << 16 | i64::from(v & 0xff))]
                })
                .unwrap_or_default(),
            Fetch::SslEch => f
                .hello
                .map(|h| vec![Value::Int(i64::from(h.ech))])
                .unwrap_or_default(),
            Fetch::Hdr(name) => match f.http {
                Some(r) if name == "host" => {
                    r.host().iter().map(|h| Value::Str(h.to_string())).collect()
                }
                Some(r) => r.header(name).map(|v| Value::Str(v.to_string())).collect(),
                None => Vec::new(),
            },
            Fetch::Method => f
                .http
                .map(|r| vec![Value::Str(r.method().to_string())])
                .unwrap_or_default(),
            Fetch::Path => f
                .http
                .map(|r| vec![Value::Str(r.path().to_string())])
                .unwrap_or_default(),
            Fetch::Url => f
                .http
                .map(|r| vec![Value::Str(r.target().to_string())])
                .unwrap_or_default(),
            Fetch::Src => vec![Value::Ip(f.client.ip())],
            Fetch::Dst => vec![Value::Ip(f.dst.ip())],
            Fetch::SrcPort => vec![Value::Int(i64::from(f.client.port()))],
            Fetch::DstPort => vec![Value::Int(i64::from(f.dst.port()))],
            Fetch::ReqLen => vec![Value::Int(f.peeked as i64)],
            Fetch::ReqCook(name) => f
                .http
                .and_then(|r| crate::l7::cookie::request_cookie(&r.headers, name))
                .map(|v| vec![Value::Str(v.to_string())])
                .unwrap_or_default(),
            Fetch::ResCook(name) => f
                .res
                .and_then(|h| crate::l7::cookie::response_cookie(h, name))
                .map(|v| vec![Value::Str(v.to_string())])
                .unwrap_or_default(),
            Fetch::ResHdr(name) => f
                .res
                .map(|h| h.get(name).map(|v| Value::Str(v.to_string())).collect())
                .unwrap_or_default(),
            Fetch::Const(b) => vec![Value::Int(i64::from(*b))],
            Fetch::Sc(n, what) => f
                .stick
                .and_then(|s| s.sc(*n, *what))
                .map(|v| vec![Value::Int(v as i64)])
                .unwrap_or_default(),
            Fetch::SrcTable(what, table) => f
                .stick
                .and_then(|s| s.src(f.client.ip(), table.as_deref(), *what))
                .map(|v| vec![Value::Int(v as i64)])
                .unwrap_or_default(),
            Fetch::SslFc => vec![Value::Int(i64::from(f.tls.is_some()))],
            Fetch::SslCUsed => vec![Value::Int(i64::from(f.tls.is_some_and(|t| t.client_cert)))],
            Fetch::SslFcSni => text(f.tls.and_then(|t| t.sni.as_deref())),
            Fetch::SslFcAlpn => text(f.tls.and_then(|t| t.alpn.as_deref())),
            Fetch::SslFcProtocol => text(f.tls.and_then(|t| t.version)),
            Fetch::SslFcCipher => text(f.tls.and_then(|t| t.cipher.as_deref())),
            Fetch::SslCSDn => text(f.tls.and_then(|t| t.client_dn.as_deref())),
        }
    }

    /// Parses a fetch as written in a sample expression: `req.ssl_sni`, `req.hdr(host)`.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Fetch, String> {
        let no_arg = |f: Fetch| match arg {
            None => Ok(f),
            Some(a) => Err(format!("'{name}' takes no argument, but '({a})' was given")),
        };
        match name {
            "req.ssl_sni" | "req_ssl_sni" => no_arg(Fetch::SslSni),
            "req.ssl_alpn" => no_arg(Fetch::SslAlpn),
            "req.ssl_hello_type" | "req_ssl_hello_type" => no_arg(Fetch::SslHelloType),
            "req.ssl_ver" | "req_ssl_ver" => no_arg(Fetch::SslVer),
            "req.ssl_ech" => no_arg(Fetch::SslEch),
            "req.hdr" | "hdr" => match arg {
                Some(a) if a.contains(',') => Err(format!(
                    "'{name}({a})': header occurrences are not supported; write {name}(NAME) (every occurrence is tried)"
                )),
                Some(a) if !a.is_empty() => Ok(Fetch::Hdr(a.to_ascii_lowercase())),
                _ => Err(format!("'{name}' needs a header name; write {name}(host)")),
            },
            "req.cook" | "cook" | "res.cook" | "scook" | "res.hdr" | "shdr" => {
                let a = arg
                    .filter(|a| !a.is_empty() && !a.contains(','))
                    .ok_or_else(|| format!("'{name}' needs a name; write {name}(NAME)"))?;
                Ok(match name {
                    "req.cook" | "cook" => Fetch::ReqCook(a.to_string()),
                    "res.cook" | "scook" => Fetch::ResCook(a.to_string()),
                    _ => Fetch::ResHdr(a.to_ascii_lowercase()),
                })
            }
            "method" => no_arg(Fetch::Method),
            "path" => no_arg(Fetch::Path),
            "url" => no_arg(Fetch::Url),
            "src" => no_arg(Fetch::Src),
            "dst" => no_arg(Fetch::Dst),
            "src_port" => no_arg(Fetch::SrcPort),
            "dst_port" => no_arg(Fetch::DstPort),
            "req.len" | "req_len" => no_arg(Fetch::ReqLen),
            "ssl_fc" => no_arg(Fetch::SslFc),
            "ssl_fc_sni" => no_arg(Fetch::SslFcSni),
            "ssl_fc_alpn" => no_arg(Fetch::SslFcAlpn),
            "ssl_fc_protocol" => no_arg(Fetch::SslFcProtocol),
            "ssl_fc_cipher" => no_arg(Fetch::SslFcCipher),
            "ssl_c_used" => no_arg(Fetch::SslCUsed),
            "ssl_c_s_dn" => no_arg(Fetch::SslCSDn),
            "always_true" => no_arg(Fetch::Const(true)),
            "always_false" => no_arg(Fetch::Const(false)),
            n if n.len() > 4
                && n.starts_with("sc")
                && n.as_bytes()[3] == b'_'
                && matches!(n.as_bytes()[2], b'0'..=b'2') =>
            {
                let what = crate::stick::Read::parse(&n[4..])
                    .ok_or_else(|| format!("unknown stick counter fetch '{n}'"))?;
                no_arg(Fetch::Sc(usize::from(n.as_bytes()[2] - b'0'), what))
            }
            n if n.starts_with("src_") && crate::stick::Read::parse(&n[4..]).is_some() => {
                let what = crate::stick::Read::parse(&n[4..]).expect("checked");
                Ok(Fetch::SrcTable(
                    what,
                    arg.filter(|a| !a.is_empty()).map(str::to_string),
                ))
            }
            _ => Err(format!(
                "unknown sample fetch '{name}'; gatehouse knows req.ssl_sni, req.ssl_alpn, req.ssl_hello_type, req.ssl_ver, req.ssl_ech, req.hdr(NAME), req.cook(NAME), res.cook(NAME), res.hdr(NAME), method, path, url, src, dst, src_port, dst_port, req.len, ssl_fc, ssl_fc_sni, ssl_fc_alpn, ssl_fc_protocol, ssl_fc_cipher, ssl_c_used, ssl_c_s_dn"
            )),
        }
    }
}

/// One text sample, or none.
fn text(s: Option<&str>) -> Vec<Value> {
    s.map(|s| vec![Value::Str(s.to_string())])
        .unwrap_or_default()
}

/// Reads a map file (the config layer shares one copy per file; tests pass their own).
pub type MapLoader<'a> = dyn FnMut(&str, Method) -> Result<Arc<Map>, String> + 'a;

/// A converter applied to a sample.
#[derive(Debug, Clone)]
pub enum Conv {
    Lower,
    Upper,
    /// `map*(FILE[,DEFAULT])`: the value found for the sample, else the default, else no sample.
    Map {
        map: Arc<Map>,
        default: Option<String>,
    },
}

/// `FETCH[,CONV…]`, as inside `%[…]`.
#[derive(Debug, Clone)]
pub struct Expr {
    pub fetch: Fetch,
    pub convs: Vec<Conv>,
}

impl Expr {
    /// Parses the inside of `%[…]`. `load_map` reads a map file (tests pass their own).
    pub fn parse(s: &str, load_map: &mut MapLoader<'_>) -> Result<Expr, String> {
        let parts = split_top(s, ',')?;
        let (name, arg) = call(parts[0].trim())?;
        let fetch = Fetch::parse(name, arg)?;
        let mut convs = Vec::new();
        for p in &parts[1..] {
            let (name, arg) = call(p.trim())?;
            let conv = match name {
                "lower" => Conv::Lower,
                "upper" => Conv::Upper,
                "map" | "map_str" | "map_beg" | "map_end" | "map_sub" | "map_dom" | "map_reg" => {
                    let method = match name {
                        "map" | "map_str" => Method::Str,
                        "map_beg" => Method::Beg,
                        "map_end" => Method::End,
                        "map_sub" => Method::Sub,
                        "map_dom" => Method::Dom,
                        _ => Method::Reg,
                    };
                    let arg = arg.ok_or_else(|| {
                        format!("'{name}' needs a file; write {name}(FILE[,DEFAULT])")
                    })?;
                    let (file, default) = match arg.split_once(',') {
                        Some((f, d)) => (f.trim(), Some(d.trim().to_string())),
                        None => (arg.trim(), None),
                    };
                    Conv::Map {
                        map: load_map(file, method)?,
                        default,
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown converter '{name}'; gatehouse knows lower, upper, map, map_str, map_beg, map_end, map_sub, map_dom, map_reg"
                    ));
                }
            };
            convs.push(conv);
        }
        Ok(Expr { fetch, convs })
    }

    /// The expression's value: the first value of the fetch, converted; `None` when there is none.
    pub fn eval(&self, f: &Facts<'_>) -> Option<String> {
        let mut v = self
            .fetch
            .values(f)
            .into_iter()
            .next()?
            .to_text()
            .into_owned();
        for c in &self.convs {
            v = match c {
                Conv::Lower => v.to_ascii_lowercase(),
                Conv::Upper => v.to_ascii_uppercase(),
                Conv::Map { map, default } => match map.lookup(&v) {
                    Some(found) => found.to_string(),
                    None => default.clone()?,
                },
            };
        }
        Some(v)
    }
}

/// Splits on `sep` outside parentheses.
fn split_top(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("')' without '(' in '{s}'"));
                }
            }
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("'(' without ')' in '{s}'"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// `name` or `name(arg)`.
fn call(s: &str) -> Result<(&str, Option<&str>), String> {
    match s.split_once('(') {
        None if s.is_empty() => Err("empty sample expression".into()),
        None => Ok((s, None)),
        Some((name, rest)) => {
            let arg = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("'{s}': expected ')' at the end"))?;
            Ok((name, Some(arg)))
        }
    }
}

/// Text with `%[expr]` parts, as in `use_backend be_%[req.ssl_sni,lower]`.
#[derive(Debug, Clone)]
pub struct Template {
    pub source: String,
    parts: Vec<Part>,
}

/// Templates are equal when written the same.
impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for Template {}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    /// Whether `s` has a `%[` part; a plain name is not a template.
    pub fn is_template(s: &str) -> bool {
        s.contains("%[")
    }

    pub fn parse(s: &str, load_map: &mut MapLoader<'_>) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("%[") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let body = &rest[i + 2..];
            // The closing bracket: the first ']' outside parentheses.
            let mut depth = 0i32;
            let end = body
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ']' if depth == 0 => return true,
                        _ => {}
                    }
                    false
                })
                .map(|(j, _)| j)
                .ok_or_else(|| format!("'{s}': '%[' without ']'"))?;
            parts.push(Part::Expr(Expr::parse(&body[..end], load_map)?));
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// The rendered text, or `None` when an expression has no value.
    pub fn render(&self, f: &Facts<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Expr(e) => out.push_str(&e.eval(f)?),
            }
        }
        Some(out)
    }

    pub fn needs_content(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Expr(e) if e.fetch.needs_content()))
    }

    pub fn needs_handshake(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Expr(e) if e.fetch.needs_handshake()))
    }

    /// The maps the template uses, for the validator (backend names in map values).
    pub fn maps(&self) -> impl Iterator<Item = &Map> {
        self.parts.iter().flat_map(|p| match p {
            Part::Expr(e) => e
                .convs
                .iter()
                .filter_map(|c| match c {
                    Conv::Map { map, .. } => Some(&**map),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Part::Text(_) => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_maps(_: &str, _: Method) -> Result<Arc<Map>, String> {
        Err("no maps here".into())
    }

    pub fn facts<'a>(hello: Option<&'a ClientHello>, http: Option<&'a Request>) -> Facts<'a> {
        Facts {
            client: "10.0.0.2:40000".parse().unwrap(),
            dst: "192.0.2.9:443".parse().unwrap(),
            hello,
            http,
            peeked: 517,
            raw: &[],
            stick: None,
            res: None,
            tls: None,
        }
    }

    #[test]
    fn templates_render() {
        let hello = ClientHello {
            sni: Some("WWW.A.test".into()),
            legacy_version: 0x0303,
            ..Default::default()
        };
        let f = facts(Some(&hello), None);
        let t = Template::parse("be_%[req.ssl_sni,lower]", &mut no_maps).unwrap();
        assert_eq!(t.render(&f).as_deref(), Some("be_www.a.test"));
        let t = Template::parse("%[dst]:%[dst_port]", &mut no_maps).unwrap();
        assert_eq!(t.render(&f).as_deref(), Some("192.0.2.9:443"));
        let t = Template::parse("x%[req.hdr(host)]", &mut no_maps).unwrap();
        assert_eq!(t.render(&f), None);
        assert_eq!(
            Fetch::SslVer.values(&f),
            vec![Value::Int(3 << 16 | 3)],
            "TLS 1.2 is 3.3"
        );
        for bad in ["%[req.ssl_sni", "%[nope]", "%[req.ssl_sni,frob]", "%[hdr]"] {
            assert!(Template::parse(bad, &mut no_maps).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_in_expressions() {
        let mut load = |path: &str, m: Method| -> Result<Arc<Map>, String> {
            assert_eq!(path, "/x/sni.map");
            Ok(Arc::new(Map::from_text(path, "a.test be_a\n", m)?))
        };
        let t = Template::parse(
            "%[req.ssl_sni,lower,map_dom(/x/sni.map,be_default)]",
            &mut load,
        )
        .unwrap();
        let hello = |n: &str| ClientHello {
            sni: Some(n.into()),
            ..Default::default()
        };
        let h = hello("WWW.a.test");
        assert_eq!(t.render(&facts(Some(&h), None)).as_deref(), Some("be_a"));
        let h = hello("b.test");
        assert_eq!(
            t.render(&facts(Some(&h), None)).as_deref(),
            Some("be_default")
        );
        assert_eq!(t.maps().count(), 1);
    }
}
