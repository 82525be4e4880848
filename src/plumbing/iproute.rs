//! Policy routing over rtnetlink: `ip rule add fwmark MARK lookup TABLE pref PREF` and
//! `ip route add local default dev lo table TABLE`, per family, both stamped `proto 103` so removal
//! finds exactly what gatehouse made, including a killed run's leftovers.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder};

use super::{Family, Plan, PlumbingError, RTPROT_GATEHOUSE};

/// Every route of one family, in every table (a dump, as `ip route show table all`).
pub(crate) async fn all_routes(
    h: &Handle,
    f: Family,
) -> Result<Vec<RouteMessage>, rtnetlink::Error> {
    let filter = match f {
        Family::V4 => RouteMessageBuilder::<Ipv4Addr>::new().table_id(0).build(),
        Family::V6 => RouteMessageBuilder::<Ipv6Addr>::new().table_id(0).build(),
    };
    h.route().get(filter).execute().try_collect().await
}

fn ip_flag(f: Family) -> &'static str {
    match f {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

/// The `ip` commands equivalent to what [`apply`] does.
pub fn render(plan: &Plan) -> String {
    let s = &plan.settings;
    let mut o = String::new();
    for f in &plan.families {
        let v = ip_flag(*f);
        let _ = writeln!(
            o,
            "ip {v} rule add fwmark {:#x} lookup {} pref {} proto {RTPROT_GATEHOUSE}",
            s.mark, s.table, s.rule_pref
        );
        let _ = writeln!(
            o,
            "ip {v} route replace local default dev lo table {} proto {RTPROT_GATEHOUSE}",
            s.table
        );
    }
    o
}

fn nl(e: impl std::fmt::Display) -> PlumbingError {
    PlumbingError::Netlink(e.to_string())
}

async fn connect() -> Result<Handle, PlumbingError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
    tokio::spawn(conn);
    Ok(handle)
}

fn is_ours_rule(m: &RuleMessage) -> bool {
    m.attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Protocol(p) if u8::from(*p) == RTPROT_GATEHOUSE))
}

fn is_ours_route(m: &RouteMessage) -> bool {
    m.header.protocol == RouteProtocol::Other(RTPROT_GATEHOUSE)
}

pub async fn apply(plan: &Plan) -> Result<(), PlumbingError> {
    let h = connect().await?;
    // Replace, never double: drop any rule or route of ours first (a killed run's, or an old mark's).
    remove_with(&h).await?;
    let s = &plan.settings;
    let lo = h
        .link()
        .get()
        .match_name("lo".to_string())
        .execute()
        .try_next()
        .await
        .map_err(nl)?
        .ok_or_else(|| PlumbingError::Netlink("no 'lo' interface".into()))?
        .header
        .index;
    for f in &plan.families {
        let base = h
            .rule()
            .add()
            .fw_mark(s.mark)
            .table_id(s.table)
            .priority(s.rule_pref)
            .action(RuleAction::ToTable);
        let route = match f {
            Family::V4 => {
                add_rule(base.v4()).await?;
                local_default(
                    RouteMessageBuilder::<Ipv4Addr>::new()
                        .destination_prefix(Ipv4Addr::UNSPECIFIED, 0),
                    lo,
                    s.table,
                )
            }
            Family::V6 => {
                add_rule(base.v6()).await?;
                local_default(
                    RouteMessageBuilder::<Ipv6Addr>::new()
                        .destination_prefix(Ipv6Addr::UNSPECIFIED, 0),
                    lo,
                    s.table,
                )
            }
        };
        h.route().add(route).replace().execute().await.map_err(nl)?;
    }
    Ok(())
}

/// Adds a rule stamped with our protocol number.
async fn add_rule<T>(mut r: rtnetlink::RuleAddRequest<T>) -> Result<(), PlumbingError> {
    r.message_mut()
        .attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(
            RTPROT_GATEHOUSE,
        )));
    r.execute().await.map_err(nl)
}

/// `local DEFAULT dev lo table TABLE proto 103`, for a builder that already holds the default prefix.
fn local_default<T>(b: RouteMessageBuilder<T>, lo: u32, table: u32) -> RouteMessage {
    b.output_interface(lo)
        .table_id(table)
        .kind(RouteType::Local)
        .scope(RouteScope::Host)
        .protocol(RouteProtocol::Other(RTPROT_GATEHOUSE))
        .build()
}

/// Removes our rules and routes in both families, whatever mark or table they use: a leftover may
/// come from a run with another config.
pub async fn remove() -> Result<(), PlumbingError> {
    let h = connect().await?;
    remove_with(&h).await
}

async fn remove_with(h: &Handle) -> Result<(), PlumbingError> {
    for v in [IpVersion::V4, IpVersion::V6] {
        let rules: Vec<RuleMessage> = h
            .rule()
            .get(v.clone())
            .execute()
            .try_collect()
            .await
            .map_err(nl)?;
        for r in rules.into_iter().filter(is_ours_rule) {
            h.rule().del(r).execute().await.map_err(nl)?;
        }
    }
    for f in [Family::V4, Family::V6] {
        // Dump every table and keep our local routes: a leftover may sit in a table we no longer use.
        let routes = all_routes(h, f).await.map_err(nl)?;
        for r in routes.into_iter().filter(is_ours_route) {
            h.route().del(r).execute().await.map_err(nl)?;
        }
    }
    Ok(())
}
