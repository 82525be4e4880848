//! The runtime API (stats socket): a real unix socket and a TCP one bound from config, driven the
//! way socat drives HAProxy's: one line of `;`-separated commands, or `prompt` for a session.
//! Levels are enforced, answers end with an empty line, server changes reach the balancer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gatehouse::account::Runtime;
use gatehouse::config::model::CliLevel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime(extra_global: &str) -> Arc<Runtime> {
    let text = format!(
        "global\n plumbing none\n{extra_global}\ndefaults\n mode http\n timeout client 5s\n timeout server 5s\n timeout connect 1s\nfrontend f\n bind 127.0.0.1:1\n default_backend b\nbackend b\n stick-table type ip size 100 store gpc0\n server s1 10.0.0.1:80 weight 10\n server s2 10.0.0.2:80 weight 10\n"
    );
    let cfg = gatehouse::config::from_str("cli.cfg", &text)
        .unwrap()
        .config;
    Arc::new(Runtime::new(Arc::new(cfg)))
}

/// Sends `input` on a fresh session at `level` and returns everything it answered.
async fn ask(rt: &Arc<Runtime>, level: CliLevel, input: &str) -> String {
    let (mut ours, theirs) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(gatehouse::cli::session(
        rt.clone(),
        theirs,
        level,
        Duration::from_secs(2),
    ));
    ours.write_all(input.as_bytes()).await.unwrap();
    let mut out = String::new();
    ours.read_to_string(&mut out).await.unwrap();
    task.await.unwrap();
    out
}

#[tokio::test]
async fn one_line_several_commands_each_ending_with_an_empty_line() {
    let rt = runtime("");
    let out = ask(
        &rt,
        CliLevel::Admin,
        "set server b/s1 weight 50%; show servers state b\n",
    )
    .await;
    let mut parts = out.splitn(2, '\n');
    assert_eq!(
        parts.next(),
        Some(""),
        "an empty answer is one empty line: {out:?}"
    );
    let state = parts.next().unwrap();
    assert!(
        state.starts_with("1\n# be_id be_name srv_id srv_name"),
        "{state}"
    );
    assert!(state.contains("\n1 b 1 s1 10.0.0.1 2 0 5 10 "), "{state}");
    assert!(state.ends_with("\n\n"), "{state:?}");
    assert_eq!(
        rt.backends[0].health[0]
            .weight
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
}

#[tokio::test]
async fn levels_are_enforced() {
    let rt = runtime("");
    assert_eq!(
        ask(&rt, CliLevel::User, "disable server b/s1\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Operator, "set server b/s1 state maint\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(ask(&rt, CliLevel::Operator, "clear table b\n").await, "\n");
    assert!(
        !rt.backends[0].health[0]
            .maint
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    // A user may read the counters.
    assert!(
        ask(&rt, CliLevel::User, "show stat\n")
            .await
            .starts_with("# pxname,svname,")
    );
    // help lists only what the level may run.
    let help = ask(&rt, CliLevel::User, "help\n").await;
    assert!(
        help.contains("show stat") && !help.contains("disable server"),
        "{help}"
    );
}

#[tokio::test]
async fn server_state_reaches_the_balancer() {
    let rt = runtime("");
    ask(&rt, CliLevel::Admin, "disable server b/s1\n").await;
    let stat = ask(&rt, CliLevel::Admin, "show stat\n").await;
    let s1: Vec<&str> = stat
        .lines()
        .find(|l| l.starts_with("b,s1,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(s1[17], "MAINT");
    let cands = gatehouse::balance::candidates(&rt, 0, &[]).unwrap();
    assert_eq!(cands.iter().map(|c| c.index).collect::<Vec<_>>(), [1]);
    ask(
        &rt,
        CliLevel::Admin,
        "enable server b/s1; set server b/s2 state drain\n",
    )
    .await;
    let cands = gatehouse::balance::candidates(&rt, 0, &[]).unwrap();
    assert_eq!(cands.iter().map(|c| c.index).collect::<Vec<_>>(), [0]);
    let stat = ask(&rt, CliLevel::Admin, "show stat\n").await;
    assert!(
        stat.contains("\nb,s2,") && stat.contains(",DRAIN,"),
        "{stat}"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "set server b/s1 state sleepy\n").await,
        "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "disable server b/nope\n").await,
        "No such server.\n\n"
    );
}

#[tokio::test]
async fn prompt_keeps_the_session_until_quit() {
    let rt = runtime("");
    let out = ask(
        &rt,
        CliLevel::Admin,
        "prompt\nset table b key 10.0.0.9 data.gpc0 3\nshow table b key 10.0.0.9\nquit\n",
    )
    .await;
    assert!(out.starts_with("\n> \n> # table: b, type: ip, size:100, used:1\n0x1: key=10.0.0.9 use=0 exp=0 gpc0=3\n\n> "), "{out:?}");
}

#[tokio::test]
async fn unknown_commands_get_the_help() {
    let rt = runtime("");
    let out = ask(&rt, CliLevel::Admin, "show nothing\n").await;
    assert!(
        out.starts_with(
            "Unknown command: 'show nothing'\nThe following commands are valid at this level:\n"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn sockets_from_the_config() {
    let dir = std::env::temp_dir().join(format!("gh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("admin.sock");
    // A socket file left by a killed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = runtime(&format!(
        " stats socket {} mode 600 level admin\n stats socket ipv4@127.0.0.1:{port} level user\n stats timeout 3s",
        path.display()
    ));
    let listeners = gatehouse::cli::bind(&rt.cfg.global.stats_sockets).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let server = tokio::spawn(gatehouse::cli::serve(
        tokio::sync::watch::channel(rt.clone()).1,
        listeners,
    ));

    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"show info\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("Name: gatehouse\n") && out.contains("\nPid: "),
        "{out}"
    );

    let mut t = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    t.write_all(b"disable server b/s1\n").await.unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "Permission denied\n\n");
    server.abort();

    // Anything but a socket in the way is an error, not deleted.
    let file = dir.join("file");
    std::fs::write(&file, "keep").unwrap();
    let rt = runtime(&format!(" stats socket {} level admin", file.display()));
    assert!(gatehouse::cli::bind(&rt.cfg.global.stats_sockets).is_err());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_errors_name_the_fix() {
    for (line, want) in [
        (" stats socket", "write 'stats socket"),
        (" stats socket /tmp/x level root", "unknown level 'root'"),
        (" stats socket /tmp/x mode 999", "not an octal file mode"),
        (
            " stats socket ipv4@127.0.0.1 level admin",
            "is not ADDRESS:PORT",
        ),
        (
            " stats socket ipv4@127.0.0.1:1 mode 600",
            "apply to unix sockets only",
        ),
        (
            " stats socket /tmp/x user no-such-user-here",
            "no user 'no-such-user-here'",
        ),
        (" stats timeout", "stats timeout TIME"),
    ] {
        let text = format!("global\n{line}\nfrontend f\n bind 127.0.0.1:1\n");
        let err = gatehouse::config::from_str("t.cfg", &text)
            .expect_err(line)
            .to_string();
        assert!(
            err.contains(want) && err.contains("t.cfg:2"),
            "{line}: {err}"
        );
    }
}

#[tokio::test]
async fn sessions_are_listed_and_shut_down() {
    sessions_listed_and_shut_down(" tune.idle-park 0\n", 0).await;
}

/// The same with both sessions parked (quiet for `tune.idle-park`): listed, and ended on request
/// although no task holds them.
#[tokio::test]
async fn parked_sessions_are_listed_and_shut_down() {
    sessions_listed_and_shut_down(" tune.idle-park 30ms\n", 2).await;
}

async fn sessions_listed_and_shut_down(global: &str, parked: u64) {
    let hold = Duration::from_secs(20);
    let (a, _) = common::tagged("A", hold).await;
    let (b, _) = common::tagged("B", hold).await;
    let (gw, rt, _stop) = common::gateway(&format!(
        "global\n{global}defaults\n mode tcp\n timeout client 30s\n timeout server 30s\nfrontend sess\n bind 127.0.0.1:0\n default_backend bsess\nbackend bsess\n server a {a}\n server b {b}\n"
    ))
    .await;
    let mut c1 = tokio::net::TcpStream::connect(gw).await.unwrap();
    let mut c2 = tokio::net::TcpStream::connect(gw).await.unwrap();
    // Both sessions reach their servers.
    let mut listed = String::new();
    for _ in 0..100 {
        listed = ask(&rt, CliLevel::Operator, "show sess\n").await;
        if listed.contains("srv=a ") && listed.contains("srv=b ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        listed.contains("srv=a ") && listed.contains("srv=b "),
        "{listed}"
    );
    assert!(
        listed.contains("proto=tcpv4 src=127.0.0.1:") && listed.contains(" fe=sess be=bsess "),
        "{listed}"
    );
    for _ in 0..100 {
        if rt.parked.load(std::sync::atomic::Ordering::Relaxed) == parked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rt.parked.load(std::sync::atomic::Ordering::Relaxed), parked);
    let listed = ask(&rt, CliLevel::Operator, "show sess\n").await;
    assert!(
        listed.contains("srv=a ") && listed.contains("srv=b "),
        "parked sessions are listed too: {listed}"
    );
    assert_eq!(
        ask(&rt, CliLevel::Operator, "shutdown session 0x1\n").await,
        "Permission denied\n\n"
    );

    // Every session on server a ends at once.
    assert_eq!(
        ask(&rt, CliLevel::Admin, "shutdown sessions server bsess/a\n").await,
        "\n"
    );
    // One by id: the one on b.
    let id = listed
        .lines()
        .find(|l| l.contains("srv=b "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    assert_eq!(
        ask(&rt, CliLevel::Admin, &format!("shutdown session {id}\n")).await,
        "\n"
    );
    for c in [&mut c1, &mut c2] {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
            .await
            .expect("closed at once, not after the servers' 20 s")
            .unwrap_or(0);
        assert_eq!(n, 0, "no server answer came through");
    }
    // (Other tests' sessions may be listed: the registry is the process's.)
    let after = ask(&rt, CliLevel::Operator, "show sess\n").await;
    assert!(!after.contains("fe=sess "), "{after}");
    assert_eq!(
        ask(&rt, CliLevel::Admin, "shutdown session 0xffff\n").await,
        "No such session (use 'show sess').\n\n"
    );
}

#[tokio::test]
async fn set_server_addr_moves_new_connections() {
    let (a, _) = common::tagged("A", Duration::ZERO).await;
    let (b, _) = common::tagged("B", Duration::ZERO).await;
    let (gw, rt, _stop) = common::gateway(&format!(
        "defaults\n mode tcp\n timeout client 5s\n timeout server 5s\nfrontend f\n bind 127.0.0.1:0\n default_backend be\nbackend be\n server s {a}\n server o 0.0.0.0\n"
    ))
    .await;
    // Only s is usable for this test: o dials the original destination.
    ask(&rt, CliLevel::Admin, "disable server be/o\n").await;
    assert_eq!(common::fetch(gw).await, "A");
    let cmd = format!("set server be/s addr {} port {}\n", b.ip(), b.port());
    assert_eq!(ask(&rt, CliLevel::Admin, &cmd).await, "\n");
    assert_eq!(common::fetch(gw).await, "B");
    let stat = ask(&rt, CliLevel::Admin, "show stat\n").await;
    assert!(stat.contains(&format!(",{b},")), "{stat}");
    assert_eq!(
        ask(&rt, CliLevel::Admin, "set server be/o addr 10.0.0.1\n").await,
        "this server's address comes from each connection (0.0.0.0 or %[…]); it cannot be set\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "set server be/s addr nope\n").await,
        "'nope' is not an IP address\n\n"
    );
}

#[tokio::test]
async fn show_resolvers_lists_sections() {
    let rt = runtime("");
    assert_eq!(ask(&rt, CliLevel::Operator, "show resolvers\n").await, "\n");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "show resolvers dns\n").await,
        "Can't find resolvers section 'dns'.\n\n"
    );
}

#[tokio::test]
async fn maps_change_at_run_time() {
    let dir = std::env::temp_dir().join(format!("gh-cli-map-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hosts.map");
    std::fs::write(&file, "# host backend\na.test be_a\n").unwrap();
    let cfg = format!(
        "frontend f\n mode http\n bind 127.0.0.1:1\n use_backend %[req.hdr(host),lower,map({})]\n default_backend be_b\nbackend be_a\n mode http\n server a 10.0.0.1:80\nbackend be_b\n mode http\n server b 10.0.0.2:80\n",
        file.display()
    );
    let cfg = gatehouse::config::from_str("map.cfg", &cfg).unwrap().config;
    let rt = Arc::new(Runtime::new(Arc::new(cfg)));
    let path = file.display().to_string();
    assert_eq!(
        ask(&rt, CliLevel::Operator, "show map\n").await,
        format!("# id (file) entries\n0 ({path}) entry_cnt=1\n\n")
    );
    let lookup = |k: &str| rt.cfg.maps[0].lookup(k).map(|v| v.to_string());
    assert_eq!(
        ask(
            &rt,
            CliLevel::Admin,
            &format!("add map {path} b.test be_a\n")
        )
        .await,
        "\n"
    );
    assert_eq!(lookup("b.test").as_deref(), Some("be_a"));
    assert_eq!(
        ask(&rt, CliLevel::Admin, "set map #0 b.test be_b\n").await,
        "\n"
    );
    assert_eq!(lookup("b.test").as_deref(), Some("be_b"));
    assert_eq!(
        ask(&rt, CliLevel::Operator, "show map #0\n").await,
        "0x1 a.test be_a\n0x2 b.test be_b\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Operator, "del map #0 a.test\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(ask(&rt, CliLevel::Admin, "del map #0 a.test\n").await, "\n");
    assert_eq!(lookup("a.test"), None);
    assert_eq!(
        ask(&rt, CliLevel::Admin, "del map #0 a.test\n").await,
        "Key not found.\n\n"
    );
    assert_eq!(ask(&rt, CliLevel::Admin, "clear map #0\n").await, "\n");
    assert_eq!(lookup("b.test"), None);
    assert_eq!(
        ask(&rt, CliLevel::Admin, "add map /nope k v\n").await,
        "Unknown map identifier. Please use #<id> or <file>.\n\n"
    );
    // The file itself is never written.
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# host backend\na.test be_a\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn acl_pattern_lists_change_at_run_time() {
    let dir = std::env::temp_dir().join(format!("gh-cli-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("blocked.lst");
    std::fs::write(&file, "10.9.9.9\n").unwrap();
    let path = file.display().to_string();
    let (a, _) = common::tagged("A", Duration::ZERO).await;
    let (gw, rt, _stop) = common::gateway(&format!(
        "defaults\n mode tcp\n timeout client 5s\n timeout server 5s\nfrontend f\n bind 127.0.0.1:0\n acl blocked src -f {path}\n tcp-request connection reject if blocked\n default_backend be\nbackend be\n server a {a}\n"
    ))
    .await;
    assert_eq!(common::fetch(gw).await, "A");
    let listed = ask(&rt, CliLevel::Operator, "show acl\n").await;
    assert!(
        listed.starts_with(&format!(
            "# id (file) description\n0 ({path}) acl 'blocked' in 'f' entry_cnt=1\n"
        )),
        "{listed}"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, &format!("add acl {path} 127.0.0.1\n")).await,
        "\n"
    );
    assert_eq!(common::fetch(gw).await, "", "rejected now");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "show acl #0\n").await,
        "0x1 10.9.9.9\n0x2 127.0.0.1\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "add acl #0 not-an-address\n").await,
        "'not-an-address' is not an address or CIDR (e.g. 10.0.0.0/8)\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "del acl #0 127.0.0.1\n").await,
        "\n"
    );
    assert_eq!(common::fetch(gw).await, "A");
    assert_eq!(ask(&rt, CliLevel::Admin, "clear acl #0\n").await, "\n");
    assert_eq!(ask(&rt, CliLevel::Operator, "show acl #0\n").await, "\n");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "clear acl #0\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "10.9.9.9\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn get_and_set_weight() {
    let rt = runtime("");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "get weight b/s1\n").await,
        "10 (initial 10)\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "set weight b/s1 30%\n").await,
        "\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Operator, "get weight b/s1\n").await,
        "3 (initial 10)\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Operator, "set weight b/s1 5\n").await,
        "Permission denied\n\n"
    );
}

#[tokio::test]
async fn clear_counters() {
    let rt = runtime("");
    rt.backends[0].servers[0]
        .bytes_out
        .fetch_add(99, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(ask(&rt, CliLevel::Operator, "clear counters\n").await, "\n");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "clear counters all\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(
        rt.backends[0].servers[0]
            .bytes_out
            .load(std::sync::atomic::Ordering::Relaxed),
        99
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "clear counters all\n").await,
        "\n"
    );
    assert_eq!(
        rt.backends[0].servers[0]
            .bytes_out
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn frontends_are_paused_and_resumed() {
    let (a, _) = common::tagged("A", Duration::ZERO).await;
    let (gw, rt, _stop) = common::gateway(&format!(
        "defaults\n mode tcp\n timeout client 5s\n timeout server 5s\nfrontend fpause\n bind 127.0.0.1:0\n default_backend be\nbackend be\n server a {a}\n"
    ))
    .await;
    assert_eq!(common::fetch(gw).await, "A");
    assert_eq!(
        ask(&rt, CliLevel::Admin, "disable frontend fpause\n").await,
        "\n"
    );
    assert!(
        ask(&rt, CliLevel::User, "show stat\n")
            .await
            .contains("\nfpause,FRONTEND,")
    );
    assert!(
        ask(&rt, CliLevel::User, "show stat\n")
            .await
            .contains(",STOP,")
    );
    // A connection made now waits in the backlog: no answer while paused...
    let mut c = tokio::net::TcpStream::connect(gw).await.unwrap();
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf))
            .await
            .is_err(),
        "answered while paused"
    );
    // ...and is served once resumed.
    assert_eq!(
        ask(&rt, CliLevel::Admin, "enable frontend fpause\n").await,
        "\n"
    );
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("served after enable")
        .unwrap();
    assert_eq!(&buf[..n], b"A");
    assert_eq!(
        ask(&rt, CliLevel::Operator, "disable frontend fpause\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(
        ask(&rt, CliLevel::Admin, "disable frontend nope\n").await,
        "No such frontend.\n\n"
    );
}
