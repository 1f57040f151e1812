//! Logging and metrics: the tracing subscriber, and deskwatch's own Prometheus registry.
//!
//! Metric names follow Prometheus conventions: `deskwatch_` prefix, base units, `_total` on
//! counters, bounded label values (never a ticket id).

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Label name of an ingest outcome.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label name of a rejection reason.
pub const LABEL_REASON: &str = "reason";
/// Label name of a Kafka partition.
pub const LABEL_PARTITION: &str = "partition";

/// Labels of the per-fingerprint recurring metrics.
pub const RECURRING_LABELS: [&str; 5] = [
    "fingerprint",
    "label",
    "tenant",
    "category",
    "configuration_item",
];

/// Starts structured logging to stderr; `RUST_LOG` filters (default `default_level`).
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The service's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Events by outcome (applied, duplicate, rejected, invalid).
    pub ingest_events: IntCounterVec,
    /// Refused events by reason.
    pub ingest_rejected: IntCounterVec,
    /// Durable log appends.
    pub log_appends: IntCounter,
    /// Events appended to the log.
    pub log_appended_events: IntCounter,
    /// Time of one durable append (write + fsync, or the broker's acknowledgement).
    pub log_append_seconds: Histogram,
    /// Next offset of the log.
    pub log_end_offset: IntGauge,
    /// Bytes of the log on disk.
    pub log_size_bytes: IntGauge,
    /// Next offset the projection will apply.
    pub projection_position: IntGauge,
    /// Log records not yet applied to the published snapshot.
    pub projection_lag_records: IntGauge,
    /// Tickets projected.
    pub tickets: IntGauge,
    /// Events in the history.
    pub events: IntGauge,
    /// Heap bytes of the projected state, by part (estimate).
    pub state_bytes: IntGaugeVec,
    /// Events a live source derived and submitted, by source.
    pub source_events: IntCounterVec,
    /// Seconds the source is behind the desk (0 when caught up), by source.
    pub source_lag: IntGaugeVec,
    /// Failed polls and refused transactions, by source and kind.
    pub source_errors: IntCounterVec,
    /// 1 when the source's last poll succeeded, by source.
    pub source_up: IntGaugeVec,
    /// Unix time of the last successful checkpoint.
    pub checkpoint_last_success_timestamp_seconds: IntGauge,
    /// Failed checkpoint attempts.
    pub checkpoint_failures: IntCounter,
    /// Kafka: records not yet projected, per owned partition.
    pub kafka_lag: IntGaugeVec,
    /// Kafka: records consumed, per partition (rate() gives records/s).
    pub kafka_records: IntCounterVec,
    /// Kafka: seconds since the state of each owned partition was last checkpointed.
    pub kafka_checkpoint_age: GaugeVec,
    /// Kafka: partitions this instance reads (every partition of the topic).
    pub kafka_assigned_partitions: IntGauge,
    /// Kafka: partitions whose webhook alerts this instance is elected to send.
    pub kafka_webhook_partitions: IntGauge,
    /// Kafka: client errors by kind (broker down, transport…).
    pub kafka_errors: IntCounterVec,
    /// Records sent to the dead-letter topic, by reason.
    pub dead_letters: IntCounterVec,
    /// Dead letters the broker did not acknowledge (logged with their origin).
    pub dead_letter_failures: IntCounter,
    /// Dead letters not yet acknowledged by the broker (in flight or waiting to be sent again).
    pub dead_letters_undelivered: IntGauge,
    /// Tickets read from the topic whose text waits for its turn (Kafka).
    pub text_waiting: IntGauge,
    /// Tickets placed where they arrived rather than where they were created (Kafka).
    pub text_reordered: IntGauge,
    /// SLA breaches by clock, priority and tenant.
    pub sla_breaches: IntCounterVec,
    /// Stopped SLA clocks by clock and result (met, breached).
    pub sla_completed: IntCounterVec,
    /// Open SLA clocks by clock and state (running, paused).
    pub sla_open_clocks: IntGaugeVec,
    /// Open SLA clocks by clock and highest level reached (a warning percentage, or 100).
    pub sla_at_risk: IntGaugeVec,
    /// Met / (met + breached) of stopped clocks, by clock.
    pub sla_compliance_ratio: GaugeVec,
    /// Running, not yet breached clocks with at most `le` seconds left (cumulative).
    pub sla_time_to_breach: IntGaugeVec,
    /// Entries in the deadline queue.
    pub sla_deadline_queue: IntGauge,
    /// Delay between a threshold's instant and its alert being handed to delivery.
    pub sla_alert_delay_seconds: Histogram,
    /// Active alerts (ticket, clock) known to the dispatcher.
    pub alerts_active: IntGauge,
    /// Alerts accepted by a receiver.
    pub alerts_sent: IntCounterVec,
    /// Failed deliveries (each is retried with backoff).
    pub alert_delivery_failures: IntCounterVec,
    /// Alerts waiting for delivery, by receiver.
    pub alerts_queued: IntGaugeVec,
    /// Alerts dropped: a receiver's queue was full, the shutdown grace period ended, or (label
    /// `dispatcher`) the dispatcher was gone.
    pub alerts_dropped: IntCounterVec,
    /// Alerts a receiver refused (a 4xx other than 408/429, found alone by splitting the batch).
    pub alerts_rejected: IntCounterVec,
    /// Time of one successful delivery request.
    pub alert_delivery_seconds: Histogram,
    /// Recurring fingerprints (top K by tickets, and the top K problem candidates): tickets in
    /// the window.
    pub recurring_tickets: IntGaugeVec,
    /// Their spike score.
    pub recurring_spike_score: GaugeVec,
    /// Fingerprints with tickets in the window.
    pub recurring_fingerprints: IntGauge,
    /// Problem candidates in the window.
    pub recurring_problem_candidates: IntGauge,
    /// 1 for each problem candidate (top K by spike score), to alert on.
    pub recurring_problem: IntGaugeVec,
    /// Knowledge-base candidates in the window.
    pub recurring_kb_candidates: IntGauge,
    /// Top calls of the window (top K text clusters): tickets.
    pub top_calls_tickets: IntGaugeVec,
    /// Time the last recurring view took to compute.
    pub recurring_view_seconds: prometheus::Gauge,
    /// Monthly cost of running the desk, by model (`in_house`, `outsourced`).
    pub cost_monthly: GaugeVec,
    /// Cost per ticket, by model.
    pub cost_per_ticket: GaugeVec,
    /// SLA credits the provider would refund this month.
    pub cost_sla_credits: prometheus::Gauge,
    /// Tickets per month from which in-house costs no more (absent when none in 0.01–100×).
    pub cost_break_even_tickets: prometheus::Gauge,
    /// Agents the current hour of the week needs on each channel.
    pub staffing_required_agents: IntGaugeVec,
    /// FTE to employ, by channel.
    pub staffing_fte: GaugeVec,
    /// Average handle time used, by channel.
    pub staffing_aht_seconds: GaugeVec,
    /// Share of a channel's tickets behind each handle-time source.
    pub staffing_aht_source_share: GaugeVec,
    /// The part of a channel's FTE that is minimum staffing of open hours.
    pub staffing_minimum_fte: GaugeVec,
    /// Results outside published ranges, by check and subject (1 while flagged).
    pub cost_plausibility_flags: GaugeVec,
    /// Tickets per week observed, by channel.
    pub staffing_weekly_tickets: GaugeVec,
    /// Time the last cost model took.
    pub cost_model_seconds: prometheus::Gauge,
    /// Last published value of each breach/completed series (counters move by the difference).
    published: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<String>, u64>>>,
}

/// Creates metrics and registers them in one step.
struct Reg<'a>(&'a Registry);

impl Reg<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        m: M,
    ) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.add(IntCounter::new(name, help)?)
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.add(IntGauge::new(name, help)?)
    }

    fn int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<prometheus::Gauge, prometheus::Error> {
        self.add(prometheus::Gauge::new(name, help)?)
    }

    fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<GaugeVec, prometheus::Error> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
    ) -> Result<Histogram, prometheus::Error> {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        )?)
    }
}

impl Metrics {
    /// Creates and registers every metric; a registration failure is a start-up error.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let reg = Reg(&registry);
        let m = Metrics {
            ingest_events: reg.counter_vec("deskwatch_ingest_events_total", "Submitted events by outcome.", &[LABEL_OUTCOME])?,
            ingest_rejected: reg.counter_vec("deskwatch_ingest_rejected_events_total", "Events refused (invalid or rejected by a state check), by reason.", &[LABEL_REASON])?,
            log_appends: reg.counter("deskwatch_log_appends_total", "Durable appends (one fsync each) to the event log.")?,
            log_appended_events: reg.counter("deskwatch_log_appended_events_total", "Events appended to the event log (acknowledged by the broker, for Kafka).")?,
            log_append_seconds: reg.histogram("deskwatch_log_append_duration_seconds", "Time of one durable append (write and fsync).", prometheus::exponential_buckets(0.0005, 2.0, 14)?)?,
            log_end_offset: reg.int_gauge("deskwatch_log_end_offset", "Next offset to be written to the event log.")?,
            log_size_bytes: reg.int_gauge("deskwatch_log_size_bytes", "Event log size on disk.")?,
            projection_position: reg.int_gauge("deskwatch_projection_position", "Next log offset the projection will apply.")?,
            projection_lag_records: reg.int_gauge("deskwatch_projection_lag_records", "Log records not yet applied to the published projection.")?,
            tickets: reg.int_gauge("deskwatch_projection_tickets", "Tickets projected.")?,
            events: reg.int_gauge("deskwatch_projection_events", "Events in the projected history.")?,
            source_events: reg.counter_vec("deskwatch_source_events_total", "Events a live source derived from its desk and submitted (duplicates of what was already applied included).", &["source"])?,
            source_lag: reg.int_gauge_vec("deskwatch_source_lag_seconds", "How far a live source is behind its desk: age of the last transaction read while more are waiting; 0 when caught up.", &["source"])?,
            source_errors: reg.counter_vec("deskwatch_source_errors_total", "Failed polls of a live source (unreachable, auth, http, decode, store, state), desk transactions or webhook payloads not turned into events (refused), and webhook requests with a bad signature (signature), by source and kind.", &["source", "kind"])?,
            source_up: reg.int_gauge_vec("deskwatch_source_up", "1 when the last poll of a live source succeeded, 0 when it failed (it is retried with backoff).", &["source"])?,
            state_bytes: reg.int_gauge_vec("deskwatch_state_bytes", "Heap bytes of the projected state by part (an estimate from the structures' sizes).", &["part"])?,
            checkpoint_last_success_timestamp_seconds: reg.int_gauge("deskwatch_checkpoint_last_success_timestamp_seconds", "Unix time of the last successful checkpoint.")?,
            checkpoint_failures: reg.counter("deskwatch_checkpoint_failures_total", "Checkpoint attempts that failed.")?,
            kafka_lag: reg.int_gauge_vec("deskwatch_kafka_consumer_lag_records", "Records in an owned partition not yet projected (high watermark minus position).", &[LABEL_PARTITION])?,
            kafka_records: reg.counter_vec("deskwatch_kafka_consumed_records_total", "Records consumed from the event topic, per partition.", &[LABEL_PARTITION])?,
            kafka_checkpoint_age: reg.gauge_vec("deskwatch_kafka_checkpoint_age_seconds", "Seconds since the state of an owned partition was last checkpointed.", &[LABEL_PARTITION])?,
            kafka_assigned_partitions: reg.int_gauge("deskwatch_kafka_assigned_partitions", "Partitions of the event topic this instance reads (every replica reads them all).")?,
            kafka_webhook_partitions: reg.int_gauge("deskwatch_kafka_webhook_partitions", "Partitions of the event topic whose webhook alerts the consumer group elected this instance to send.")?,
            kafka_errors: reg.counter_vec("deskwatch_kafka_errors_total", "Errors reported by the Kafka client, by kind.", &["kind"])?,
            dead_letters: reg.counter_vec("deskwatch_dead_letters_total", "Records sent to the dead-letter topic, by reason.", &[LABEL_REASON])?,
            dead_letter_failures: reg.counter("deskwatch_dead_letter_failures_total", "Dead letters the broker did not acknowledge.")?,
            text_waiting: reg.int_gauge("deskwatch_text_waiting_tickets", "Tickets read from the topic whose text is not placed yet: every replica places the tickets of all partitions in creation order, so each waits until every partition has passed its creation time (a partition's newer ticket, or a tick).")?,
            text_reordered: reg.int_gauge("deskwatch_text_reordered_tickets", "Tickets whose text was placed where it reached its partition rather than at its creation time: created before earlier tickets of the partition, or more than a minute before a tick (an import of old tickets into a running desk).")?,
            dead_letters_undelivered: reg.int_gauge("deskwatch_dead_letters_undelivered", "Dead letters the broker has not acknowledged yet; their partitions are not checkpointed past them.")?,
            sla_breaches: reg.counter_vec("deskwatch_sla_breaches_total", "SLA clocks that reached their target, by clock, priority and tenant.", &["clock", "priority", "tenant"])?,
            sla_completed: reg.counter_vec("deskwatch_sla_clocks_completed_total", "SLA clocks stopped, by clock and result (met, breached).", &["clock", "result"])?,
            sla_open_clocks: reg.int_gauge_vec("deskwatch_sla_open_clocks", "Open SLA clocks by clock and state (running, paused).", &["clock", "state"])?,
            sla_at_risk: reg.int_gauge_vec("deskwatch_sla_at_risk_clocks", "Open SLA clocks by highest level reached (warning percent, 100 = breached).", &["clock", "level"])?,
            sla_compliance_ratio: reg.gauge_vec("deskwatch_sla_compliance_ratio", "Stopped clocks that met their target / all stopped clocks, by clock.", &["clock"])?,
            sla_time_to_breach: reg.int_gauge_vec("deskwatch_sla_time_to_breach_clocks", "Running clocks not yet breached with at most `within_seconds` seconds left (cumulative; +Inf: all).", &["clock", "within_seconds"])?,
            sla_deadline_queue: reg.int_gauge("deskwatch_sla_deadline_queue_entries", "Entries in the SLA deadline queue.")?,
            sla_alert_delay_seconds: reg.histogram("deskwatch_sla_alert_delay_seconds", "Delay between a warning or breach instant and its alert leaving the projection.", vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 30.0])?,
            recurring_tickets: reg.int_gauge_vec("deskwatch_recurring_tickets", "Tickets in the recurring window, for the top fingerprints by tickets and the top problem candidates.", &RECURRING_LABELS)?,
            recurring_spike_score: reg.gauge_vec("deskwatch_recurring_spike_score", "Spike score (-log10 of the chance at the baseline rate) of the same fingerprints.", &RECURRING_LABELS)?,
            recurring_fingerprints: reg.int_gauge("deskwatch_recurring_fingerprints", "Fingerprints with tickets in the recurring window.")?,
            recurring_problem_candidates: reg.int_gauge("deskwatch_recurring_problem_candidates", "Problem-record candidates in the recurring window.")?,
            recurring_problem: reg.int_gauge_vec("deskwatch_recurring_problem", "1 for each problem candidate of the recurring window (top K by spike score).", &RECURRING_LABELS)?,
            recurring_kb_candidates: reg.int_gauge("deskwatch_recurring_knowledge_base_candidates", "Knowledge-base candidates in the recurring window.")?,
            top_calls_tickets: reg.int_gauge_vec("deskwatch_top_calls_tickets", "Tickets of the most common calls (text clusters) in the recurring window.", &["rank", "cluster_id", "label"])?,
            recurring_view_seconds: reg.gauge("deskwatch_recurring_view_duration_seconds", "Time the last recurring view took to compute.")?,
            cost_monthly: reg.gauge_vec("deskwatch_cost_monthly_dollars", "Monthly cost of the observed workload, by model (in_house, outsourced).", &["model"])?,
            cost_per_ticket: reg.gauge_vec("deskwatch_cost_per_ticket_dollars", "Cost per ticket of the observed workload, by model.", &["model"])?,
            cost_sla_credits: reg.gauge("deskwatch_cost_sla_credits_dollars", "SLA credits the provider would refund in a month of the observed breaches.")?,
            cost_break_even_tickets: reg.gauge("deskwatch_cost_break_even_monthly_tickets", "Tickets per month from which in-house costs no more than outsourcing (NaN: none within 1 % to 100× the volume).")?,
            staffing_required_agents: reg.int_gauge_vec("deskwatch_staffing_required_agents", "Agents the current hour of the week needs (Erlang C on the observed arrivals), by channel.", &["channel"])?,
            staffing_fte: reg.gauge_vec("deskwatch_staffing_fte", "Full-time equivalents to employ in-house (with shrinkage), by channel.", &["channel"])?,
            staffing_aht_seconds: reg.gauge_vec("deskwatch_staffing_aht_seconds", "Average handle time the staffing uses, by channel.", &["channel"])?,
            staffing_aht_source_share: reg.gauge_vec("deskwatch_staffing_aht_source_ratio", "Share of a channel's tickets whose handle time is work_logged, estimated or default.", &["channel", "source"])?,
            staffing_minimum_fte: reg.gauge_vec("deskwatch_staffing_minimum_fte", "FTE that staff open hours at the minimum because the tickets would need no more, by channel.", &["channel"])?,
            cost_plausibility_flags: reg.gauge_vec("deskwatch_cost_plausibility_flags", "1 for each cost or staffing result outside its published range, by check and subject (desk or channel).", &["check", "subject"])?,
            staffing_weekly_tickets: reg.gauge_vec("deskwatch_staffing_weekly_tickets", "Mean tickets per week observed, by channel.", &["channel"])?,
            cost_model_seconds: reg.gauge("deskwatch_cost_model_duration_seconds", "Time the last cost and staffing model took (workload queries and Erlang C).")?,
            alerts_active: reg.int_gauge("deskwatch_alerts_active", "Active SLA alerts (ticket, clock) known to the dispatcher.")?,
            alerts_sent: reg.counter_vec("deskwatch_alerts_sent_total", "Alerts accepted by a receiver.", &["receiver"])?,
            alert_delivery_failures: reg.counter_vec("deskwatch_alert_delivery_failures_total", "Failed alert deliveries (retried with backoff), by receiver.", &["receiver"])?,
            alerts_queued: reg.int_gauge_vec("deskwatch_alerts_queued", "Alerts waiting for delivery, by receiver.", &["receiver"])?,
            alerts_dropped: reg.counter_vec("deskwatch_alerts_dropped_total", "Alerts dropped: a full queue, the end of the shutdown grace period, or receiver=\"dispatcher\": the dispatcher was gone.", &["receiver"])?,
            alerts_rejected: reg.counter_vec("deskwatch_alerts_rejected_total", "Alerts a receiver refused with a 4xx (dropped alone; the rest delivered).", &["receiver"])?,
            alert_delivery_seconds: reg.histogram(
                "deskwatch_alert_delivery_duration_seconds",
                "Time of one successful alert delivery request.",
                prometheus::DEFAULT_BUCKETS.to_vec(),
            )?,
            published: Default::default(),
            registry,
        };
        for outcome in ["applied", "duplicate", "rejected", "invalid"] {
            m.ingest_events.with_label_values(&[outcome]);
        }
        Ok(m)
    }

    /// Publishes an SLA report: gauges are set, counters move up by the difference from the
    /// last report (a smaller value — a Kafka partition moved away — is not subtracted).
    pub fn publish_sla(&self, report: &crate::sla::SlaReport) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let mut bump = |counter: &IntCounterVec, labels: Vec<String>, value: u64| {
            let last = published.entry(labels.clone()).or_insert(0);
            if value > *last {
                let l: Vec<&str> = labels[1..].iter().map(String::as_str).collect();
                counter.with_label_values(&l).inc_by(value - *last);
            }
            *last = value;
        };
        for ((clock, priority, tenant), n) in &report.breaches {
            bump(
                &self.sla_breaches,
                vec![
                    "b".into(),
                    clock.as_str().into(),
                    priority.as_str().into(),
                    tenant.clone(),
                ],
                *n,
            );
        }
        for ((clock, met), n) in &report.completed {
            let result = if *met { "met" } else { "breached" };
            bump(
                &self.sla_completed,
                vec!["c".into(), clock.as_str().into(), result.into()],
                *n,
            );
        }
        drop(published);
        for clock in crate::sla::ClockKind::ALL {
            let c = clock.as_str();
            let s = report.stats.get(&clock).copied().unwrap_or_default();
            self.sla_open_clocks
                .with_label_values(&[c, "running"])
                .set(s.running);
            self.sla_open_clocks
                .with_label_values(&[c, "paused"])
                .set(s.paused);
            for (i, level) in crate::sla::REPORT_LEVELS.iter().enumerate() {
                self.sla_at_risk
                    .with_label_values(&[c, &level.to_string()])
                    .set(s.at_level[i]);
            }
            for (i, le) in crate::sla::TIME_TO_BREACH_BUCKETS.iter().enumerate() {
                let le = if le.is_finite() {
                    le.to_string()
                } else {
                    "+Inf".to_string()
                };
                self.sla_time_to_breach
                    .with_label_values(&[c, &le])
                    .set(s.time_to_breach[i]);
            }
            let met = report.completed.get(&(clock, true)).copied().unwrap_or(0);
            let breached = report.completed.get(&(clock, false)).copied().unwrap_or(0);
            if met + breached > 0 {
                self.sla_compliance_ratio
                    .with_label_values(&[c])
                    .set(met as f64 / (met + breached) as f64);
            }
        }
        self.sla_deadline_queue.set(report.queue as i64);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
