//! Config tests: whole texts in, model or `file:line:` messages out.

use std::time::Duration;

use super::model::{Families, FirewallBackend, PortSpec, ServerTarget, UseSrc};
use super::*;

fn ok(text: &str) -> Loaded {
    from_str("t.cfg", text).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// The error messages of an invalid config, each as `file:line: error: …`.
fn errors(text: &str) -> Vec<String> {
    match from_str("t.cfg", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigError::Invalid(d)) => d
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn one_error(text: &str, line: usize, needle: &str) {
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("t.cfg:{line}: error: ")) && e.contains(needle)),
        "wanted an error at line {line} containing {needle:?}; got {errs:#?}"
    );
}

const GATEWAY: &str = "\
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 3s
    timeout client 30s
    timeout server 40s
frontend gw
    bind [::]:15001 transparent name tp
    intercept tcp dport 80,443,8000-8100 iif eth1,!eth2 src 192.168.0.0/16,!192.168.9.0/24 dst !10.0.0.0/8
    default_backend orig
backend orig
    source 0.0.0.0 usesrc clientip
    server any 0.0.0.0
";

#[test]
fn the_embedded_default_is_valid() {
    let l = from_str(DEFAULT_CONFIG_NAME, DEFAULT_CONFIG).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = &l.config;
    assert_eq!(c.frontends.len(), 1);
    let fe = &c.frontends[0];
    assert!(fe.binds[0].transparent);
    assert_eq!(fe.intercepts[0].families, Families::Both);
    assert_eq!(fe.intercepts[0].iif.exclude, ["lo"]);
    let be = &c.backends[fe.default_backend.unwrap()];
    assert_eq!(be.servers[0].target, ServerTarget::OrigDst(PortSpec::Same));
    assert_eq!(be.source.unwrap().usesrc, Some(UseSrc::ClientIp));
}

#[test]
fn a_gateway_config_becomes_a_model() {
    let c = ok(GATEWAY).config;
    assert_eq!(c.global.maxconn, 1000);
    let fe = &c.frontends[0];
    assert_eq!(
        fe.maxconn, 1000,
        "frontend maxconn defaults to the global one"
    );
    assert_eq!(fe.timeout_client, Some(Duration::from_secs(30)));
    let i = &fe.intercepts[0];
    assert_eq!(i.dports.len(), 3);
    assert_eq!((i.dports[2].first, i.dports[2].last), (8000, 8100));
    assert_eq!(i.iif.include, ["eth1"]);
    assert_eq!(i.iif.exclude, ["eth2"]);
    assert_eq!(i.src.include.len(), 1);
    assert_eq!(i.src.exclude.len(), 1);
    assert_eq!(i.dst.exclude.len(), 1);
    // IPv4-only CIDR includes narrow the dual-stack bind to IPv4.
    assert_eq!(i.families, Families::V4);
    let be = &c.backends[0];
    assert_eq!(be.timeout_connect, Some(Duration::from_secs(3)));
    assert_eq!(be.timeout_server, Some(Duration::from_secs(40)));
}

#[test]
fn defaults_apply_to_the_sections_after_them_only() {
    let c = ok("\
frontend a
    bind :1001
    default_backend b1
defaults
    timeout client 7s
    timeout server 8s
frontend c
    bind :1002
    default_backend b1
backend b1
    server s 127.0.0.1:80
defaults
    timeout server 9s
")
    .config;
    assert_eq!(c.frontends[0].timeout_client, None);
    assert_eq!(c.frontends[1].timeout_client, Some(Duration::from_secs(7)));
    assert_eq!(c.backends[0].timeout_server, Some(Duration::from_secs(8)));
}

#[test]
fn listen_is_frontend_and_backend() {
    let c =
        ok("listen web 127.0.0.1:8080\n    server s1 127.0.0.1:80\n    server s2 127.0.0.1:81\n")
            .config;
    assert_eq!(c.frontends[0].binds[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.frontends[0].default_backend, Some(0));
    assert_eq!(c.backends[0].servers.len(), 2);
}

#[test]
fn plumbing_settings() {
    let c = ok("\
global
    plumbing iptables
    tproxy-mark 0x10
    tproxy-table 200
    tproxy-rule-pref 50
    outbound-mark 0
")
    .config;
    let p = &c.global.plumbing;
    assert_eq!(p.backend, FirewallBackend::Iptables);
    assert_eq!(
        (p.mark, p.table, p.rule_pref, p.outbound_mark),
        (0x10, 200, 50, 0)
    );
}

#[test]
fn server_addresses() {
    let c = ok("\
backend b
    server a 0.0.0.0
    server b *
    server c 0.0.0.0:0
    server d 0.0.0.0:8443
    server e 0.0.0.0:+1000
    server f [2001:db8::1]:443
    server g 10.0.0.1:80 source 10.0.0.2 usesrc client
")
    .config;
    let t: Vec<ServerTarget> = c.backends[0]
        .servers
        .iter()
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(t[0], ServerTarget::OrigDst(PortSpec::Same));
    assert_eq!(t[1], ServerTarget::OrigDst(PortSpec::Same));
    assert_eq!(t[2], ServerTarget::OrigDst(PortSpec::Same));
    assert_eq!(t[3], ServerTarget::OrigDst(PortSpec::Fixed(8443)));
    assert_eq!(t[4], ServerTarget::OrigDst(PortSpec::Offset(1000)));
    assert_eq!(
        t[5],
        ServerTarget::Fixed("2001:db8::1".parse().unwrap(), PortSpec::Fixed(443))
    );
    let src = c.backends[0].servers[6].source.unwrap();
    assert_eq!(src.usesrc, Some(UseSrc::Client));
}

/// Each bad line, the line number its error must name, and words the message must contain.
#[test]
fn errors_name_file_line_and_fix() {
    let table: &[(&str, usize, &str)] = &[
        (
            "frontend f\n    bind :80\n    defualt_backend b\n",
            3,
            "did you mean 'default_backend'",
        ),
        (
            "backend b\n    timeout conect 5s\n",
            2,
            "did you mean 'timeout connect'",
        ),
        (
            "backend b\n    timeout connect 5x\n",
            2,
            "unknown time unit",
        ),
        (
            "frontend f\n    bind :80\n    default_backend nope\n",
            3,
            "names no backend",
        ),
        ("frontend f\n    bind 80\n", 2, "has no port"),
        ("frontend f\n    bind :99999\n", 2, "not a port"),
        (
            "frontend f\n    bind :80 transparnt\n",
            2,
            "unknown bind option",
        ),
        (
            "frontend f\n    bind :80\n    intercept dport 80\n",
            3,
            "needs a transparent bind",
        ),
        (
            "frontend f\n    bind :80 transparent\n    intercept iif eth0\n",
            3,
            "needs destination ports",
        ),
        (
            "frontend f\n    bind :80 transparent\n    intercept dport 80 iif lo\n",
            3,
            "loop",
        ),
        (
            "frontend f\n    bind :80 transparent\n    intercept dport 90-80\n",
            3,
            "not a port range",
        ),
        (
            "frontend f\n    bind :80 transparent\n    intercept dport 80 src 10.0.0.0/33\n",
            3,
            "not an address or CIDR",
        ),
        (
            "frontend f\n    bind 0.0.0.0:80 transparent\n    intercept dport 80 family ipv6\n",
            3,
            "no address family",
        ),
        (
            "frontend f\n    bind :80 transparent\n    bind :81 transparent\n    intercept dport 80\n",
            4,
            "say which",
        ),
        (
            "frontend f\n    bind :80 transparent\n    intercept dport 80 to x\n",
            3,
            "names no bind",
        ),
        (
            "backend b\n    server s www.example.com:80 resolvers nope\n",
            2,
            "names no resolvers section",
        ),
        (
            "backend b\n    server s %[req.ssl_sni]:443\n",
            2,
            "needs 'resolvers NAME'",
        ),
        (
            "resolvers dns\n    nameserver a 10.0.0.1:53\nbackend b\n    server s %[req.ssl_sni]:443 resolvers dns\n",
            3,
            "add 'allow-name'",
        ),
        (
            "backend b\n    server s %[dst]:443\n",
            2,
            "does not depend on what the client sent",
        ),
        (
            "backend b\n    allow-name exa*mple.test\n",
            2,
            "not a name pattern",
        ),
        (
            "resolvers dns\n    hold forever 1s\n",
            2,
            "unknown hold status",
        ),
        ("resolvers dns\n    timeout resolve 0s\n", 2, "more than 0"),
        (
            "resolvers dns\n    parse-resolv-conf\n    frobnicate\n",
            3,
            "unknown keyword 'frobnicate' in resolvers",
        ),
        (
            "resolvers dns\n    resolve_retries 3\n",
            1,
            "has no nameserver",
        ),
        (
            "frontend f\n    bind :80\n    use_backend b if nosuch\n",
            3,
            "no ACL named 'nosuch'",
        ),
        (
            "frontend f\n    bind :80\n    use_backend nowhere\n",
            3,
            "use_backend 'nowhere' names no backend",
        ),
        (
            "frontend f\n    bind :80\n    acl a req.ssl_sni -m frob x\n",
            3,
            "unknown match method",
        ),
        (
            "frontend f\n    bind :80\n    acl a req.ssl_snii x\n",
            3,
            "unknown sample fetch",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request connection reject if { req.ssl_sni x }\n",
            3,
            "use 'tcp-request content'",
        ),
        (
            "frontend f\n    bind :80\n    acl client ssl_c_used\n    tcp-request connection reject unless client\n",
            4,
            "runs before the TLS handshake",
        ),
        (
            "global\n    ssl-default-bind-options ssl-min-ver TLSv1.3\n",
            2,
            "write ssl-min-ver on the bind lines",
        ),
        (
            "global\n    ssl-default-server-options no-tlsv12\n",
            2,
            "write it on each bind or server line",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request connection track-sc0 ssl_fc_sni\n",
            3,
            "use 'tcp-request session' or 'tcp-request content', which run after it",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request content do-resolve(txn.dst,dns) req.ssl_sni\n",
            3,
            "resolves and dials the name itself",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request content track-sc0 src\n",
            1,
            "this section has no stick-table",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request connection track-sc0 req.ssl_sni table t\n",
            3,
            "can only track src",
        ),
        (
            "frontend f\n    bind :80\n    tcp-request content track-sc3 src\n",
            3,
            "track-sc0, track-sc1 or track-sc2",
        ),
        ("backend b\n    stick-table type ip\n", 2, "needs a size"),
        (
            "backend b\n    stick-table type ip size 1k store conn_rate\n",
            2,
            "needs a period",
        ),
        (
            "backend b\n    stick-table type mac size 1k\n",
            2,
            "unknown table type",
        ),
        (
            "backend b\n    stick on src table nowhere\n",
            1,
            "names no section with a stick-table",
        ),
        (
            "backend b\n    stick store-response res.cook\n",
            2,
            "needs a name",
        ),
        (
            "frontend f\n    bind :80\n    use_backend %[req.ssl_sni,map_dom(/nonexistent.map)]\n",
            3,
            "cannot read map file '/nonexistent.map'",
        ),
        (
            "frontend f\n    bind :80\n    unclassified sometimes reject\n",
            3,
            "unknown event",
        ),
        (
            "frontend f\n    bind :80\n    ech maybe\n",
            3,
            "unknown ECH policy",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 chek\n",
            2,
            "did you mean 'check'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 cookie a;b\n",
            2,
            "plain token",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 weight 300\n",
            2,
            "from 0 to 256",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 rise 0\n",
            2,
            "from 1 to 1000",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 inter\n",
            2,
            "needs a value",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 on-marked-down mark-backup\n",
            2,
            "shutdown-sessions",
        ),
        (
            "backend b\n    server s 0.0.0.0 check\n",
            2,
            "needs an address to check",
        ),
        (
            "backend b\n    server s 10.0.0.1 check\n",
            2,
            "needs a port",
        ),
        (
            "backend b\n    balance roundrobinn\n",
            2,
            "unknown balance algorithm",
        ),
        ("backend b\n    balance random(0)\n", 2, "random(N)"),
        ("backend b\n    balance hash\n", 2, "needs an expression"),
        (
            "backend b\n    balance uri deep 2\n",
            2,
            "unknown 'balance uri' option",
        ),
        ("backend b\n    hash-type ring\n", 2, "unknown hash type"),
        ("backend b\n    retries many\n", 2, "from 0 to 100"),
        (
            "backend b\n    option redispatch now\n",
            2,
            "takes no argument",
        ),
        (
            "backend b\n    server s 10.0.0.1:80\n    server s 10.0.0.2:80\n",
            3,
            "already defined at t.cfg:2",
        ),
        ("backend b\n    source 0.0.0.0 usesrc\n", 2, "needs a value"),
        (
            "backend b\n    mode http\n    errorfile 503 /nonexistent/503.http\n",
            3,
            "errorfile 503 '/nonexistent/503.http': cannot read it",
        ),
        (
            "backend b\n    mode http\n    errorfile 302 /etc/hostname\n",
            3,
            "not a status gatehouse answers with",
        ),
        (
            "backend b\n    mode http\n    errorfile 503 /etc/passwd\n",
            3,
            "it is not an HTTP response",
        ),
        (
            "frontend f\n    bind :80\n    mode http\n    http-request tarpit\n",
            4,
            "'http-request tarpit' is not supported",
        ),
        (
            "frontend f\n    bind :80\n    mode http\n    redirect prefix /x code 304\n",
            4,
            "must be 301, 302, 303, 307 or 308",
        ),
        (
            "frontend f\n    bind :80\n    mode http\n    http-request deny if nosuchacl\n",
            4,
            "nosuchacl",
        ),
        (
            "backend b\n    mode http\n    cookie S rewrite indirect\n",
            3,
            "go with 'insert'",
        ),
        (
            "frontend f\n    bind :80\n    mode http\n    stats auth admin\n",
            4,
            "USER:PASSWORD",
        ),
        (
            "frontend f\n    bind :80\n    mode http\n    option forwardfor except nonsense\n",
            4,
            "is not a network",
        ),
        ("backend b\n    mode udp\n", 2, "unknown mode"),
        (
            "defaults\n    log-format %zz\n",
            2,
            "unknown variable '%zz'",
        ),
        (
            "global\n    plumbing ebpf\n",
            2,
            "use auto, nft, iptables or none",
        ),
        ("global\n    tproxy-table 254\n", 2, "reserved"),
        ("global\n    tproxy-mark 0\n", 2, "must not be 0"),
        ("global\n    maxconn 0\n", 2, "at least 1"),
        (
            "global\n    default_backend x\n",
            2,
            "not allowed in a global section",
        ),
        ("    maxconn 10\n", 1, "outside any section"),
        ("frontend\n", 1, "needs a name"),
        (
            "frontend f\n    bind \"unterminated\n",
            2,
            "unterminated double quote",
        ),
        (
            "frontend f\n    bind :80\nfrontend f\n    bind :81\n",
            3,
            "already defined at t.cfg:1",
        ),
        (
            "frontend f\n    bind :80\nfrontend g\n    bind :80\n",
            4,
            "already bound at t.cfg:2",
        ),
    ];
    for (text, line, needle) in table {
        one_error(text, *line, needle);
    }
}

#[test]
fn ignored_directives_warn_and_pass() {
    let l = ok("\
global
    daemon
    chroot /var/lib/haproxy
    nbproc 4
    spread-checks 3
    tune.bufsize 32768
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
    ssl-default-bind-options prefer-client-ciphers no-sslv3 no-tlsv10 no-tlsv11 no-tls-tickets
    ssl-default-server-options ssl-min-ver TLSv1.2 no-tls-tickets
frontend f
    bind :80
    no option splice-response
    default_backend b
backend b
    server s 127.0.0.1:8080
");
    let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
    for (line, word) in [
        (2, "daemon"),
        (3, "chroot"),
        (4, "nbproc"),
        (5, "spread-checks"),
        (6, "tune.bufsize"),
        (7, "ssl-default-bind-ciphers"),
        (8, "prefer-client-ciphers"),
        (8, "no-tlsv11"),
        (9, "ssl-min-ver"),
        (12, "no option splice-response"),
    ] {
        assert!(
            w.iter().any(
                |m| m.starts_with(&format!("t.cfg:{line}: warning: '{word}"))
                    && m.contains("ignored")
            ),
            "no warning for {word} at line {line}: {w:#?}"
        );
    }
}

#[test]
fn listen_may_name_another_backend_and_tunnel_timeouts_parse() {
    let c = ok("\
listen l
    bind :8080
    default_backend other
    timeout tunnel 2h
    server own 127.0.0.1:1
backend other
    server s ::
")
    .config;
    assert_eq!(c.frontends[0].default_backend, Some(1));
    assert_eq!(
        c.backends[0].timeout_tunnel,
        Some(Duration::from_secs(7200))
    );
    assert_eq!(
        c.backends[1].servers[0].target,
        ServerTarget::OrigDst(PortSpec::Same)
    );
}

#[test]
fn a_section_does_not_run_on_into_the_next_file() {
    let e = from_sources(&[
        ("a.cfg".into(), "frontend f\n    bind :80\n".into()),
        ("b.cfg".into(), "    default_backend x\n".into()),
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("b.cfg:1: error: 'default_backend' is outside any section"),
        "{e}"
    );
}

#[test]
fn every_bad_line_of_a_file_is_reported() {
    let errs = errors("frontend f\n    bind \"x\n    bind :80\n    maxconn 'y\n    bogus\n");
    let lines: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(lines, ["t.cfg:2", "t.cfg:4", "t.cfg:5"], "{errs:#?}");
}

#[test]
fn several_files_read_in_order() {
    let l = from_sources(&[
        ("a.cfg".into(), "defaults\n    timeout client 5s\n".into()),
        ("b.cfg".into(), "frontend f\n    bind :80\n    default_backend b\nbackend b\n    server s 127.0.0.1:1\n".into()),
    ])
    .unwrap();
    assert_eq!(
        l.config.frontends[0].timeout_client,
        Some(Duration::from_secs(5))
    );
    let e = from_sources(&[
        ("a.cfg".into(), "global\n".into()),
        ("b.cfg".into(), "bogus\n".into()),
    ])
    .unwrap_err();
    assert!(e.to_string().starts_with("b.cfg:1: error:"), "{e}");
}

#[test]
fn server_options_and_default_server() {
    use crate::config::model::{Balance, HashType};
    let l = ok("\
defaults
    retries 5
    option redispatch
    default-server inter 3s fall 2 weight 10
backend b
    balance leastconn
    hash-type consistent
    no option redispatch
    option allbackups
    timeout check 1s
    timeout queue 2s
    default-server maxconn 50 check
    server a 10.0.0.1:80
    server b 10.0.0.2:80 weight 20 backup rise 5 inter 1s fastinter 500ms slowstart 10s on-marked-down shutdown-sessions
    server c 10.0.0.3:80 no-check disabled maxqueue 7 port 8080 addr 10.0.0.33
backend h
    balance hash req.ssl_sni
");
    let b = &l.config.backends[0];
    assert_eq!(b.balance, Balance::LeastConn);
    assert_eq!(b.hash_type, HashType::Consistent);
    assert_eq!((b.retries, b.redispatch, b.allbackups), (5, false, true));
    assert_eq!(b.timeout_check, Some(Duration::from_secs(1)));
    let [a, bk, c] = &b.servers[..] else { panic!() };
    assert_eq!((a.weight, a.maxconn, a.backup), (10, Some(50), false));
    let ca = a.check.unwrap();
    assert_eq!(
        (ca.inter, ca.fastinter, ca.rise, ca.fall),
        (Duration::from_secs(3), Duration::from_secs(3), 2, 2)
    );
    assert_eq!(
        (bk.weight, bk.backup, bk.shutdown_on_down),
        (20, true, true)
    );
    let cb = bk.check.unwrap();
    assert_eq!(
        (cb.inter, cb.fastinter, cb.rise),
        (Duration::from_secs(1), Duration::from_millis(500), 5)
    );
    assert_eq!(bk.slowstart, Some(Duration::from_secs(10)));
    assert!(c.check.is_none() && c.disabled);
    assert_eq!(c.maxqueue, Some(7));
    assert!(matches!(l.config.backends[1].balance, Balance::Hash(_)));
    // The defaults' redispatch reached the second backend.
    assert!(l.config.backends[1].redispatch);
}

#[test]
fn health_checks_follow_ssl_as_haproxy_does() {
    let l = ok("\
backend b
    default-server check ssl verify none
    server a 10.0.0.1:443 check-sni health.example.test
    server b 10.0.0.2:443 port 8080
    server c 10.0.0.3:443 port 8443 check-ssl
    server d 10.0.0.4:443 no-check-ssl
    server e 10.0.0.5:80 no-ssl check-ssl
    server f 10.0.0.6:80 no-ssl
");
    let tls: Vec<bool> = l.config.backends[0]
        .servers
        .iter()
        .map(|s| s.check_tls.is_some())
        .collect();
    assert_eq!(tls, [true, false, true, false, true, false]);
    let a = &l.config.backends[0].servers[0];
    assert_eq!(a.check_sni.as_deref(), Some("health.example.test"));
    // check-ssl builds the server's TLS settings even without ssl, with the same rules.
    let e = errors("backend b\n    server s 10.0.0.1:80 check check-ssl\n");
    assert!(
        e.iter()
            .any(|e| e.contains("check-ssl:") && e.contains("ca-file")),
        "{e:?}"
    );
    let e = errors("backend b\n    server s 10.0.0.1:80 check check-sni bad_name!\n");
    assert!(e.iter().any(|e| e.contains("check-sni")), "{e:?}");
    // PROXY headers on checks: with send-proxy*, unless port/addr; check-send-proxy regardless.
    let l = ok("\
backend b
    default-server check
    server a 10.0.0.1:80 send-proxy-v2 proxy-v2-options crc32c
    server b 10.0.0.2:80 send-proxy port 8080
    server c 10.0.0.3:80 port 8080 check-send-proxy
    server d 10.0.0.4:80
");
    let pp: Vec<Option<(bool, bool)>> = l.config.backends[0]
        .servers
        .iter()
        .map(|s| s.check_proxy.map(|p| (p.v2, p.crc32c)))
        .collect();
    assert_eq!(pp, [Some((true, true)), None, Some((false, false)), None]);
    // check-sni on a check that stays in clear is a warning.
    let l = ok("backend b\n    server s 10.0.0.1:80 check check-sni x.example.test\n");
    let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
    assert!(w.iter().any(|w| w.contains("check-sni")), "{w:?}");
}

#[test]
fn a_server_sni_read_from_the_request_makes_its_frontends_peek() {
    let l = ok("\
frontend by-host
    bind :80
    default_backend host
frontend terminated
    bind :81
    default_backend fwd
backend host
    server s 10.0.0.1:443 ssl verify none sni req.hdr(host)
backend fwd
    server s 10.0.0.1:443 ssl verify none sni ssl_fc_sni
");
    let peek: Vec<bool> = l.config.frontends.iter().map(|f| f.peek).collect();
    // ssl_fc_sni comes from gatehouse's own handshake, not from the client's first bytes.
    assert_eq!(peek, [true, false]);
}

const RUN_AS_TAIL: &str =
    "frontend f\n    bind :80\n    default_backend b\nbackend b\n    server s 127.0.0.1:8080\n";

fn run_as(global: &str) -> Option<super::model::RunAs> {
    ok(&format!("global\n{global}{RUN_AS_TAIL}"))
        .config
        .global
        .run_as
}

#[test]
fn user_and_group_by_name_and_number() {
    use super::model::RunAs;
    // root and daemon are in every Debian user database (0:0 and 1:1).
    assert_eq!(run_as(""), None);
    assert_eq!(run_as("    user root\n"), Some(RunAs { uid: 0, gid: 0 }));
    // A user alone runs with its login group.
    assert_eq!(run_as("    user daemon\n"), Some(RunAs { uid: 1, gid: 1 }));
    assert_eq!(
        run_as("    user daemon\n    group root\n"),
        Some(RunAs { uid: 1, gid: 0 })
    );
    // Numbers need not be in the database when both are given.
    assert_eq!(
        run_as("    uid 4242\n    gid 4343\n"),
        Some(RunAs {
            uid: 4242,
            gid: 4343
        })
    );
    assert_eq!(run_as("    uid 1\n"), Some(RunAs { uid: 1, gid: 1 }));
    assert_eq!(
        run_as("    gid 7\n    user daemon\n"),
        Some(RunAs { uid: 1, gid: 7 })
    );
    // The later line wins, as in HAProxy.
    assert_eq!(
        run_as("    user daemon\n    uid 0\n    gid 0\n"),
        Some(RunAs { uid: 0, gid: 0 })
    );
    // Nothing about them is a warning any more.
    let l = ok(&format!(
        "global\n    user daemon\n    group daemon\n{RUN_AS_TAIL}"
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn user_and_group_errors_name_the_line_and_the_fix() {
    let table: &[(&str, usize, &str)] = &[
        (
            "global\n    maxconn 10\n    user no-such-user-gh\n",
            3,
            "no user 'no-such-user-gh' on this host; create it (useradd --system",
        ),
        (
            "global\n    user daemon\n    group no-such-group-gh\n",
            3,
            "no group 'no-such-group-gh' on this host; create it (groupadd --system",
        ),
        (
            "global\n    uid daemon\n",
            2,
            "'daemon' is not a valid user id",
        ),
        (
            "global\n    gid -1\n    user daemon\n",
            2,
            "not a valid group id",
        ),
        ("global\n    user\n", 2, "write 'user NAME'"),
        (
            "global\n    user no-such-user-gh\n    group daemon\n",
            2,
            "no user 'no-such-user-gh'",
        ),
        ("global\n    user a b\n", 2, "unexpected 'b'"),
        (
            "global\n    group daemon\n",
            2,
            "a group without a user would leave gatehouse running as root; add 'user NAME'",
        ),
        (
            "global\n    uid 4242\n",
            2,
            "uid 4242 is not in the user database, so it has no login group to run with; add 'gid N'",
        ),
    ];
    for (global, line, needle) in table {
        one_error(&format!("{global}{RUN_AS_TAIL}"), *line, needle);
    }
    // One mistake, one message: a missing user is not also "a group without a user".
    let errs = errors(&format!(
        "global\n    user no-such-user-gh\n    group daemon\n{RUN_AS_TAIL}"
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn tcp_request_session_is_its_own_list() {
    let l = ok("\
frontend f
    bind :80
    stick-table type ip size 10
    tcp-request session reject if { src 192.0.2.1 }
    tcp-request connection reject if { src 10.0.0.0/8 }
    tcp-request session track-sc1 src
    tcp-request session reject unless { ssl_c_used }
    default_backend b
backend b
    server s 10.0.0.1:80
");
    let fe = &l.config.frontends[0];
    // Session rules run after the TLS handshake: the ssl_* fetches are theirs too.
    assert_eq!((fe.connection_rules.len(), fe.session_rules.len()), (1, 3));
    one_error(
        "frontend f\n    bind :80\n    tcp-request session reject if { req.ssl_sni -m end .test }\n",
        3,
        "'tcp-request session' runs before any data arrives",
    );
}

#[test]
fn proxy_protocol_binds_and_servers() {
    use crate::config::model::SendProxy;
    let l = ok("\
defaults
    mode tcp
    default-server send-proxy-v2 proxy-v2-options crc32c
frontend f
    bind :80,:81 accept-proxy
    bind :82
    default_backend b
backend b
    server a 10.0.0.1:80
    server b 10.0.0.2:80 proxy-v2-options authority
    server c 10.0.0.3:80 no-send-proxy-v2
    server d 10.0.0.4:80 no-send-proxy-v2 send-proxy
    server e 10.0.0.5:80 send-proxy source 10.0.0.9 send-proxy-v2 weight 3
");
    let fe = &l.config.frontends[0];
    let accepts: Vec<bool> = fe.binds.iter().map(|b| b.accept_proxy).collect();
    assert_eq!(accepts, [true, true, false]);
    let sp: Vec<Option<SendProxy>> = l.config.backends[0]
        .servers
        .iter()
        .map(|s| s.send_proxy)
        .collect();
    let v2 = |authority| {
        Some(SendProxy {
            v2: true,
            authority,
            crc32c: true,
            in_tls: false,
        })
    };
    // v2 wins over v1 when both are on, as in HAProxy; the options add up over default-server.
    assert_eq!(
        sp,
        [
            v2(false),
            v2(true),
            None,
            Some(SendProxy::default()),
            v2(false)
        ]
    );
    let e = &l.config.backends[0].servers[4];
    assert_eq!(e.weight, 3);
    assert!(
        e.source
            .is_some_and(|s| s.addr.ip().to_string() == "10.0.0.9")
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);

    // proxy-v2-options without send-proxy-v2 does nothing: said.
    let l = ok("backend b\n    server s 10.0.0.1:80 send-proxy proxy-v2-options authority\n");
    let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|m| m.starts_with("t.cfg:2: warning: ") && m.contains("add send-proxy-v2")),
        "{w:#?}"
    );
}

#[test]
fn proxy_protocol_errors() {
    let table: &[(&str, usize, &str)] = &[
        (
            "frontend f\n    bind :80 accept-proxi\n",
            2,
            "unknown bind option 'accept-proxi'; gatehouse knows transparent, name, v4v6, v6only, backlog, ssl, crt, crt-list, alpn, ca-file, verify, ssl-min-ver, strict-sni, accept-proxy",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 send-proxy-v2 proxy-v2-options ssl\n",
            2,
            "proxy-v2-options 'ssl' describes a TLS connection gatehouse terminated, and gatehouse terminates none; it sends authority, crc32c",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 send-proxy-v2 proxy-v2-options authority,cert-cn\n",
            2,
            "'cert-cn'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 proxy-v2-options unique-id\n",
            2,
            "proxy-v2-options 'unique-id' is not supported",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 proxy-v2-options authority,crc32\n",
            2,
            "unknown proxy-v2-options 'crc32'; gatehouse sends authority, crc32c",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 proxy-v2-options authority,\n",
            2,
            "without empty items, such as 'authority,crc32c'",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 proxy-v2-options\n",
            2,
            "server option 'proxy-v2-options' needs a value",
        ),
        (
            "backend b\n    server s 10.0.0.1:80 send-proxi\n",
            2,
            "did you mean 'send-proxy'",
        ),
        (
            "defaults\n    mode tcp\n    default-server send-proxy-v2 proxy-v2-options nope\n",
            3,
            "unknown proxy-v2-options 'nope'",
        ),
        (
            "frontend f\n    bind :80 accept-proxy\n    stick-table type ip size 10\n    tcp-request connection track-sc0 src\n    default_backend b\nbackend b\n    server s 10.0.0.1:80\n",
            1,
            "frontend 'f' has an accept-proxy bind, where 'tcp-request connection' rules run on the sending proxy's address",
        ),
    ];
    for (text, line, needle) in table {
        one_error(text, *line, needle);
    }
    // Without accept-proxy, tracking in connection rules stays allowed; with it, in session rules.
    ok(
        "frontend f\n    bind :80\n    stick-table type ip size 10\n    tcp-request connection track-sc0 src\n    default_backend b\nbackend b\n    server s 10.0.0.1:80\n",
    );
    ok(
        "frontend f\n    bind :80 accept-proxy\n    stick-table type ip size 10\n    tcp-request connection reject if { src 192.0.2.0/24 }\n    tcp-request session track-sc0 src\n    default_backend b\nbackend b\n    server s 10.0.0.1:80\n",
    );
}

#[test]
fn an_authority_that_can_never_be_known_is_said() {
    let text = |delay: &str| {
        format!(
            "defaults\n mode tcp\nfrontend f\n bind :19555\n{delay} default_backend b\n\
             backend b\n server s 192.0.2.1:443 send-proxy-v2 proxy-v2-options authority\n"
        )
    };
    let l = ok(&text(""));
    let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|m| m.starts_with("t.cfg:3: warning: ") && m.contains("inspect-delay")),
        "{w:#?}"
    );
    // Reading the first bytes makes the SNI known: nothing to say.
    assert!(
        ok(&text(" tcp-request inspect-delay 2s\n"))
            .warnings
            .is_empty()
    );
}

#[test]
fn tune_idle_park() {
    let fe =
        "frontend f\n bind 127.0.0.1:80\n default_backend b\nbackend b\n server s 127.0.0.1:81\n";
    let g = |text: &str| ok(&format!("global\n{text}\n{fe}")).config.global.idle_park;
    assert_eq!(g(""), Some(std::time::Duration::from_secs(5)));
    assert_eq!(
        g(" tune.idle-park 250ms"),
        Some(std::time::Duration::from_millis(250))
    );
    assert_eq!(g(" tune.idle-park 0"), None, "0 never parks");
    one_error(
        &format!("global\n tune.idle-park\n{fe}"),
        2,
        "tune.idle-park TIME",
    );
    one_error(&format!("global\n tune.idle-park soon\n{fe}"), 2, "soon");
}

#[test]
fn no_log_silences_only_its_own_section() {
    let logs = |text: &str, name: &str| {
        ok(text)
            .config
            .frontends
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.logs.len())
            .unwrap()
    };
    let be = "backend b\n server s 127.0.0.1:8080\n";
    let two = format!(
        "frontend quiet\n bind 127.0.0.1:80\n no log\n default_backend b\nfrontend talks\n bind 127.0.0.1:81\n default_backend b\n{be}"
    );
    assert_eq!(logs(&two, "quiet"), 0, "no log: silent");
    assert_eq!(
        logs(&two, "talks"),
        1,
        "the others keep the default (standard output)"
    );
    let back = format!(
        "frontend back\n bind 127.0.0.1:82\n no log\n log stdout format raw local0\n default_backend b\n{be}"
    );
    assert_eq!(logs(&back, "back"), 1, "a log line after no log counts");
}
