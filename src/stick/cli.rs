//! The runtime API's stick table commands: `show table`, `clear table`, `set table`, in HAProxy's
//! syntax and output format.

use std::fmt::Write;

use super::{Key, Read, Table};
use crate::account::Runtime;
use crate::cli::Command;
use crate::config::model::{CliLevel, KeyType};

pub const COMMANDS: &[Command] = &[
    Command {
        words: &["show", "table"],
        level: CliLevel::Operator,
        help: "[<table> [key <k> | data.<type> <op> <v>]] : list the tables, or a table's entries",
        run: show_table,
    },
    Command {
        words: &["clear", "table"],
        level: CliLevel::Operator,
        help: "<table> [key <k> | data.<type> <op> <v>] : remove entries no session tracks",
        run: clear_table,
    },
    Command {
        words: &["set", "table"],
        level: CliLevel::Admin,
        help: "<table> key <k> data.<type> <v> : set a stored counter of an entry",
        run: set_table,
    },
];

fn type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::Ip => "ip",
        KeyType::Ipv6 => "ipv6",
        KeyType::Integer => "integer",
        KeyType::String(_) => "string",
        KeyType::Binary(_) => "binary",
    }
}

fn table<'a>(rt: &'a Runtime, name: &str) -> Result<&'a Table, String> {
    rt.tables
        .iter()
        .find(|t| t.def.name == name)
        .map(|t| &**t)
        .ok_or_else(|| "No such table".to_string())
}

fn header(t: &Table) -> String {
    format!(
        "# table: {}, type: {}, size:{}, used:{}\n",
        t.def.name,
        type_name(t.def.key_type),
        t.def.size,
        t.len()
    )
}

/// Which entries a command is about: all, one key, or those whose value passes a comparison.
enum Filter {
    All,
    Key(Key),
    Data(String, fn(u64, u64) -> bool, u64),
}

impl Filter {
    fn parse(t: &Table, args: &[&str]) -> Result<Filter, String> {
        match args {
            [] => Ok(Filter::All),
            ["key", k] => Key::of(t.def.key_type, k)
                .map(Filter::Key)
                .ok_or_else(|| format!("'{k}' is not a key of this table's type")),
            [d, op, v] if d.starts_with("data.") => {
                let op: fn(u64, u64) -> bool = match *op {
                    "eq" => |a, b| a == b,
                    "ne" => |a, b| a != b,
                    "lt" => |a, b| a < b,
                    "le" => |a, b| a <= b,
                    "gt" => |a, b| a > b,
                    "ge" => |a, b| a >= b,
                    _ => return Err("Require an operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"".into()),
                };
                let v = v.parse().map_err(|_| "Require a valid integer value to compare against")?;
                Ok(Filter::Data(d["data.".len()..].to_string(), op, v))
            }
            _ => Err("Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>".into()),
        }
    }

    fn keeps(&self, key: &Key, values: &[(String, u64)]) -> bool {
        match self {
            Filter::All => true,
            Filter::Key(k) => k == key,
            Filter::Data(name, op, v) => values
                .iter()
                .find(|(n, _)| n == name || n.split('(').next() == Some(name.as_str()))
                .is_some_and(|(_, x)| op(*x, *v)),
        }
    }
}

fn show_table(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let Some(name) = args.first() else {
        return Ok(rt.tables.iter().map(|t| header(t)).collect());
    };
    let t = table(rt, name)?;
    let filter = Filter::parse(t, &args[1..])?;
    let mut out = header(t);
    let mut entries = t.entries();
    entries.sort_by_key(|e| e.0.to_string());
    for (i, (key, exp, values)) in entries.iter().enumerate() {
        if !filter.keeps(key, values) {
            continue;
        }
        let use_ = t.read(key, Read::ConnCur);
        let _ = write!(
            out,
            "0x{:x}: key={key} use={use_} exp={}",
            i + 1,
            exp.unwrap_or(0)
        );
        for (n, v) in values {
            let _ = write!(out, " {n}={v}");
        }
        out.push('\n');
    }
    Ok(out)
}

fn clear_table(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let Some(name) = args.first() else {
        return Err("Require a table name".into());
    };
    let t = table(rt, name)?;
    match Filter::parse(t, &args[1..])? {
        Filter::All => {
            t.clear(None);
        }
        Filter::Key(k) => {
            t.clear(Some(&k));
        }
        f @ Filter::Data(..) => {
            for (key, _, values) in t.entries() {
                if f.keeps(&key, &values) {
                    t.clear(Some(&key));
                }
            }
        }
    }
    Ok(String::new())
}

fn set_table(rt: &Runtime, args: &[&str]) -> Result<String, String> {
    let [name, "key", k, rest @ ..] = args else {
        return Err(
            "Usage: set table <table> key <key> data.<type> <value> [data.<type> <value> ...]"
                .into(),
        );
    };
    let t = table(rt, name)?;
    let key = Key::of(t.def.key_type, k)
        .ok_or_else(|| format!("'{k}' is not a key of this table's type"))?;
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(
            "Usage: set table <table> key <key> data.<type> <value> [data.<type> <value> ...]"
                .into(),
        );
    }
    for pair in rest.chunks(2) {
        let what = pair[0]
            .strip_prefix("data.")
            .and_then(Read::parse)
            .ok_or_else(|| {
                format!(
                    "'{}': write data.TYPE with a type the table stores",
                    pair[0]
                )
            })?;
        let v: u64 = pair[1]
            .parse()
            .map_err(|_| "Require a valid integer value to store")?;
        if !t.set(&key, what, v) {
            return Err(format!(
                "Data type {} not stored in this table, or not settable",
                pair[0]
            ));
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_set_and_clear() {
        let cfg = crate::config::from_str(
            "t.cfg",
            "backend b\n stick-table type ip size 10 expire 30s store gpc0,conn_cnt,http_req_rate(10s)\n server s 10.0.0.1:80\n",
        )
        .unwrap()
        .config;
        let rt = Runtime::new(std::sync::Arc::new(cfg));
        assert_eq!(
            show_table(&rt, &[]).unwrap(),
            "# table: b, type: ip, size:10, used:0\n"
        );
        assert_eq!(
            set_table(&rt, &["b", "key", "10.1.1.1", "data.gpc0", "7"]),
            Ok(String::new())
        );
        assert!(set_table(&rt, &["b", "key", "10.1.1.1", "data.gpt0", "1"]).is_err());
        let out = show_table(&rt, &["b"]).unwrap();
        assert!(out.contains("key=10.1.1.1 use=0 exp="), "{out}");
        assert!(
            out.contains("gpc0=7 conn_cnt=0 http_req_rate(10000)=0"),
            "{out}"
        );
        assert_eq!(
            show_table(&rt, &["b", "data.gpc0", "gt", "7"])
                .unwrap()
                .lines()
                .count(),
            1
        );
        assert_eq!(
            show_table(&rt, &["b", "data.gpc0", "ge", "7"])
                .unwrap()
                .lines()
                .count(),
            2
        );
        assert_eq!(show_table(&rt, &["zz"]), Err("No such table".into()));
        clear_table(&rt, &["b", "key", "10.1.1.1"]).unwrap();
        assert_eq!(rt.tables[0].len(), 0);
    }
}
