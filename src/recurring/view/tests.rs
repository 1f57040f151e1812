use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::*;
use crate::clustering::order::TextOrder;
use crate::clustering::state::TextSetup;
use crate::event::TicketEvent;
use crate::projection::Projection;
use crate::simulate::{Params, Simulator};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000;

struct Stream {
    p: Projection,
    n: usize,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            p: Projection::new(),
            n: 0,
        }
    }

    fn event(&mut self, ticket: &str, tenant: &str, at: i64, ty: &str, payload: serde_json::Value) {
        self.n += 1;
        let e = json!({
            "event_id": format!("e{}", self.n), "ticket_id": ticket, "tenant": tenant,
            "type": ty, "schema_version": 1,
            "occurred_at": iso(at), "actor": {"id": "agent1", "role": "agent"},
            "payload": payload,
        });
        let e = TicketEvent::from_json(e.to_string().as_bytes()).expect("valid event");
        assert_eq!(
            self.p.apply(&e, self.n as u64),
            crate::projection::Outcome::Applied
        );
    }

    fn create(&mut self, ticket: &str, tenant: &str, at: i64, item: &str, who: &str, title: &str) {
        let category = if item.starts_with("PRN") {
            "printing"
        } else {
            "network"
        };
        self.event(
            ticket,
            tenant,
            at,
            "ticket.created",
            json!({"channel": "phone", "priority": "P3", "category": category,
                   "configuration_item": item, "requester": who, "title": title}),
        );
    }

    fn resolve(&mut self, ticket: &str, at: i64, kb: Option<&str>) {
        self.event(
            ticket,
            "acme",
            at,
            "ticket.resolved",
            json!({"resolution_code": "fixed", "first_contact": false, "kb_article": kb}),
        );
    }

    fn snapshot(&mut self) -> Snapshot {
        self.p.snapshot(&Snapshot::default())
    }
}

fn vpn(code: &str) -> String {
    format!("VPN connection drops every few minutes (error {code})")
}

#[test]
fn a_fingerprint_gets_its_statistics() {
    let mut s = Stream::new();
    // History starts well before the baseline.
    s.create(
        "OLD",
        "acme",
        T0 - 10 * DAY,
        "LT-1",
        "u8",
        "Monitor flickers",
    );
    // A printer with a steady flow: 10 tickets over the 4 baseline weeks, 2 in the window.
    for i in 0..12 {
        let at = T0 + i * 3 * DAY + HOUR;
        s.create(
            &format!("P{i}"),
            "acme",
            at,
            "PRN-PAR-01",
            "u9",
            "Printer PRN-PAR-01 not printing, jobs stuck in queue",
        );
        s.resolve(&format!("P{i}"), at + HOUR, Some("KB0007"));
    }
    let w0 = T0 + 32 * DAY;
    s.create("A", "acme", w0, "VPN-GW-01", "u1", &vpn("0x8005E026"));
    s.event(
        "A",
        "acme",
        w0 + 10 * 60_000,
        "ticket.work_logged",
        json!({"agent": "agent1", "minutes": 30}),
    );
    s.resolve("A", w0 + 2 * HOUR, None);
    s.create("B", "acme", w0 + DAY, "VPN-GW-01", "u2", &vpn("0x800102F7"));
    s.resolve("B", w0 + DAY + HOUR, None);
    s.event(
        "B",
        "acme",
        w0 + DAY + 2 * HOUR,
        "ticket.reopened",
        json!({"reason": "drops again"}),
    );
    s.event(
        "B",
        "acme",
        w0 + DAY + 3 * HOUR,
        "ticket.work_logged",
        json!({"agent": "agent1", "minutes": 90}),
    );
    s.resolve("B", w0 + DAY + 4 * HOUR, None);
    s.create("C", "acme", w0 + 2 * DAY, "VPN-GW-01", "u1", &vpn("0x1"));
    s.create(
        "D",
        "acme",
        w0 + 2 * DAY + HOUR,
        "VPN-GW-01",
        "u2",
        &vpn("0x2"),
    );
    s.create(
        "F",
        "acme",
        w0 + 2 * DAY + 2 * HOUR,
        "VPN-GW-01",
        "u1",
        &vpn("0x4"),
    );
    s.create("G", "acme", w0 + 3 * DAY, "VPN-GW-01", "u2", &vpn("0x5"));
    // The same text for another tenant is another fingerprint.
    s.create("E", "globex", w0 + 3 * DAY, "VPN-GW-01", "u3", &vpn("0x3"));
    let snapshot = s.snapshot();
    let report = compute(
        &snapshot,
        &ViewSettings::default(),
        None,
        &Filter::default(),
    );
    assert_eq!(report.to, iso(w0 + 3 * DAY));
    assert_eq!(report.tickets_in_window, 9);
    assert_eq!(report.baseline_days, 28.0);
    assert_eq!(report.issues.len(), 2, "{:#?}", report.issues);

    let v = &report.issues[0];
    assert_eq!(
        v.label,
        "vpn connection drops every few minutes error <hex>"
    );
    assert_eq!(
        (v.tenant.as_deref(), v.category.as_deref()),
        (Some("acme"), Some("network"))
    );
    assert_eq!(v.configuration_item.as_deref(), Some("VPN-GW-01"));
    assert_eq!((v.tickets, v.requesters, v.resolved), (6, 2, 2));
    assert_eq!(v.reopen_rate, 1.0 / 6.0);
    assert_eq!(v.mttr_hours, Some(3.0));
    assert_eq!(v.handle_hours, 2.0);
    // At the default cost model's loaded rate: $44,109 × 1.3 / 2,080 h = $27.568.
    assert!((v.handle_cost - 2.0 * 44_109.0 * 1.3 / 2080.0).abs() < 1e-9);
    assert_eq!(v.baseline_tickets, 0);
    assert_eq!(v.expected, Some(0.0));
    // Six tickets where four weeks had none: a chance of (1/5)⁶.
    assert!((v.spike_score.unwrap() - 6.0 * 5f64.log10()).abs() < 1e-9);
    assert_eq!(v.trend, None);
    assert_eq!(v.samples, ["G", "F", "D", "C", "B"]);
    assert_eq!(v.first_seen, iso(w0));
    assert_eq!(v.last_seen, iso(w0 + 3 * DAY));
    assert!(v.problem_candidate && v.kb_candidate);

    let p = &report.issues[1];
    assert_eq!(p.configuration_item.as_deref(), Some("PRN-PAR-01"));
    // The window is days 28–35: P10 (day 30) and P11 (day 33) are in it, P0–P9 before.
    assert_eq!(p.tickets, 2);
    assert_eq!(p.baseline_tickets, 10);
    assert_eq!(p.expected, Some(2.5));
    assert_eq!(p.spike_score, Some(0.0));
    assert_eq!(p.trend, Some(0.8));
    assert_eq!(p.first_seen, iso(T0 + HOUR));
    assert!(!p.problem_candidate && !p.kb_candidate);
    assert_eq!(report.problem_candidates, 1);
    assert_eq!(report.kb_candidates, 1);

    // Filters and overrides.
    let only_globex = compute(
        &snapshot,
        &ViewSettings {
            min_tickets: 1,
            ..ViewSettings::default()
        },
        None,
        &Filter {
            tenant: Some("globex".into()),
            ..Filter::default()
        },
    );
    assert_eq!(only_globex.issues.len(), 1);
    assert_eq!(only_globex.issues[0].samples, ["E"]);
    // Without the tenant in the fingerprint, E joins the VPN fingerprint.
    let no_tenant = compute(
        &snapshot,
        &ViewSettings {
            fields: vec![
                FingerprintField::ConfigurationItem,
                FingerprintField::Cluster,
            ],
            ..ViewSettings::default()
        },
        None,
        &Filter::default(),
    );
    assert_eq!(no_tenant.issues[0].tickets, 7);
    assert_eq!(no_tenant.issues[0].tenant, None);

    // Early in the data there is no baseline: no spike score, no problem candidate.
    let early = compute(
        &snapshot,
        &ViewSettings {
            min_tickets: 1,
            ..ViewSettings::default()
        },
        Some(T0 + 2 * DAY),
        &Filter::default(),
    );
    assert_eq!(early.baseline_days, 0.0);
    assert_eq!(early.issues.len(), 1);
    assert_eq!(early.issues[0].spike_score, None);

    // Top calls: by text cluster, across tenants and items.
    let (_, _, total, calls) = top_calls(
        &snapshot,
        &ViewSettings::default(),
        Some(T0),
        None,
        10,
        &Filter::default(),
    );
    assert_eq!(total, 19);
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].tickets, calls[0].rank), (12, 1));
    assert!(calls[0].label.starts_with("printer <id> not printing"));
    assert_eq!(calls[0].kb_share, Some(1.0));
    assert_eq!(calls[1].tickets, 7);

    // The SQL batches carry the same rows.
    let b = issues_batch(&report);
    assert_eq!(b.num_rows(), 2);
    let c = clusters_batch(&snapshot, &ViewSettings::default());
    assert_eq!(c.num_rows(), 20);
}

#[test]
fn surprise_is_the_binomial_tail() {
    // Four tickets where four windows had none: (1/5)⁴.
    assert!((surprise(4, 0, 4) - 4.0 * 5f64.log10()).abs() < 1e-12);
    // 10 of 11 in the second of two windows: P = (C(11,10) + C(11,11)) / 2¹¹.
    assert!((surprise(10, 1, 1) + (12.0f64 / 2048.0).log10()).abs() < 1e-12);
    // At or below the baseline's rate: not surprising at all.
    assert_eq!(surprise(2, 10, 4), 0.0);
    assert_eq!(surprise(3, 12, 4), 0.0);
    assert_eq!(surprise(5, 0, 0), 0.0);
    // Busy fingerprints stay finite and ordered.
    let (a, b) = (surprise(150, 400, 4), surprise(200, 400, 4));
    assert!(
        a.is_finite() && b.is_finite() && 0.0 < a && a < b,
        "{a} {b}"
    );
    // A sum checked term by term: n = 3 of 5 with p = 1/3.
    let exact: f64 = [(10.0, 3), (5.0, 4), (1.0, 5)]
        .iter()
        .map(|(c, x)| c * (1.0f64 / 3.0).powi(*x) * (2.0f64 / 3.0).powi(5 - x))
        .sum();
    assert!((surprise(3, 2, 2) + exact.log10()).abs() < 1e-12);
}

#[test]
fn windows_parse() {
    assert_eq!(parse_window("7d"), Ok(7 * DAY));
    assert_eq!(parse_window("2w"), Ok(14 * DAY));
    assert_eq!(parse_window("36h"), Ok(36 * HOUR));
    assert_eq!(parse_window("90m"), Ok(90 * 60_000));
    for bad in ["", "d", "7", "7x", "0d", "-1d", "1.5d"] {
        assert!(parse_window(bad).is_err(), "{bad}");
    }
}

/// Projects `tickets` simulated tickets; returns the snapshot and the simulator.
fn simulate(seed: u64, tickets: u64) -> (Snapshot, Simulator) {
    let (mut snapshots, sim) = simulate_parts(seed, tickets, 1);
    (snapshots.remove(0), sim)
}

/// Projects `tickets` simulated tickets into `parts` projections split by ticket id, like
/// Kafka partitions read in turn, their texts placed by one [`TextOrder`]; the parts'
/// snapshots and the merge.
fn simulate_parts(seed: u64, tickets: u64, parts: usize) -> (Vec<Snapshot>, Simulator) {
    let mut sim = Simulator::new(Params {
        tickets,
        seed,
        ..Params::default()
    });
    let mut projections: Vec<Projection> = (0..parts).map(|_| Projection::new()).collect();
    if parts == 1 {
        for (offset, e) in sim.by_ref().enumerate() {
            projections[0].apply(&e, offset as u64);
        }
        return (vec![projections[0].snapshot(&Snapshot::default())], sim);
    }
    let mut order = TextOrder::new(Arc::new(TextSetup::default()));
    for (p, projection) in projections.iter_mut().enumerate() {
        projection.place_text_elsewhere();
        order.add_partition(p as u32);
    }
    let mut offsets = vec![0u64; parts];
    for e in sim.by_ref() {
        let p = (xxh3_64(e.ticket_id.as_bytes()) % parts as u64) as usize;
        projections[p].apply(&e, offsets[p]);
        projections[p].hand_text(&mut order, p as u32, offsets[p], Some(&e));
        offsets[p] += 1;
        order.release();
    }
    for (p, &offset) in offsets.iter().enumerate() {
        order.tick(p as u32, offset, i64::MAX / 2);
    }
    order.release();
    let snapshots: Vec<Snapshot> = projections
        .iter_mut()
        .map(|p| p.snapshot(&Snapshot::default()))
        .collect();
    let mut clusters = Vec::new();
    for (p, s) in snapshots.iter().enumerate() {
        for (b, batch) in s.tickets.iter().enumerate() {
            let start = b * crate::projection::tables::TICKET_BLOCK;
            clusters.push(order.clusters_of(p as u32, start..start + batch.num_rows()));
        }
    }
    let merged = Snapshot::merge(&snapshots, clusters, order.catalog());
    (vec![merged], sim)
}

/// The tickets of every fingerprint.
fn members(snapshot: &Snapshot, settings: &ViewSettings) -> HashMap<String, Vec<String>> {
    let batch = clusters_batch(snapshot, settings);
    let ids = batch.column(0).as_string::<i32>();
    let fps = batch.column(4).as_string::<i32>();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..batch.num_rows() {
        out.entry(fps.value(i).to_string())
            .or_default()
            .push(ids.value(i).to_string());
    }
    out
}

/// The simulator's injected problems against the problem candidates the view raises when
/// evaluated every 12 hours, as a running service would: a detection is right when most of
/// its fingerprint's tickets belong to one injected problem; a problem is found when a right
/// detection points at it. Problems that start before three windows of history exist are not
/// counted: against a week or two of history a burst of six tickets could be chance.
#[test]
fn detects_the_injected_problems() {
    let settings = ViewSettings::default();
    let (mut precision_sum, mut recall_sum, mut k) = (0.0, 0.0, 0.0);
    for seed in [1u64, 2, 3] {
        let (snapshot, sim) = simulate(seed, 36_000);
        let truth = sim.truth();
        let start = T0.min(
            truth
                .recurring_problems
                .iter()
                .map(|p| p.window_start.timestamp_millis())
                .min()
                .unwrap_or(T0),
        );
        let data_start = {
            let c = clusters_batch(&snapshot, &settings);
            let created = c.column(5).as_primitive::<TimestampMillisecondType>();
            datafusion::arrow::compute::min(created).unwrap_or(start)
        };
        let end = latest_created(&snapshot).unwrap();
        let mut detected: HashSet<String> = HashSet::new();
        let mut why: HashMap<String, String> = HashMap::new();
        let mut at = data_start + 2 * settings.window_ms;
        while at <= end + DAY {
            let r = compute(&snapshot, &settings, Some(at), &Filter::default());
            for i in r.issues.iter().filter(|i| i.problem_candidate) {
                detected.insert(i.fingerprint.clone());
                why.entry(i.fingerprint.clone()).or_insert(format!(
                    "{} at {}: {} tickets, expected {:?}, spike {:?}",
                    i.label, r.to, i.tickets, i.expected, i.spike_score
                ));
            }
            at += 12 * HOUR;
        }
        let members = members(&snapshot, &settings);
        let problem_of: HashMap<&str, &str> = truth
            .recurring_problems
            .iter()
            .flat_map(|p| {
                p.ticket_ids
                    .iter()
                    .map(move |t| (t.as_str(), p.problem_id.as_str()))
            })
            .collect();
        let mut found: HashSet<&str> = HashSet::new();
        let mut right = 0;
        for fp in &detected {
            let tickets = &members[fp];
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for t in tickets {
                if let Some(p) = problem_of.get(t.as_str()) {
                    *counts.entry(p).or_default() += 1;
                }
            }
            if let Some((p, n)) = counts.into_iter().max_by_key(|(p, n)| (*n, *p))
                && n * 2 > tickets.len()
            {
                right += 1;
                found.insert(p);
            } else {
                eprintln!(
                    "seed {seed}: false detection {fp} over {} tickets, e.g. {:?}: {:?}",
                    tickets.len(),
                    &tickets[..tickets.len().min(3)],
                    why.get(fp)
                );
            }
        }
        let eligible: Vec<&str> = truth
            .recurring_problems
            .iter()
            .filter(|p| p.window_start.timestamp_millis() >= data_start + 3 * settings.window_ms)
            .map(|p| p.problem_id.as_str())
            .collect();
        let recalled = eligible.iter().filter(|p| found.contains(*p)).count();
        let precision = right as f64 / detected.len().max(1) as f64;
        let recall = recalled as f64 / eligible.len().max(1) as f64;
        eprintln!(
            "seed {seed}: {} problems ({} eligible), {} detections, precision {precision:.3}, recall {recall:.3}",
            truth.recurring_problems.len(),
            eligible.len(),
            detected.len()
        );
        assert!(!eligible.is_empty());
        precision_sum += precision;
        recall_sum += recall;
        k += 1.0;
        assert!(precision >= 0.9, "seed {seed}: precision {precision}");
        assert!(recall >= 0.9, "seed {seed}: recall {recall}");
    }
    eprintln!(
        "mean precision {:.3}, mean recall {:.3}",
        precision_sum / k,
        recall_sum / k
    );
}

/// Split over partitions whose texts are placed in one order, every ticket has the cluster a
/// single projection gives it, and the views are the same.
#[test]
fn partitions_give_the_single_projection_clusters() {
    let (one, sim) = simulate(4, 6_000);
    let (mut four, _) = simulate_parts(4, 6_000, 4);
    let four = four.remove(0);
    let settings = ViewSettings::default();
    let of = |s: &Snapshot| -> HashMap<String, String> {
        let b = clusters_batch(s, &settings);
        let ids = b.column(0).as_string::<i32>();
        let cl = b.column(1).as_string::<i32>();
        (0..b.num_rows())
            .map(|i| (ids.value(i).to_string(), cl.value(i).to_string()))
            .collect()
    };
    let (single, merged) = (of(&one), of(&four));
    assert_eq!(single, merged);
    for p in &sim.truth().recurring_problems {
        let ids: HashSet<&String> = p.ticket_ids.iter().map(|t| &merged[t]).collect();
        assert_eq!(ids.len(), 1, "{}: {ids:?}", p.problem_id);
    }
    let issues = |s: &Snapshot| {
        compute(s, &settings, None, &Filter::default())
            .issues
            .iter()
            .map(|i| (i.fingerprint.clone(), i.tickets, i.problem_candidate))
            .collect::<Vec<_>>()
    };
    assert_eq!(issues(&one), issues(&four));
}

#[test]
fn labels_read_like_the_call() {
    let titles: Vec<String> = [
        "Création compte AD pour Jean Dupont",
        "création compte AD pour Marie Curie",
        "Creation compte AD pour Paul Martin",
        "Création compte AD - Sophie Bernard (arrivée lundi)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        representative(&titles).as_deref(),
        Some("création compte ad pour …")
    );
    assert_eq!(
        representative(&["VPN drops at LT-NYC-1886".to_string()]).as_deref(),
        Some("vpn drops at <id>")
    );
    assert_eq!(representative(&[]), None);
}
