//! The runtime API's map commands: `show map`, `add map`, `set map`, `del map`, `clear map`. A
//! map is named by its file path or by `#ID` (its number in `show map`). Changes apply to the next
//! lookup; a reload reads the files again (as in HAProxy, changes made here are not written back).

use std::fmt::Write;
use std::sync::Arc;

use super::pattern::Map;
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
];

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
