//! The workload the desk actually sees, as SQL views over the projected tables, and the
//! cost model's inputs read from them ([`observe`]):
//!
//! - `workload`: tickets per channel and hour of the week (0 = Monday 00:00–01:00 UTC … 167),
//!   and the mean arrivals per hour, over the weeks the data spans (at least one). The hour of
//!   the week is arithmetic on epoch hours (1970-01-01 was a Thursday, hour 72 of its week):
//!   calendar functions on 1.2M timestamps took 0.15 s at 10M events;
//! - `handle_times`: per channel and current tier, tickets, how many have work logged and how
//!   many have an estimate instead (no work logged, some active time in progress: see
//!   `tickets.active_minutes`), the mean of each, the mean handle time of the tickets with
//!   either (`aht_minutes`; tickets with neither take the configured default in the cost
//!   model), the resolution rate and the escalation rate. Both come from maintained ticket
//!   columns: no window over the events.

/// `CREATE VIEW` statements, in order.
pub const VIEWS: &[&str] = &[
    "CREATE VIEW workload AS \
     WITH span AS ( \
       SELECT GREATEST((date_part('epoch', MAX(created_at)) - date_part('epoch', MIN(created_at))) \
                       / 604800.0, 1.0) AS weeks \
       FROM tickets) \
     SELECT CAST(channel AS VARCHAR) AS channel, \
            CAST((((CAST(created_at AS BIGINT) / 3600000) % 168 + 168 + 72) % 168) AS INT) \
              AS hour_of_week, \
            COUNT(*) AS tickets, \
            COUNT(*) / MAX(span.weeks) AS arrivals_per_hour \
     FROM tickets CROSS JOIN span \
     GROUP BY 1, 2",
    "CREATE VIEW handle_times AS \
     SELECT CAST(channel AS VARCHAR) AS channel, tier, COUNT(*) AS tickets, \
            COUNT(*) FILTER (WHERE handle_minutes > 0) AS with_work_logged, \
            COUNT(*) FILTER (WHERE handle_minutes = 0 AND active_minutes > 0) AS estimated, \
            AVG(CAST(handle_minutes AS DOUBLE)) FILTER (WHERE handle_minutes > 0) \
              AS work_logged_minutes, \
            AVG(active_minutes) FILTER (WHERE handle_minutes = 0 AND active_minutes > 0) \
              AS estimated_minutes, \
            AVG(CASE WHEN handle_minutes > 0 THEN CAST(handle_minutes AS DOUBLE) \
                     WHEN active_minutes > 0 THEN active_minutes END) AS aht_minutes, \
            AVG(CASE WHEN resolved_at IS NOT NULL THEN 1.0 ELSE 0.0 END) AS resolution_rate, \
            AVG(CASE WHEN escalation_count > 0 THEN 1.0 ELSE 0.0 END) AS escalation_rate \
     FROM tickets \
     GROUP BY 1, 2",
];

use crate::staffing::hours::{HoursSource, OpenHours, TicketGroup, channel_hours};
use crate::staffing::model::{AhtEvidence, AhtSource, ChannelLoad, CostConfig, Observed};

use super::{QueryEngine, QueryError, to_json_rows};

/// Reads the workload from the published snapshot: arrivals, handle times with their
/// evidence, opening hours (under the snapshot's SLA rules) and breaches.
pub async fn observe(query: &QueryEngine, config: &CostConfig) -> Result<Observed, QueryError> {
    let mut channels = arrivals(query, config).await?;
    let aht_seconds = handle_times(query, config, &mut channels).await?;
    let mut hours = opening_hours(query, config).await?;
    for c in &mut channels {
        c.tickets_per_week = c.arrivals.iter().sum();
        if let Some(h) = hours.remove(&c.channel) {
            c.hours = h;
        }
    }
    channels.sort_by(|a, b| {
        b.tickets_per_week
            .total_cmp(&a.tickets_per_week)
            .then_with(|| a.channel.cmp(&b.channel))
    });
    let tickets = rows(query, "select count(*) as t from tickets")
        .await?
        .first()
        .map_or(0.0, |r| num(&r["t"]));
    let breaches = breached_clocks(query) as f64;
    Ok(Observed {
        tickets_per_week: channels.iter().map(|c| c.tickets_per_week).sum(),
        channels,
        aht_seconds,
        breaches_per_ticket: if tickets > 0.0 {
            breaches / tickets
        } else {
            0.0
        },
    })
}

/// Clocks that have breached by now (`sla_clocks` rows with a `breached_at`), counted from
/// the stored breaches with only open clocks valued.
fn breached_clocks(query: &QueryEngine) -> usize {
    let snapshot = query.current();
    let Some(rules) = snapshot.sla_rules.as_deref() else {
        return 0;
    };
    let now = query.sla_now();
    snapshot
        .sla
        .iter()
        .flatten()
        .map(|raw| crate::projection::sla_table::breached_count(raw, rules, now))
        .sum()
}

async fn rows(query: &QueryEngine, sql: &str) -> Result<Vec<serde_json::Value>, QueryError> {
    query.sql(sql).await.and_then(|b| to_json_rows(&b))
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// Mean arrivals per channel and hour of the week; handle times at the channel's default.
async fn arrivals(
    query: &QueryEngine,
    config: &CostConfig,
) -> Result<Vec<ChannelLoad>, QueryError> {
    let mut channels: Vec<ChannelLoad> = Vec::new();
    let sql = "select channel, hour_of_week, arrivals_per_hour as a from workload";
    for r in rows(query, sql).await? {
        let channel = r["channel"].as_str().unwrap_or("").to_string();
        let h = r["hour_of_week"].as_u64().unwrap_or(0) as usize;
        let i = match channels.iter().position(|c| c.channel == channel) {
            Some(i) => i,
            None => {
                let default = config.default_aht(&channel);
                channels.push(ChannelLoad {
                    channel,
                    arrivals: vec![0.0; 168],
                    tickets_per_week: 0.0,
                    aht_seconds: default,
                    aht: AhtEvidence::default_only(default),
                    hours: OpenHours::always(HoursSource::AroundTheClock),
                });
                channels.len() - 1
            }
        };
        if h < 168 {
            channels[i].arrivals[h] += num(&r["a"]);
        }
    }
    Ok(channels)
}

/// Each channel's handle time, ticket by ticket (logged work, else the estimate, else the
/// default), with its evidence; returns the mean over all tickets.
async fn handle_times(
    query: &QueryEngine,
    config: &CostConfig,
    channels: &mut [ChannelLoad],
) -> Result<f64, QueryError> {
    let evidence = rows(
        query,
        "select channel, sum(tickets) as n, sum(with_work_logged) as w, sum(estimated) as e, \
                sum(work_logged_minutes * with_work_logged) as wm, \
                sum(estimated_minutes * estimated) as em \
         from handle_times group by channel",
    )
    .await?;
    let (mut seconds, mut counted) = (0.0, 0.0);
    for r in &evidence {
        let Some(c) = channels.iter_mut().find(|c| r["channel"] == c.channel) else {
            continue;
        };
        let (n, w, e) = (num(&r["n"]), num(&r["w"]), num(&r["e"]));
        if n <= 0.0 {
            continue;
        }
        let default = config.default_aht(&c.channel);
        let d = (n - w - e).max(0.0);
        c.aht_seconds = ((num(&r["wm"]) + num(&r["em"])) * 60.0 + d * default) / n;
        let shares = [
            (AhtSource::WorkLogged, w),
            (AhtSource::Estimated, e),
            (AhtSource::Default, d),
        ];
        let source = shares
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(AhtSource::Default, |s| s.0);
        c.aht = AhtEvidence {
            source,
            work_logged: w / n,
            estimated: e / n,
            default: d / n,
            default_seconds: default,
        };
        (seconds, counted) = (seconds + c.aht_seconds * n, counted + n);
    }
    Ok(if counted > 0.0 {
        seconds / counted
    } else {
        config.default_aht_seconds
    })
}

/// Each channel's opening hours: configured, or the SLA calendar of most of its tickets, in
/// the week of the newest ticket.
async fn opening_hours(
    query: &QueryEngine,
    config: &CostConfig,
) -> Result<std::collections::BTreeMap<String, OpenHours>, QueryError> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let groups: Vec<TicketGroup> = rows(
        query,
        "select cast(channel as varchar) as channel, cast(priority as varchar) as priority, \
                cast(tenant as varchar) as tenant, cast(category as varchar) as category, \
                cast(service as varchar) as service, count(*) as n \
         from tickets group by 1, 2, 3, 4, 5",
    )
    .await?
    .iter()
    .map(|r| TicketGroup {
        channel: text(&r["channel"]).unwrap_or_default(),
        priority: text(&r["priority"]).unwrap_or_default(),
        tenant: text(&r["tenant"]),
        category: text(&r["category"]).unwrap_or_default(),
        service: text(&r["service"]),
        tickets: r["n"].as_u64().unwrap_or(0),
    })
    .collect();
    let newest = rows(
        query,
        "select cast(max(created_at) as bigint) as t from tickets",
    )
    .await?;
    let reference = newest
        .first()
        .and_then(|r| r["t"].as_i64())
        .unwrap_or_default();
    let snapshot = query.current();
    Ok(channel_hours(
        &groups,
        &config.open_hours,
        snapshot.sla_rules.as_deref(),
        reference,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::event::TicketEvent;
    use crate::projection::{Projection, Snapshot};
    use crate::query::{QueryEngine, to_json_rows};

    /// 2026-03-02T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_772_409_600_000;
    const HOUR: i64 = 3_600_000;

    fn event(n: &mut u64, ticket: &str, at: i64, ty: &str, payload: Value) -> TicketEvent {
        *n += 1;
        let e = json!({
            "event_id": format!("e{n}"), "ticket_id": ticket, "type": ty, "schema_version": 1,
            "occurred_at": chrono::DateTime::from_timestamp_millis(at).unwrap().to_rfc3339(),
            "actor": {"id": "a1", "role": "agent"}, "payload": payload,
        });
        TicketEvent::from_json(e.to_string().as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn workload_and_handle_times_of_a_hand_built_stream() {
        let mut n = 0;
        let created = |channel: &str| json!({"channel": channel, "priority": "P3", "category": "c", "requester": "r", "title": "t"});
        let status = |from: &str, to: &str| json!({"from": from, "to": to});
        let events = vec![
            // A: phone, Monday 09:10, assigned, 30 + 15 minutes of work, resolved.
            event(
                &mut n,
                "A",
                MONDAY + 9 * HOUR + 600_000,
                "ticket.created",
                created("phone"),
            ),
            event(
                &mut n,
                "A",
                MONDAY + 9 * HOUR + 700_000,
                "ticket.assigned",
                json!({"group": "L1", "agent": "a1", "tier": 1}),
            ),
            event(
                &mut n,
                "A",
                MONDAY + 10 * HOUR,
                "ticket.work_logged",
                json!({"agent": "a1", "minutes": 30}),
            ),
            event(
                &mut n,
                "A",
                MONDAY + 11 * HOUR,
                "ticket.work_logged",
                json!({"agent": "a1", "minutes": 15}),
            ),
            event(
                &mut n,
                "A",
                MONDAY + 12 * HOUR,
                "ticket.resolved",
                json!({"resolution_code": "fixed", "first_contact": false}),
            ),
            // B: phone, Monday 09:40, no work logged: in progress at 10:00, a reply at 10:05,
            // parked at 11:30, resolved at 13:00. Active: 5 minutes, then 15 of the 85 (the
            // cap after one event); the time parked does not count.
            event(
                &mut n,
                "B",
                MONDAY + 9 * HOUR + 2_400_000,
                "ticket.created",
                created("phone"),
            ),
            event(
                &mut n,
                "B",
                MONDAY + 10 * HOUR,
                "ticket.assigned",
                json!({"group": "L1", "agent": "a1", "tier": 1}),
            ),
            event(
                &mut n,
                "B",
                MONDAY + 10 * HOUR,
                "ticket.status_changed",
                status("open", "in_progress"),
            ),
            event(
                &mut n,
                "B",
                MONDAY + 10 * HOUR + 300_000,
                "ticket.commented",
                json!({"public": true, "author_role": "agent"}),
            ),
            event(
                &mut n,
                "B",
                MONDAY + 11 * HOUR + 1_800_000,
                "ticket.status_changed",
                status("in_progress", "pending_customer"),
            ),
            event(
                &mut n,
                "B",
                MONDAY + 13 * HOUR,
                "ticket.resolved",
                json!({"resolution_code": "fixed", "first_contact": false}),
            ),
            // C: e-mail, Tuesday 14:05, escalated to tier 2, still open.
            event(
                &mut n,
                "C",
                MONDAY + 38 * HOUR + 300_000,
                "ticket.created",
                created("email"),
            ),
            event(
                &mut n,
                "C",
                MONDAY + 39 * HOUR,
                "ticket.escalated",
                json!({"from_tier": 1, "to_tier": 2, "group": "L2"}),
            ),
        ];
        let mut p = Projection::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                p.apply(e, i as u64),
                crate::projection::Outcome::Applied,
                "{e:?}"
            );
        }
        let q = QueryEngine::new().unwrap();
        q.publish(p.snapshot(&Snapshot::default()));
        let rows = |sql: &str| {
            let q = q.clone();
            let sql = sql.to_string();
            async move { to_json_rows(&q.sql(&sql).await.unwrap()).unwrap() }
        };
        let w = rows("select * from workload order by channel, hour_of_week").await;
        assert_eq!(
            w,
            vec![
                json!({"channel": "email", "hour_of_week": 38, "tickets": 1, "arrivals_per_hour": 1.0}),
                json!({"channel": "phone", "hour_of_week": 9, "tickets": 2, "arrivals_per_hour": 2.0}),
            ]
        );
        let h = rows("select * from handle_times order by channel, tier").await;
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[0]["channel"], "email");
        assert_eq!(h[0]["tier"], 2);
        assert_eq!(h[0]["escalation_rate"], 1.0);
        assert_eq!(h[0]["resolution_rate"], 0.0);
        assert_eq!(
            (&h[0]["aht_minutes"], &h[0]["estimated"]),
            (&Value::Null, &json!(0)),
            "no work, never in progress"
        );
        assert_eq!(h[1]["channel"], "phone");
        assert_eq!(h[1]["tickets"], 2);
        assert_eq!(h[1]["with_work_logged"], 1);
        assert_eq!(h[1]["estimated"], 1);
        // A: 45 minutes logged; B: 20 active minutes. Mean 32.5.
        assert_eq!(h[1]["work_logged_minutes"], 45.0);
        assert_eq!(h[1]["estimated_minutes"], 20.0);
        assert_eq!(h[1]["aht_minutes"], 32.5);
        let t = rows("select ticket_id, active_minutes from tickets order by 1").await;
        assert_eq!(
            t,
            vec![
                json!({"ticket_id": "A", "active_minutes": 0.0}),
                json!({"ticket_id": "B", "active_minutes": 20.0}),
                json!({"ticket_id": "C", "active_minutes": 0.0}),
            ]
        );
        assert_eq!(h[1]["resolution_rate"], 1.0);
        assert_eq!(h[1]["escalation_rate"], 0.0);
    }
}
