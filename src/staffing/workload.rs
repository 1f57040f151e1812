//! The workload the desk actually sees, as SQL views over the projected tables:
//!
//! - `workload`: tickets per channel and hour of the week (0 = Monday 00:00–01:00 UTC … 167),
//!   and the mean arrivals per hour, over the weeks the data spans (at least one);
//! - `handle_times`: per channel and current tier, tickets, how many have work logged, the
//!   average handle time in minutes (work logged, or the time spent `in_progress` when none was
//!   logged), the resolution rate and the escalation rate. The time in progress is only
//!   computed for tickets without logged work, which keeps the window function off most of
//!   the events of a desk that logs its work.

/// `CREATE VIEW` statements, in order.
pub const VIEWS: &[&str] = &[
    "CREATE VIEW workload AS \
     WITH span AS ( \
       SELECT GREATEST((date_part('epoch', MAX(created_at)) - date_part('epoch', MIN(created_at))) \
                       / 604800.0, 1.0) AS weeks \
       FROM tickets) \
     SELECT CAST(channel AS VARCHAR) AS channel, \
            CAST(((CAST(date_part('dow', created_at) AS INT) + 6) % 7) * 24 \
                 + CAST(date_part('hour', created_at) AS INT) AS INT) AS hour_of_week, \
            COUNT(*) AS tickets, \
            COUNT(*) / MAX(span.weeks) AS arrivals_per_hour \
     FROM tickets CROSS JOIN span \
     GROUP BY 1, 2",
    "CREATE VIEW handle_times AS \
     WITH steps AS ( \
       SELECT CAST(ticket_id AS VARCHAR) AS ticket_id, CAST(status_after AS VARCHAR) AS status, \
              date_part('epoch', LEAD(occurred_at) OVER (PARTITION BY ticket_id \
                                                          ORDER BY occurred_at, log_offset)) \
              - date_part('epoch', occurred_at) AS seconds \
       FROM ticket_events \
       WHERE ticket_id IN (SELECT ticket_id FROM tickets WHERE handle_minutes = 0)), \
     progress AS ( \
       SELECT ticket_id, SUM(seconds) / 60.0 AS minutes \
       FROM steps WHERE status = 'in_progress' AND seconds IS NOT NULL GROUP BY ticket_id) \
     SELECT CAST(t.channel AS VARCHAR) AS channel, t.tier, COUNT(*) AS tickets, \
            COUNT(*) FILTER (WHERE t.handle_minutes > 0) AS with_work_logged, \
            AVG(CASE WHEN t.handle_minutes > 0 THEN CAST(t.handle_minutes AS DOUBLE) \
                     ELSE p.minutes END) AS aht_minutes, \
            AVG(CASE WHEN t.resolved_at IS NOT NULL THEN 1.0 ELSE 0.0 END) AS resolution_rate, \
            AVG(CASE WHEN t.escalation_count > 0 THEN 1.0 ELSE 0.0 END) AS escalation_rate \
     FROM tickets t LEFT JOIN progress p ON t.ticket_id = p.ticket_id \
     GROUP BY 1, 2",
];

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
            // B: phone, Monday 09:40, no work logged: 90 minutes in progress, then resolved.
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
            h[0]["aht_minutes"],
            Value::Null,
            "no work, never in progress"
        );
        assert_eq!(h[1]["channel"], "phone");
        assert_eq!(h[1]["tickets"], 2);
        assert_eq!(h[1]["with_work_logged"], 1);
        // A: 45 minutes logged; B: 90 minutes in progress. Mean 67.5.
        assert_eq!(h[1]["aht_minutes"], 67.5);
        assert_eq!(h[1]["resolution_rate"], 1.0);
        assert_eq!(h[1]["escalation_rate"], 0.0);
    }
}
