//! The stats URI's answer (`stats uri`), after `stats auth` passed: an HTML page with one table per
//! proxy (its frontend, its servers, its backend), coloured by state, built from the same rows as the
//! runtime API's `show stat`; `;csv` gives exactly that CSV. With `stats admin if COND` and the
//! condition true, each backend's table has a form that enables, disables, drains or readies the
//! servers ticked (a POST answered with a redirect back to the page).

use std::fmt::Write;

use crate::account::Runtime;
use crate::account::cli::{CSV_COLUMNS, csv, stat_rows};
use crate::config::model::StatsSettings;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The columns shown, with their headings.
const SHOWN: [(&str, &str); 15] = [
    ("qcur", "Queue"),
    ("scur", "Sessions"),
    ("slim", "Limit"),
    ("stot", "Total"),
    ("bin", "Bytes in"),
    ("bout", "Bytes out"),
    ("req_tot", "Requests"),
    ("econ", "Conn errors"),
    ("srv_abrt", "Server aborts"),
    ("status", "Status"),
    ("weight", "Weight"),
    ("act", "Act"),
    ("bck", "Bck"),
    ("addr", "Address"),
    ("check_status", "Check"),
];

fn colour(status: &str) -> &'static str {
    match status {
        "UP" | "OPEN" => "#c0ffc0",
        "no check" => "#e0ffe0",
        "DRAIN" => "#ffd020",
        "MAINT" => "#c0c0ff",
        "" => "#f0f0f0",
        _ => "#ffa0a0",
    }
}

/// An answer of ours: the page (or the CSV), with `notice` shown above the tables.
pub fn page(
    rt: &Runtime,
    st: &StatsSettings,
    csv_form: bool,
    admin: bool,
    notice: &str,
) -> Vec<u8> {
    let (kind, body) = if csv_form {
        ("text/plain", csv(rt))
    } else {
        ("text/html", html(rt, st, admin, notice))
    };
    super::reply::ok(kind, body.as_bytes())
}

fn html(rt: &Runtime, st: &StatsSettings, admin: bool, notice: &str) -> String {
    let names: Vec<&str> = CSV_COLUMNS.split(',').collect();
    let col = |n: &str| names.iter().position(|c| *c == n).unwrap_or(0);
    let mut body = String::from("<html><head><title>Statistics Report</title>");
    if let Some(t) = st.refresh {
        let _ = write!(
            body,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            t.as_secs().max(1)
        );
    }
    body.push_str(
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin-bottom:1em}\
         td,th{border:1px solid #999;padding:2px 6px;text-align:right}td.n,th.n{text-align:left}\
         caption{text-align:left;font-weight:bold;padding:4px 0}</style></head><body><h1>Statistics Report</h1>",
    );
    if !st.hide_version {
        let _ = write!(body, "<p>gatehouse {}</p>", env!("CARGO_PKG_VERSION"));
    }
    if !notice.is_empty() {
        let _ = write!(body, "<p><b>{}</b></p>", escape(notice));
    }
    let rows = stat_rows(rt);
    // One table per proxy, in `show stat` order.
    let mut i = 0;
    while i < rows.len() {
        let px = rows[i][0].clone();
        let end = rows[i..]
            .iter()
            .position(|r| r[0] != px)
            .map_or(rows.len(), |n| i + n);
        let group = &rows[i..end];
        let has_servers = group.iter().any(|r| r[col("type")] == "2");
        let form = admin && has_servers;
        if form {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"b\" value=\"{}\">",
                escape(&st.uri),
                escape(&px)
            );
        }
        let _ = write!(
            body,
            "<table><caption>{}</caption><tr>{}<th class=n>Name</th>",
            escape(&px),
            if form { "<th></th>" } else { "" }
        );
        for (_, h) in SHOWN {
            let _ = write!(body, "<th>{h}</th>");
        }
        body.push_str("</tr>\n");
        for r in group {
            let status = &r[col("status")];
            let _ = write!(body, "<tr style=\"background:{}\">", colour(status));
            if form {
                if r[col("type")] == "2" {
                    let _ = write!(
                        body,
                        "<td><input type=\"checkbox\" name=\"s\" value=\"{}\"></td>",
                        escape(&r[1])
                    );
                } else {
                    body.push_str("<td></td>");
                }
            }
            let _ = write!(body, "<td class=n>{}</td>", escape(&r[1]));
            for (c, _) in SHOWN {
                let _ = write!(body, "<td>{}</td>", escape(&r[col(c)]));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
        if form {
            body.push_str(
                "Selected servers: <select name=\"action\"><option value=\"ready\">set state to READY</option>\
                 <option value=\"drain\">set state to DRAIN</option><option value=\"maint\">set state to MAINT</option>\
                 </select> <input type=\"submit\" value=\"Apply\"></form>\n",
            );
        }
        i = end;
    }
    body.push_str("</body></html>\n");
    body
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    match std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Applies a posted admin form: `b` (backend), `s` (servers, repeated), `action`. Returns the notice.
pub fn apply(rt: &Runtime, fields: &[(String, String)]) -> String {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(b), Some(action)) = (get("b"), get("action")) else {
        return "Nothing done: no backend or action given.".into();
    };
    let servers: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n == "s")
        .map(|(_, v)| v.as_str())
        .collect();
    if servers.is_empty() {
        return "Nothing done: no server selected.".into();
    }
    let mut done = 0;
    for s in &servers {
        if crate::balance::admin::set_state(rt, &format!("{b}/{s}"), action).is_ok() {
            done += 1;
        }
    }
    format!(
        "Action '{action}' applied to {done} of {} server(s).",
        servers.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(
            form_fields(b"b=app&s=web+1&s=a%2Fb&action=drain&x"),
            [
                ("b".to_string(), "app".to_string()),
                ("s".into(), "web 1".into()),
                ("s".into(), "a/b".into()),
                ("action".into(), "drain".into()),
                ("x".into(), String::new()),
            ]
        );
        assert_eq!(
            form_fields(b"a=%zz&b=%4"),
            [
                ("a".to_string(), "%zz".to_string()),
                ("b".into(), "%4".into())
            ]
        );
    }
}
