//! The runtime API's map and ACL commands: `show map`, `add map`, `set map`, `del map`, `clear map`,
//! `show acl`, `add acl`, `del acl`, `clear acl`. A map or an ACL pattern list is named by its file
//! path or by `#ID` (its number in `show map` / `show acl`). Changes apply to the next lookup; a reload
//! reads the files again (as in HAProxy, changes made here are not written back).

use std::fmt::Write;
use std::sync::Arc;

use super::pattern::{Map, PatternList};
use crate::account::Runtime;
use crate::cli::Command;
use crate::config::model::CliLevel;

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["show", "map"],
        level: CliLevel::Operator,
        help: "[<map>] : list the maps, or a map's entries",
        run: show_map,
    },
    Command {
        words: &["add", "map"],
        level: CliLevel::Admin,
        help: "<map> <key> <value> : add an entry to a map",
        run: add_map,
    },
    Command {
        words: &["set", "map"],
        level: CliLevel::Admin,
        help: "<map> <key> <value> : change the value of a map's key",
        run: set_map,
    },
    Command {
        words: &["del", "map"],
        level: CliLevel::Admin,
        help: "<map> <key> : remove a key from a map",
        run: del_map,
    },
    Command {
        words: &["clear", "map"],
        level: CliLevel::Admin,
        help: "<map> : remove every entry of a map",
        run: clear_map,
    },
    Command {
        words: &["show", "acl"],
        level: CliLevel::Operator,
        help: "[<acl>] : list the ACL pattern lists, or one list's patterns",
        run: show_acl,
    },
    Command {
        words: &["add", "acl"],
        level: CliLevel::Admin,
        help: "<acl> <pattern> : add a pattern to an ACL's list",
        run: add_acl,
    },
    Command {
        words: &["del", "acl"],
        level: CliLevel::Admin,
        help: "<acl> <pattern> : remove a pattern from an ACL's list",
        run: del_acl,
    },
    Command {
        words: &["clear", "acl"],
        level: CliLevel::Admin,
        help: "<acl> : remove every pattern of an ACL's list",
        run: clear_acl,
    },
];

/// Every ACL pattern list of the configuration, once each, with the name of the first ACL and the
/// section that use it.
fn acl_lists(rt: &Runtime) -> Vec<(Arc<PatternList>, String)> {
    let mut out: Vec<(Arc<PatternList>, String)> = Vec::new();
    let sections = rt
        .cfg
        .frontends
        .iter()
        .map(|f| (&f.name, &f.acls))
        .chain(rt.cfg.backends.iter().map(|b| (&b.name, &b.acls)));
    for (section, acls) in sections {
        for acl in acls.iter() {
            for t in &acl.tests {
                let shared = &t.matcher.shared;
                if !out.iter().any(|(l, _)| Arc::ptr_eq(l, shared)) {
                    out.push((shared.clone(), format!("acl '{}' in '{section}'", acl.name)));
                }
            }
        }
    }
    out
}

/// The lists `name` designates: a `-f` file path (every list loaded from it) or `#ID`.
fn lists(rt: &Runtime, name: Option<&&str>) -> Result<Vec<Arc<PatternList>>, String> {
    let name = name.ok_or("Missing ACL identifier.")?;
    let all = acl_lists(rt);
    let found: Vec<Arc<PatternList>> = match name.strip_prefix('#') {
        Some(id) => id
            .parse::<usize>()
            .ok()
            .and_then(|i| all.get(i))
            .map(|(l, _)| l.clone())
            .into_iter()
            .collect(),
        None => all
            .into_iter()
            .filter(|(l, _)| l.files.iter().any(|f| f == name))
            .map(|(l, _)| l)
            .collect(),
    };
    if found.is_empty() {
        return Err("Unknown ACL identifier. Please use #<id> or <file>.".into());
    }
    Ok(found)
}

fn show_acl(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    if args.is_empty() {
        out.push_str("# id (file) description\n");
        for (i, (l, what)) in acl_lists(rt).iter().enumerate() {
            let _ = writeln!(
                out,
                "{i} ({}) {what} entry_cnt={}",
                l.files.join(","),
                l.patterns().len()
            );
        }
        return Ok(out);
    }
    let l = &lists(rt, args.first())?[0];
    for (i, p) in l.patterns().iter().enumerate() {
        let _ = writeln!(out, "0x{:x} {p}", i + 1);
    }
    Ok(out)
}

fn add_acl(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [_, pattern] = args else {
        return Err("'add acl' expects two parameters: ACL identifier and pattern.".into());
    };
    for l in lists(rt, args.first())? {
        let mut pats = l.patterns();
        pats.push(pattern.to_string());
        l.set(pats)?;
    }
    Ok(String::new())
}

fn del_acl(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [_, pattern] = args else {
        return Err("'del acl' expects two parameters: ACL identifier and pattern.".into());
    };
    let mut found = false;
    for l in lists(rt, args.first())? {
        let mut pats = l.patterns();
        let before = pats.len();
        pats.retain(|p| p != pattern);
        if pats.len() != before {
            found = true;
            l.set(pats)?;
        }
    }
    if found {
        Ok(String::new())
    } else {
        Err("Key not found.".into())
    }
}

fn clear_acl(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    for l in lists(rt, args.first())? {
        l.set(Vec::new())?;
    }
    Ok(String::new())
}

/// The maps `name` designates: a file path (every match method using that file) or `#ID`.
fn maps<'a>(rt: &'a Runtime, name: Option<&&str>) -> Result<Vec<&'a Arc<Map>>, String> {
    let name = name.ok_or("Missing map identifier.")?;
    let found: Vec<&Arc<Map>> = match name.strip_prefix('#') {
        Some(id) => id
            .parse::<usize>()
            .ok()
            .and_then(|i| rt.cfg.maps.get(i))
            .into_iter()
            .collect(),
        None => rt.cfg.maps.iter().filter(|m| m.path == *name).collect(),
    };
    if found.is_empty() {
        return Err("Unknown map identifier. Please use #<id> or <file>.".into());
    }
    Ok(found)
}

fn show_map(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let mut out = String::new();
    if args.is_empty() {
        out.push_str("# id (file) entries\n");
        for (i, m) in rt.cfg.maps.iter().enumerate() {
            let _ = writeln!(out, "{i} ({}) entry_cnt={}", m.path, m.len());
        }
        return Ok(out);
    }
    let m = maps(rt, args.first())?[0];
    for (i, (k, v)) in m.entries().iter().enumerate() {
        let _ = writeln!(out, "0x{:x} {k} {v}", i + 1);
    }
    Ok(out)
}

fn add_map(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [_, key, value @ ..] = args else {
        return Err("'add map' expects three parameters: map identifier, key and value.".into());
    };
    if value.is_empty() {
        return Err("'add map' expects three parameters: map identifier, key and value.".into());
    }
    let value = value.join(" ");
    for m in maps(rt, args.first())? {
        m.add(key, &value)?;
    }
    Ok(String::new())
}

fn set_map(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [_, key, value @ ..] = args else {
        return Err("'set map' expects three parameters: map identifier, key and value.".into());
    };
    if value.is_empty() {
        return Err("'set map' expects three parameters: map identifier, key and value.".into());
    }
    let value = value.join(" ");
    let mut found = false;
    for m in maps(rt, args.first())? {
        found |= m.set(key, &value);
    }
    if found {
        Ok(String::new())
    } else {
        Err("entry not found.".into())
    }
}

fn del_map(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [_, key] = args else {
        return Err("This command expects two parameters: map identifier and key.".into());
    };
    let mut found = false;
    for m in maps(rt, args.first())? {
        found |= m.remove(key);
    }
    if found {
        Ok(String::new())
    } else {
        Err("Key not found.".into())
    }
}

fn clear_map(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    for m in maps(rt, args.first())? {
        m.clear();
    }
    Ok(String::new())
}
