//! The workload the desk actually sees, as SQL views over the projected tables:
//!
//! - `workload`: tickets per channel and hour of the week (0 = Monday 00:00–01:00 UTC … 167),
//!   and the mean arrivals per hour, over the weeks the data spans (at least one);
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
            CAST(((CAST(date_part('dow', created_at) AS INT) + 6) % 7) * 24 \
                 + CAST(date_part('hour', created_at) AS INT) AS INT) AS hour_of_week, \
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
