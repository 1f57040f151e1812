#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (one per persona, one for deskwatch's health).

The JSON is generated so the panels stay consistent; edit this file and run it again:
    python3 scripts/dashboards.py
Every expression uses metrics deskwatch exports (tests/dashboards.rs checks them against a
running service's /metrics).
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}


def target(expr, legend="", instant=False):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": "A"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(kind, title, exprs, x, y, w, h, unit=None, desc="", **extra):
    targets = []
    for i, e in enumerate(exprs):
        t = target(*e) if isinstance(e, tuple) else target(e)
        t["refId"] = chr(ord("A") + i)
        targets.append(t)
    p = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    p.update(extra)
    return p


def stat(title, expr, x, y, w=4, h=4, unit=None, desc="", thresholds=None):
    p = panel("stat", title, [(expr, "", True)], x, y, w, h, unit, desc)
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for v, c in thresholds],
        }
    return p


def bars(title, expr, legend, x, y, w=12, h=8, unit=None, desc=""):
    p = panel("bargauge", title, [(expr, legend, True)], x, y, w, h, unit, desc)
    p["options"] = {"orientation": "horizontal", "displayMode": "gradient",
                    "reduceOptions": {"calcs": ["lastNotNull"]}}
    return p


def series(title, exprs, x, y, w=12, h=8, unit=None, desc=""):
    return panel("timeseries", title, exprs, x, y, w, h, unit, desc)


def dashboard(uid, title, description, panels):
    for i, p in enumerate(panels, 1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["deskwatch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0,
        }]},
        "links": [{"title": t, "url": f"/d/{u}", "type": "link"} for u, t in LINKS if u != uid],
        "panels": panels,
    }


LINKS = [
    ("deskwatch-manager", "IT manager"),
    ("deskwatch-oncall", "On-call lead"),
    ("deskwatch-executive", "Executive"),
    ("deskwatch-health", "deskwatch health"),
]

manager = dashboard("deskwatch-manager", "deskwatch — IT manager: recurring issues",
    "Problem and knowledge-base candidates, the most common calls and their spikes.", [
    stat("Problem candidates", "max(deskwatch_recurring_problem_candidates)", 0, 0, 6,
         desc="Fingerprints whose tickets spike far above their baseline (recurring window).",
         thresholds=[(None, "green"), (1, "red")]),
    stat("Knowledge-base candidates", "max(deskwatch_recurring_knowledge_base_candidates)", 6, 0, 6,
         desc="Resolved again and again without a KB article."),
    stat("Recurring fingerprints", "max(deskwatch_recurring_fingerprints)", 12, 0, 6),
    stat("Tickets created / h", "max(deriv(deskwatch_projection_tickets[1h])) * 3600", 18, 0, 6),
    bars("Top calls of the window", "max by (label) (deskwatch_top_calls_tickets)", "{{label}}", 0, 4, 12, 10),
    bars("Problem candidates (tickets in window)",
         "max by (label, tenant, configuration_item) (deskwatch_recurring_tickets * on (fingerprint) group_left deskwatch_recurring_problem)",
         "{{label}} — {{configuration_item}}", 12, 4, 12, 10),
    series("Spike score of the top fingerprints",
           [("topk(5, max by (label) (deskwatch_recurring_spike_score))", "{{label}}")], 0, 14, 12, 9,
           desc="-log10 of the chance of so many tickets at the baseline rate; 4 = one in 10,000."),
    series("Tickets of the top fingerprints",
           [("topk(10, max by (label) (deskwatch_recurring_tickets))", "{{label}}")], 12, 14, 12, 9),
])

oncall = dashboard("deskwatch-oncall", "deskwatch — On-call lead: SLA",
    "Open clocks at risk and breached, breaches per hour, compliance, alert delivery.", [
    stat("Open and breached", "max(deskwatch_sla_at_risk_clocks{level=\"100\"})", 0, 0, 6,
         thresholds=[(None, "green"), (1, "orange"), (10, "red")]),
    stat("Open past 90 %", "max(deskwatch_sla_at_risk_clocks{level=\"90\"})", 6, 0, 6,
         thresholds=[(None, "green"), (1, "orange")]),
    stat("Breaches last hour", "max(sum by (instance) (increase(deskwatch_sla_breaches_total[1h])))", 12, 0, 6),
    stat("Resolution compliance", "max(deskwatch_sla_compliance_ratio{clock=\"resolution\"})", 18, 0, 6,
         unit="percentunit", thresholds=[(None, "red"), (0.9, "orange"), (0.95, "green")]),
    series("Breaches per hour by priority",
           [("max by (priority) (sum by (priority, instance) (increase(deskwatch_sla_breaches_total[1h])))", "{{priority}}")], 0, 4),
    bars("Running clocks by time left (cumulative)",
         "max by (within_seconds) (deskwatch_sla_time_to_breach_clocks)", "≤ {{within_seconds}} s", 12, 4),
    series("Compliance by clock", [("deskwatch_sla_compliance_ratio", "{{clock}}")], 0, 12, unit="percentunit"),
    series("Open clocks by state", [("max by (clock, state) (deskwatch_sla_open_clocks)", "{{clock}} {{state}}")], 12, 12),
    series("Alert delay p50 / p99 (threshold → handed to delivery)", [
        ("histogram_quantile(0.5, sum by (le) (rate(deskwatch_sla_alert_delay_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(deskwatch_sla_alert_delay_seconds_bucket[5m])))", "p99")], 0, 20, unit="s"),
    series("Alert delivery", [
        ("sum by (receiver) (rate(deskwatch_alerts_sent_total[5m]))", "sent {{receiver}}"),
        ("sum by (receiver) (rate(deskwatch_alert_delivery_failures_total[5m]))", "failed {{receiver}}"),
        ("sum(deskwatch_alerts_queued)", "queued"), ("max(deskwatch_alerts_active)", "active")], 12, 20),
])

executive = dashboard("deskwatch-executive", "deskwatch — Executive: staffing and cost",
    "In-house against outsourced on the observed workload (Erlang C per hour, [cost] model).", [
    stat("In-house / month", "max(deskwatch_cost_monthly_dollars{model=\"in_house\"})", 0, 0, 5, unit="currencyUSD"),
    stat("Outsourced / month", "max(deskwatch_cost_monthly_dollars{model=\"outsourced\"})", 5, 0, 5, unit="currencyUSD"),
    stat("In-house per ticket", "max(deskwatch_cost_per_ticket_dollars{model=\"in_house\"})", 10, 0, 4, unit="currencyUSD"),
    stat("MSP per ticket", "max(deskwatch_cost_per_ticket_dollars{model=\"outsourced\"})", 14, 0, 4, unit="currencyUSD"),
    stat("FTE to employ", "sum(max by (channel) (deskwatch_staffing_fte))", 18, 0, 3),
    stat("Break-even tickets / month", "max(deskwatch_cost_break_even_monthly_tickets)", 21, 0, 3,
         desc="From this volume in-house costs no more; NaN when never within 1 %–100× the volume."),
    series("Monthly cost by model", [("max by (model) (deskwatch_cost_monthly_dollars)", "{{model}}")], 0, 4, unit="currencyUSD"),
    series("SLA credits the provider would refund / month", [("max(deskwatch_cost_sla_credits_dollars)", "credits")], 12, 4, unit="currencyUSD"),
    bars("Agents needed this hour, by channel", "max by (channel) (deskwatch_staffing_required_agents)", "{{channel}}", 0, 12),
    bars("FTE by channel", "max by (channel) (deskwatch_staffing_fte)", "{{channel}}", 12, 12),
    series("Agents needed (Erlang C, current hour of the week)", [("sum(max by (channel) (deskwatch_staffing_required_agents))", "agents")], 0, 20),
    series("Tickets per week by channel", [("max by (channel) (deskwatch_staffing_weekly_tickets)", "{{channel}}")], 12, 20),
])

health = dashboard("deskwatch-health", "deskwatch — service health",
    "Ingest, log, projection lag, Kafka, dead letters and checkpoints.", [
    stat("Events / s", "max(sum by (instance) (rate(deskwatch_ingest_events_total{outcome=\"applied\"}[5m])))", 0, 0, 4, unit="ops"),
    stat("Projection lag (records)", "max(deskwatch_projection_lag_records)", 4, 0, 4,
         thresholds=[(None, "green"), (1000, "orange"), (100000, "red")]),
    stat("Kafka consumer lag", "max(deskwatch_kafka_consumer_lag_records)", 8, 0, 4),
    stat("Dead letters (1 h)", "sum(increase(deskwatch_dead_letters_total[1h]))", 12, 0, 4,
         thresholds=[(None, "green"), (1, "red")]),
    stat("Checkpoint age", "max(time() - deskwatch_checkpoint_last_success_timestamp_seconds)", 16, 0, 4, unit="s",
         thresholds=[(None, "green"), (600, "orange"), (3600, "red")]),
    stat("Tickets", "max(deskwatch_projection_tickets)", 20, 0, 4),
    series("Ingest by outcome", [("max by (outcome) (sum by (outcome, instance) (rate(deskwatch_ingest_events_total[5m])))", "{{outcome}}")], 0, 4, unit="ops"),
    series("Rejections by reason", [("max by (reason) (sum by (reason, instance) (rate(deskwatch_ingest_rejected_events_total[5m])))", "{{reason}}")], 12, 4, unit="ops"),
    series("Append latency (write + fsync)", [
        ("histogram_quantile(0.5, sum by (le) (rate(deskwatch_log_append_duration_seconds_bucket[5m])))", "p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(deskwatch_log_append_duration_seconds_bucket[5m])))", "p99")], 0, 12, unit="s"),
    series("Lag", [("max(deskwatch_projection_lag_records)", "projection"),
                   ("max by (partition) (deskwatch_kafka_consumer_lag_records)", "partition {{partition}}")], 12, 12),
    series("Kafka", [("max(deskwatch_kafka_assigned_partitions)", "assigned partitions"),
                     ("sum by (kind) (rate(deskwatch_kafka_errors_total[5m]))", "errors {{kind}}"),
                     ("sum by (reason) (rate(deskwatch_dead_letters_total[5m]))", "dead letters {{reason}}")], 0, 20),
    series("Log size and checkpoints", [("sum(deskwatch_log_size_bytes)", "log bytes"),
                                        ("sum(rate(deskwatch_checkpoint_failures_total[15m]))", "checkpoint failures/s")], 12, 20),
    series("Model refresh durations", [("max(deskwatch_recurring_view_duration_seconds)", "recurring view"),
                                        ("max(deskwatch_cost_model_duration_seconds)", "cost model")], 0, 28, unit="s"),
])

here = os.path.join(os.path.dirname(__file__), "..", "dashboards")
for d in [manager, oncall, executive, health]:
    with open(os.path.join(here, d["uid"] + ".json"), "w") as f:
        json.dump(d, f, indent=2, ensure_ascii=False)
        f.write("\n")
print("wrote", ", ".join(d["uid"] for d in [manager, oncall, executive, health]))

# The Prometheus Operator's PrometheusRule: the two rule files' groups, verbatim, indented under
# spec (tests/deploy.rs checks that it stays so).
deploy = os.path.join(os.path.dirname(__file__), "..", "deploy")
out = ["# Generated from deploy/prometheus/*.rules.yml by scripts/dashboards.py; do not edit.",
       "apiVersion: monitoring.coreos.com/v1", "kind: PrometheusRule", "metadata:",
       "  name: deskwatch", "  labels: { app.kubernetes.io/name: deskwatch }", "spec:", "  groups:"]
for name in ["deskwatch-sla.rules.yml", "deskwatch-ops.rules.yml"]:
    lines = open(os.path.join(deploy, "prometheus", name)).read().splitlines()
    start = lines.index("groups:") + 1
    out += [("  " + l) if l.strip() else "" for l in lines[start:]]
with open(os.path.join(deploy, "kubernetes", "deskwatch-rules.yaml"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote deploy/kubernetes/deskwatch-rules.yaml")
