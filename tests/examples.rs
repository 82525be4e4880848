//! Test 10 of the core issue: `gatehouse -c` on every configuration from our users' notes (copied from
//! shared/examples into tests/examples). Each must check cleanly except for directives a later issue
//! brings ("not supported yet"), and HAProxy directives gatehouse ignores must draw a one-line warning
//! naming file:line, never a failure. `user`/`group` are real since issue #5: they must name a user and
//! group the host has, as in HAProxy.

use std::path::Path;
use std::process::Command;

struct Outcome {
    code: i32,
    errors: Vec<String>,
    warnings: Vec<String>,
}

fn check(file: &str) -> Outcome {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples");
    // Run from the examples' folder: their errorfile paths are relative to it, as for HAProxy.
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .current_dir(&dir)
        .args(["-c", "-f", file])
        .output()
        .expect("running gatehouse -c");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = |kind: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| l.starts_with(&format!("{file}:")) && l.contains(&format!(": {kind}: ")))
            .map(str::to_string)
            .collect()
    };
    Outcome {
        code: out.status.code().unwrap_or(-1),
        errors: lines("error"),
        warnings: lines("warning"),
    }
}

/// Since http mode (issue #4) every example is valid: no errors, exit status 0.
fn only_later_issues(o: &Outcome, file: &str) {
    assert!(o.errors.is_empty(), "{file}: errors: {:#?}", o.errors);
    assert_eq!(o.code, 0, "{file}: no errors but exit {}", o.code);
}

/// `user haproxy` and `group haproxy` (issue #5) are real: valid where the host has that user and
/// group (as a host running HAProxy does), and otherwise exactly the two lines are errors, each naming
/// what to create; nothing else in the file may be.
fn runs_as_haproxy(o: &Outcome, file: &str, user_line: usize, group_line: usize) {
    let user = nix::unistd::User::from_name("haproxy").ok().flatten();
    let group = nix::unistd::Group::from_name("haproxy").ok().flatten();
    if user.is_some() && group.is_some() {
        only_later_issues(o, file);
    } else {
        assert_eq!(
            o.code, 1,
            "{file}: exit {} without the haproxy user",
            o.code
        );
        let mut want = Vec::new();
        if user.is_none() {
            want.push((
                user_line,
                "no user 'haproxy' on this host; create it (useradd",
            ));
        }
        if group.is_none() {
            want.push((
                group_line,
                "no group 'haproxy' on this host; create it (groupadd",
            ));
        }
        assert_eq!(
            o.errors.len(),
            want.len(),
            "{file}: errors: {:#?}",
            o.errors
        );
        for (line, text) in want {
            let prefix = format!("{file}:{line}: error: ");
            assert!(
                o.errors
                    .iter()
                    .any(|e| e.starts_with(&prefix) && e.contains(text)),
                "{file}: no error at line {line} saying {text:?}: {:#?}",
                o.errors
            );
        }
    }
    for line in [user_line, group_line] {
        let prefix = format!("{file}:{line}: warning: ");
        assert!(
            !o.warnings.iter().any(|w| w.starts_with(&prefix)),
            "{file}: line {line} still draws a warning: {:#?}",
            o.warnings
        );
    }
}

fn warns(o: &Outcome, file: &str, line: usize, word: &str) {
    let prefix = format!("{file}:{line}: warning: '{word}");
    assert!(
        o.warnings
            .iter()
            .any(|w| w.starts_with(&prefix) && w.contains("ignored")),
        "{file}: no ignore-warning for '{word}' at line {line}; warnings: {:#?}",
        o.warnings
    );
}

#[test]
fn example_01_listen_roundrobin_stats() {
    let f = "01-listen-roundrobin-stats.cfg";
    let o = check(f);
    runs_as_haproxy(&o, f, 6, 7);
    warns(&o, f, 3, "chroot");
    warns(&o, f, 8, "daemon");
    warns(&o, f, 10, "spread-checks");
    warns(&o, f, 36, "no option splice-response");
}

#[test]
fn example_02_host_routing() {
    let f = "02-host-routing.cfg";
    let o = check(f);
    runs_as_haproxy(&o, f, 5, 6);
    warns(&o, f, 7, "daemon");
}

#[test]
fn example_03_path_ua_acl_deny() {
    let f = "03-path-ua-acl-deny.cfg";
    let o = check(f);
    only_later_issues(&o, f);
    // Nothing draws a warning: the runtime API's socket line is read (tests/cli.rs runs it).
    assert!(o.warnings.is_empty(), "{:#?}", o.warnings);
}

#[test]
fn example_04_transparent_cookie() {
    let f = "04-transparent-cookie.cfg";
    let o = check(f);
    only_later_issues(&o, f);
    // The transparent part is ours already: no error may be about `source ... usesrc clientip`.
    assert!(
        !o.errors
            .iter()
            .any(|e| e.contains("usesrc") || e.contains("'source'")),
        "{:#?}",
        o.errors
    );
}

#[test]
fn example_05_sni_passthrough() {
    let f = "05-sni-passthrough.cfg";
    let o = check(f);
    only_later_issues(&o, f);
    // SNI routing (inspect-delay, content rules, ACLs, use_backend) works since issue #3, and the
    // backends' `check` and `balance source` since issue #4: the whole file is valid.
    assert!(o.errors.is_empty(), "{:#?}", o.errors);
    assert_eq!(o.code, 0);
}

#[test]
fn every_example_is_covered() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".cfg") {
            n += 1;
            let o = check(&name);
            only_later_issues(&o, &name);
        }
    }
    assert_eq!(n, 5, "a new example needs its own test above");
}

#[test]
fn the_default_config_checks_and_is_printed() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("intercept tcp dport 80,443"));
    assert!(stdout.contains("Configuration file is valid"));
}

#[test]
fn a_broken_file_fails_with_file_line_and_fix() {
    let dir = std::env::temp_dir().join(format!("gatehouse-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.cfg");
    std::fs::write(&f, "frontend f\n    bind :80\n    defualt_backend b\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3: error: unknown keyword 'defualt_backend'",
            f.display()
        )) && stderr.contains("did you mean 'default_backend'"),
        "{stderr}"
    );
}

/// The tunnel's two shipped configurations (docs/tunnel.md) check cleanly with the certificates
/// scripts/tunnel-certs.sh makes, put where their crt-base/ca-base say.
#[test]
fn the_tunnel_configs_check_with_the_tunnel_certificates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("gatehouse-tunnel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let certs = dir.join("certs");
    let made = Command::new("bash")
        .arg(root.join("scripts/tunnel-certs.sh"))
        .arg(&certs)
        .args(["exit.tunnel.example", "entry"])
        .output()
        .expect("running scripts/tunnel-certs.sh (needs openssl)");
    assert!(
        made.status.success(),
        "tunnel-certs.sh: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    for name in ["tunnel-entry.cfg", "tunnel-exit.cfg"] {
        let text = std::fs::read_to_string(root.join("config").join(name)).unwrap();
        assert!(
            text.contains("/etc/gatehouse/tunnel"),
            "{name} names its certificate folder"
        );
        let f = dir.join(name);
        std::fs::write(
            &f,
            text.replace("/etc/gatehouse/tunnel", certs.to_str().unwrap()),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["-c", "-f"])
            .arg(&f)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(!stderr.contains("warning"), "{name}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
