//! A simulated help desk: a realistic, seeded event stream with known ground truth.
//!
//! Arrivals follow an hour-of-week profile (weekday peaks, a lunch dip, quiet nights and
//! weekends) over a phone-heavy channel mix. Each ticket goes through tier-1 agents whose
//! capacity is finite (so peaks queue up and some tickets are late), may wait on the customer
//! or a vendor, escalate to tier 2 and 3, log work, resolve, reopen and close. Known recurring
//! problems are injected as bursts of similar tickets (English and French) on one
//! configuration item, and [`Truth`] records them with the tickets expected to breach the
//! default SLA policy ([`DEFAULT_TARGETS`]).
//!
//! Deterministic: the same parameters give the same events, byte for byte. Events come out in
//! time order (a heap merges the tickets' lifecycles), so the stream can be generated live.

pub mod catalogue;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::event::{
    Actor, Assigned, Channel, Closed, Commented, Created, Escalated, Payload, Priority,
    PriorityChanged, Reopened, Resolved, Role, Status, StatusChanged, TicketEvent, WorkLogged,
};
use catalogue::{APPS, CALLS, PROBLEMS, SITES, TENANTS};

/// Default SLA targets per priority, in minutes of a 24×7 calendar, with pending_customer and
/// pending_vendor pausing the clocks: (priority, first response, resolution).
pub const DEFAULT_TARGETS: &[(Priority, i64, i64)] = &[
    (Priority::P1, 15, 4 * 60),
    (Priority::P2, 30, 8 * 60),
    (Priority::P3, 4 * 60, 24 * 60),
    (Priority::P4, 8 * 60, 72 * 60),
];

/// Parameters of a simulation.
#[derive(Debug, Clone)]
pub struct Params {
    /// Tickets to create.
    pub tickets: u64,
    /// Random seed.
    pub seed: u64,
    /// Simulated start time.
    pub start: DateTime<Utc>,
    /// Average tickets per day.
    pub per_day: f64,
    /// Ticket id prefix.
    pub id_prefix: String,
    /// Days over which injected problems are spread; default: the span the tickets cover.
    pub horizon_days: Option<f64>,
    /// Problems start no earlier than this many days after the start (so detection has
    /// history to compare with); default 0.
    pub problems_from_days: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            tickets: 1000,
            seed: 1,
            // A Monday.
            start: Utc
                .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            per_day: 400.0,
            id_prefix: "INC".into(),
            horizon_days: None,
            problems_from_days: 0.0,
        }
    }
}

/// One injected recurring problem.
#[derive(Debug, Clone, Serialize)]
pub struct InjectedProblem {
    /// Stable id of the problem (`PRB-1` …).
    pub problem_id: String,
    /// Tenant whose configuration item it is (every ticket of the burst is theirs).
    pub tenant: String,
    /// Category.
    pub category: String,
    /// Configuration item the burst hits.
    pub configuration_item: String,
    /// Service.
    pub service: String,
    /// English title template.
    pub template: String,
    /// Start of the burst window.
    pub window_start: DateTime<Utc>,
    /// End of the burst window.
    pub window_end: DateTime<Utc>,
    /// The tickets of the burst.
    pub ticket_ids: Vec<String>,
}

/// A ticket expected to breach one clock under the default policy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExpectedBreach {
    /// Ticket.
    pub ticket_id: String,
    /// `first_response` or `resolution`.
    pub clock: &'static str,
    /// Final priority.
    pub priority: Priority,
    /// Business minutes elapsed (pauses excluded).
    pub elapsed_minutes: i64,
    /// Target in minutes.
    pub target_minutes: i64,
}

/// What the simulator knows about the stream it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Seed.
    pub seed: u64,
    /// Tickets created.
    pub tickets: u64,
    /// Events written.
    pub events: u64,
    /// The policy breaches are computed under.
    pub sla_policy: String,
    /// Injected recurring problems.
    pub recurring_problems: Vec<InjectedProblem>,
    /// Tickets expected to breach.
    pub expected_breaches: Vec<ExpectedBreach>,
}

struct Agents {
    group: String,
    names: Vec<String>,
    free_at: BinaryHeap<Reverse<(i64, usize)>>,
}

impl Agents {
    fn new(group: &str, prefix: &str, count: usize) -> Agents {
        Agents {
            group: group.to_string(),
            names: (0..count)
                .map(|i| format!("{prefix}{:03}", i + 1))
                .collect(),
            free_at: (0..count).map(|i| Reverse((i64::MIN, i))).collect(),
        }
    }

    /// Takes the first free agent at or after `at` for `minutes`; returns (start, agent).
    fn take(&mut self, at: i64, minutes: f64) -> (i64, String) {
        let Some(Reverse((free, i))) = self.free_at.pop() else {
            return (at, "unassigned".into());
        };
        let start = at.max(free);
        let end = start + (minutes * 60_000.0) as i64;
        self.free_at.push(Reverse((end, i)));
        (start, self.names[i].clone())
    }
}

/// The simulator: an iterator of events in time order.
pub struct Simulator {
    params: Params,
    rng: ChaCha8Rng,
    created: u64,
    background_left: u64,
    next_arrival: i64,
    pending: BinaryHeap<Reverse<(i64, u64, u32)>>,
    events: Vec<Option<TicketEvent>>,
    free_slots: Vec<usize>,
    slot_of: std::collections::HashMap<(u64, u32), usize>,
    problem_arrivals: Vec<(i64, usize)>,
    problems: Vec<InjectedProblem>,
    problem_kinds: Vec<usize>,
    tier1: Agents,
    tier2: Agents,
    tier3: Agents,
    breaches: Vec<ExpectedBreach>,
    written: u64,
    hour_weights: [f64; 168],
    call_weight_total: u32,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("params", &self.params)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn hour_weight(hour_of_week: usize) -> f64 {
    let day = hour_of_week / 24;
    let hour = hour_of_week % 24;
    let weekday = match hour {
        0..=5 => 0.05,
        6 => 0.15,
        7 => 0.5,
        8 => 1.2,
        9 => 1.7,
        10 => 1.8,
        11 => 1.5,
        12 => 0.8,
        13 => 1.2,
        14 => 1.6,
        15 => 1.5,
        16 => 1.2,
        17 => 0.7,
        18 => 0.35,
        19..=21 => 0.15,
        _ => 0.08,
    };
    match day {
        0 => weekday * 1.25,
        1..=3 => weekday,
        4 => weekday * 0.85,
        _ => 0.06 + weekday * 0.08,
    }
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

impl Simulator {
    /// A simulator for `params`.
    pub fn new(params: Params) -> Simulator {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut hour_weights = [0.0; 168];
        for (h, w) in hour_weights.iter_mut().enumerate() {
            *w = hour_weight(h);
        }
        let mean_weight = hour_weights.iter().sum::<f64>() / 168.0;
        // Tier-1 capacity: enough for the average hour at ~45 % load, so the peak hours queue.
        let per_hour_peak = params.per_day / 24.0 / mean_weight * 1.8;
        let tier1 = ((per_hour_peak * 14.0 / 60.0) * 0.8).ceil().max(2.0) as usize;
        let tier2 = (tier1 / 2).max(2);
        let tier3 = (tier1 / 4).max(1);
        let start = params.start.timestamp_millis();
        let span_days = params
            .horizon_days
            .unwrap_or(params.tickets as f64 / params.per_day)
            .clamp(1.0, 3650.0);
        let span = (span_days * 24.0 * HOUR as f64) as i64;
        // Problems: a few bursts of 6–16 tickets each within the simulated span.
        let mut problems = Vec::new();
        let mut problem_kinds = Vec::new();
        let mut problem_arrivals = Vec::new();
        let n_problems = if params.tickets < 200 {
            0
        } else {
            ((params.tickets / 2500) as usize).clamp(3, PROBLEMS.len())
        };
        let mut reserved = 0u64;
        for p in 0..n_problems {
            let kind = p % PROBLEMS.len();
            let k = PROBLEMS[kind];
            let site = SITES[rng.random_range(0..SITES.len())];
            let count = rng.random_range(6..=16u64).min(params.tickets / 20);
            let window_days = rng.random_range(2..=5) as i64;
            let window = window_days * 24 * HOUR;
            let from = ((params.problems_from_days.max(0.0) * 24.0 * HOUR as f64) as i64)
                .min((span - window).max(0));
            let window_start = start + from + rng.random_range(0..(span - from - window).max(1));
            for _ in 0..count {
                problem_arrivals.push((window_start + rng.random_range(0..window), p));
            }
            reserved += count;
            problems.push(InjectedProblem {
                problem_id: format!("PRB-{}", p + 1),
                tenant: TENANTS[p % TENANTS.len()].into(),
                category: k.category.into(),
                configuration_item: format!("{}-{site}-{:02}", k.item, rng.random_range(1..20)),
                service: k.service.into(),
                template: k.title_en.into(),
                window_start: ms_to_time(window_start),
                window_end: ms_to_time(window_start + window),
                ticket_ids: Vec::new(),
            });
            problem_kinds.push(kind);
        }
        problem_arrivals.sort_unstable();
        problem_arrivals.reverse();
        let mut sim = Simulator {
            background_left: params.tickets - reserved,
            params,
            rng,
            created: 0,
            next_arrival: start,
            pending: BinaryHeap::new(),
            events: Vec::new(),
            free_slots: Vec::new(),
            slot_of: Default::default(),
            problem_arrivals,
            problems,
            problem_kinds,
            tier1: Agents::new("Service Desk L1", "agent.l1.", tier1),
            tier2: Agents::new("Desktop & Apps L2", "agent.l2.", tier2),
            tier3: Agents::new("Infrastructure L3", "agent.l3.", tier3),
            breaches: Vec::new(),
            written: 0,
            hour_weights,
            call_weight_total: CALLS.iter().map(|c| c.weight).sum(),
        };
        sim.next_arrival = sim.next_background_arrival(start);
        sim
    }

    /// Ground truth so far (complete once the iterator is exhausted).
    pub fn truth(&self) -> Truth {
        let mut expected = self.breaches.clone();
        expected.sort_by(|a, b| (&a.ticket_id, a.clock).cmp(&(&b.ticket_id, b.clock)));
        Truth {
            seed: self.params.seed,
            tickets: self.created,
            events: self.written,
            sla_policy: "default: 24x7 calendar; pending_customer and pending_vendor pause; \
                         first response / resolution targets P1 15m/4h, P2 30m/8h, P3 4h/24h, P4 8h/72h"
                .into(),
            recurring_problems: self.problems.clone(),
            expected_breaches: expected,
        }
    }

    fn next_background_arrival(&mut self, after: i64) -> i64 {
        if self.background_left == 0 {
            return i64::MAX;
        }
        // Thinning of a Poisson process with the hour-of-week rate.
        let mean_weight = self.hour_weights.iter().sum::<f64>() / 168.0;
        let base_per_ms = self.params.per_day / (24.0 * HOUR as f64) / mean_weight;
        let max_w = self.hour_weights.iter().cloned().fold(0.0, f64::max);
        let mut t = after;
        loop {
            let u: f64 = self.rng.random::<f64>().max(1e-12);
            t += (-u.ln() / (base_per_ms * max_w)) as i64 + 1;
            let dt = ms_to_time(t);
            let how = dt.weekday().num_days_from_monday() as usize * 24 + dt.hour() as usize;
            if self.rng.random::<f64>() < self.hour_weights[how] / max_w {
                return t;
            }
        }
    }

    fn push(&mut self, event: TicketEvent, ticket_no: u64, seq: u32) {
        let at = event.occurred_at.timestamp_millis();
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.events[s] = Some(event);
                s
            }
            None => {
                self.events.push(Some(event));
                self.events.len() - 1
            }
        };
        self.slot_of.insert((ticket_no, seq), slot);
        self.pending.push(Reverse((at, ticket_no, seq)));
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    fn fill(&mut self, template: &str, site: &str, user: &str) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let key = &rest[open + 1..open + close];
            let value = match key {
                "user" => user.to_string(),
                "host" => format!("LT-{site}-{:04}", self.rng.random_range(1..3000)),
                "code" => format!("0x{:08X}", self.rng.random::<u32>() & 0x8007_FFFF),
                "printer" => format!("PRN-{site}-{:02}", self.rng.random_range(1..12)),
                "app" => self.pick(APPS).to_string(),
                "bldg" => format!("{site}-{}", (b'A' + self.rng.random_range(0..6u8)) as char),
                "path" => format!(
                    "\\\\fs-{}\\projects\\p{:04}",
                    site.to_lowercase(),
                    self.rng.random_range(1..5000)
                ),
                "tx" => ["ME21N", "VA01", "FB60", "MIGO", "SU01"][self.rng.random_range(0..5)]
                    .to_string(),
                "ext" => format!("{}", self.rng.random_range(2000..8999)),
                "email" => format!(
                    "billing{}@{}.example.net",
                    self.rng.random_range(1..99),
                    ["secure-pay", "docu-share", "it-helpdesk"][self.rng.random_range(0..3)]
                ),
                "url" => format!(
                    "https://intranet.corp.example/{}",
                    ["hr", "finance", "wiki", "news"][self.rng.random_range(0..4)]
                ),
                "time" => format!(
                    "{:02}:{:02}",
                    self.rng.random_range(7..19),
                    self.rng.random_range(0..60)
                ),
                "n" => format!("{}", self.rng.random_range(2..60)),
                "drive" => format!("{}:", (b'G' + self.rng.random_range(0..12u8)) as char),
                "door" => format!("{site}-{}", self.rng.random_range(1..6)),
                "floor" => format!("{}", self.rng.random_range(1..9)),
                "room" => format!(
                    "{site}-{}{:02}",
                    self.rng.random_range(1..6),
                    self.rng.random_range(1..20)
                ),
                other => other.to_string(),
            };
            out.push_str(&value);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(1e-12);
        let u2: f64 = self.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * z).exp()
    }

    /// Plans one ticket's whole lifecycle and queues its events.
    fn create_ticket(&mut self, at: i64, problem: Option<usize>) {
        let n = self.created;
        self.created += 1;
        let ticket_id = format!("{}{:07}", self.params.id_prefix, n + 1);
        let who = self.requester_of(problem);
        let Call {
            category,
            subcategory,
            service,
            item,
            title,
            description,
            escalation,
            handle,
            kb,
        } = self.call_of(problem, &who, &ticket_id);
        let Who {
            tenant,
            user,
            channel,
            priority,
            ..
        } = who;
        let mut life = Lifecycle::new(&ticket_id, tenant);
        let requester = Actor {
            id: user.clone(),
            role: if channel == Channel::Monitoring {
                Role::System
            } else {
                Role::Requester
            },
        };
        life.emit(
            at,
            requester.clone(),
            Payload::Created(Created {
                channel,
                priority: Some(priority),
                impact: None,
                urgency: None,
                category: category.into(),
                subcategory: Some(subcategory.into()),
                configuration_item: Some(item),
                service: Some(service.into()),
                requester: user.clone(),
                title,
                description: Some(description),
            }),
        );
        let (mut t, mut paused, a1) = self.tier_one(&mut life, at, priority, handle, &requester);
        let (t2, resolver, tier, paused_later) =
            self.escalations(&mut life, t, &a1, handle, escalation);
        t = t2;
        paused += paused_later;
        t += self.rng.random_range(1..10) * MINUTE;
        let first_contact = tier == 1
            && paused == 0
            && matches!(channel, Channel::Phone | Channel::Chat | Channel::WalkIn);
        let kb_used = kb.filter(|_| self.rng.random::<f64>() < 0.6);
        let resolution_code = match (problem, tier) {
            (Some(_), _) => "workaround",
            (None, 1) => "solved_remotely",
            (None, _) => "fixed",
        };
        life.emit(
            t,
            agent(&resolver),
            Payload::Resolved(Resolved {
                resolution_code: resolution_code.into(),
                first_contact,
                kb_article: kb_used.map(str::to_string),
            }),
        );
        t = self.maybe_reopen(&mut life, t, &resolver, &requester, handle);
        life.emit(
            t + 72 * HOUR,
            Actor {
                id: "deskwatch-sim".into(),
                role: Role::System,
            },
            Payload::Closed(Closed {}),
        );
        self.queue(life, n);
    }

    /// Queues a planned ticket's events (in order even when two share a millisecond) and
    /// records the breaches they should cause.
    fn queue(&mut self, mut life: Lifecycle, n: u64) {
        let mut last = i64::MIN;
        for (_, event) in life.events.iter_mut() {
            let mut ms = event.occurred_at.timestamp_millis();
            if ms <= last {
                ms = last + 1;
                event.occurred_at = ms_to_time(ms);
            }
            last = ms;
        }
        let stream: Vec<&TicketEvent> = life.events.iter().map(|(_, e)| e).collect();
        self.breaches.extend(expected_breaches(&stream));
        for (seq, event) in life.events {
            self.push(event, n, seq);
        }
    }
    /// Tier 1 takes the ticket when an agent is free (P1/P2 a little ahead), replies, maybe
    /// changes the priority or waits for the requester, and logs its work; the time, the time
    /// paused and the agent.
    fn tier_one(
        &mut self,
        life: &mut Lifecycle,
        at: i64,
        priority: Priority,
        handle: f64,
        requester: &Actor,
    ) -> (i64, i64, String) {
        let urgency_factor = match priority {
            Priority::P1 => 0.2,
            Priority::P2 => 0.5,
            _ => 1.0,
        };
        let h1 = self.lognormal(handle, 0.5).clamp(2.0, 240.0);
        let intake =
            at + (self.rng.random_range(1..6) as f64 * urgency_factor * MINUTE as f64) as i64;
        let (start1, a1) = self.tier1.take(intake, h1);
        let group1 = self.tier1.group.clone();
        life.emit(
            start1,
            agent(&a1),
            Payload::Assigned(Assigned {
                group: group1,
                agent: Some(a1.clone()),
                tier: 1,
            }),
        );
        let mut t = start1 + MINUTE;
        life.emit(
            t,
            agent(&a1),
            Payload::StatusChanged(StatusChanged {
                from: Status::Open,
                to: Status::InProgress,
            }),
        );
        t += self.rng.random_range(1..8) * MINUTE;
        life.emit(
            t,
            agent(&a1),
            Payload::Commented(Commented {
                public: true,
                author_role: Role::Agent,
            }),
        );
        t = self.maybe_reprioritise(life, t, &a1, priority);
        let (t, paused) = self.maybe_wait_for_requester(life, t, &a1, requester);
        let t = t + (h1 * MINUTE as f64) as i64;
        life.emit(
            t,
            agent(&a1),
            Payload::WorkLogged(WorkLogged {
                agent: a1.clone(),
                minutes: h1.round().max(1.0) as u32,
            }),
        );
        (t, paused, a1)
    }

    /// Sometimes (4 %) tier 1 corrects the priority a step; returns the time after.
    fn maybe_reprioritise(
        &mut self,
        life: &mut Lifecycle,
        mut t: i64,
        a1: &str,
        priority: Priority,
    ) -> i64 {
        if self.rng.random::<f64>() < 0.04 {
            let to = match priority {
                Priority::P1 => Priority::P2,
                Priority::P2 => Priority::P1,
                Priority::P3 => Priority::P2,
                Priority::P4 => Priority::P3,
            };
            t += self.rng.random_range(5..60) * MINUTE;
            life.emit(
                t,
                agent(a1),
                Payload::PriorityChanged(PriorityChanged { from: priority, to }),
            );
        }
        t
    }

    /// Sometimes (18 %) tier 1 waits for the requester's answer; returns the time after and
    /// the time paused.
    fn maybe_wait_for_requester(
        &mut self,
        life: &mut Lifecycle,
        mut t: i64,
        a1: &str,
        requester: &Actor,
    ) -> (i64, i64) {
        let mut paused: i64 = 0;
        if self.rng.random::<f64>() < 0.18 {
            t += self.rng.random_range(2..30) * MINUTE;
            life.emit(
                t,
                agent(a1),
                Payload::StatusChanged(StatusChanged {
                    from: Status::InProgress,
                    to: Status::PendingCustomer,
                }),
            );
            let wait = (self.lognormal(3.0, 1.0).clamp(0.1, 72.0) * HOUR as f64) as i64;
            t += wait;
            paused += wait;
            life.emit(
                t,
                requester.clone(),
                Payload::Commented(Commented {
                    public: true,
                    author_role: Role::Requester,
                }),
            );
            life.emit(
                t + MINUTE,
                agent(a1),
                Payload::StatusChanged(StatusChanged {
                    from: Status::PendingCustomer,
                    to: Status::InProgress,
                }),
            );
            t += MINUTE;
        }
        (t, paused)
    }

    /// Who calls, from where, by which channel and how urgently.
    fn requester_of(&mut self, problem: Option<usize>) -> Who {
        let tenant = TENANTS[(self.rng.random::<f64>().powi(2) * TENANTS.len() as f64) as usize];
        // A configuration item belongs to one tenant: a problem's tickets are all theirs.
        let tenant = problem.map_or(tenant, |p| TENANTS[p % TENANTS.len()]);
        let french = self.rng.random::<f64>() < 0.3;
        let site = if french {
            ["PAR", "LYO", "MTL"][self.rng.random_range(0..3)]
        } else {
            self.pick(SITES)
        };
        // Requesters: a Zipf-like pool, so some people call often.
        let who_n = (self.rng.random::<f64>().powi(3) * 2000.0) as u32;
        let user = format!("user{who_n:04}@{tenant}.example");
        let channel = {
            let r: f64 = self.rng.random();
            match r {
                r if r < 0.42 => Channel::Phone,
                r if r < 0.66 => Channel::Email,
                r if r < 0.80 => Channel::Portal,
                r if r < 0.90 => Channel::Chat,
                r if r < 0.94 => Channel::Messaging,
                r if r < 0.97 => Channel::WalkIn,
                _ => Channel::Monitoring,
            }
        };
        let priority = {
            let r: f64 = self.rng.random();
            match r {
                r if r < 0.03 => Priority::P1,
                r if r < 0.15 => Priority::P2,
                r if r < 0.70 => Priority::P3,
                _ => Priority::P4,
            }
        };
        Who {
            tenant,
            french,
            site,
            user,
            channel,
            priority,
        }
    }

    /// What the call is about: an injected problem's or a routine call's text and figures.
    fn call_of(&mut self, problem: Option<usize>, who: &Who, ticket_id: &str) -> Call {
        let (french, site, user) = (who.french, who.site, who.user.as_str());
        let (category, subcategory, service, item, title, description, escalation, handle, kb) =
            match problem {
                Some(p) => {
                    let k = PROBLEMS[self.problem_kinds[p]];
                    let (t, d) = if french {
                        (k.title_fr, k.description_fr)
                    } else {
                        (k.title_en, k.description_en)
                    };
                    let title = self.fill(t, site, user);
                    let description = self.fill(d, site, user);
                    self.problems[p].ticket_ids.push(ticket_id.to_string());
                    let item = self.problems[p].configuration_item.clone();
                    (
                        k.category,
                        k.subcategory,
                        k.service,
                        item,
                        title,
                        description,
                        0.5,
                        25.0,
                        None,
                    )
                }
                None => {
                    let mut r = self.rng.random_range(0..self.call_weight_total);
                    let mut kind = CALLS[0];
                    for c in CALLS {
                        if r < c.weight {
                            kind = *c;
                            break;
                        }
                        r -= c.weight;
                    }
                    let (t, d) = if french {
                        (kind.title_fr, kind.description_fr)
                    } else {
                        (kind.title_en, kind.description_en)
                    };
                    let title = self.fill(t, site, user);
                    let description = self.fill(d, site, user);
                    let item = if kind.items.is_empty() {
                        format!("LT-{site}-{:04}", self.rng.random_range(1..3000))
                    } else {
                        self.pick(kind.items).to_string()
                    };
                    (
                        kind.category,
                        kind.subcategory,
                        kind.service,
                        item,
                        title,
                        description,
                        kind.escalation,
                        kind.handle_minutes,
                        kind.kb_article,
                    )
                }
            };
        Call {
            category,
            subcategory,
            service,
            item,
            title,
            description,
            escalation,
            handle,
            kb,
        }
    }

    /// Escalations to tier 2 and, from there, tier 3, each with its work; the time, the
    /// resolver, the tier reached and the time added to `paused`.
    fn escalations(
        &mut self,
        life: &mut Lifecycle,
        mut t: i64,
        a1: &str,
        handle: f64,
        escalation: f64,
    ) -> (i64, String, u8, i64) {
        let mut resolver = a1.to_string();
        let mut tier = 1u8;
        let mut paused = 0i64;
        if self.rng.random::<f64>() < escalation {
            let (next_tier, pool) = (2u8, &mut self.tier2);
            let h2 = (handle * 2.5 * (0.5 + self.rng.random::<f64>())).clamp(5.0, 600.0);
            let group = pool.group.clone();
            life.emit(
                t + MINUTE,
                agent(a1),
                Payload::Escalated(Escalated {
                    from_tier: 1,
                    to_tier: next_tier,
                    group: group.clone(),
                    reason: Some("needs specialist".into()),
                }),
            );
            let (s2, a2) = self.tier2.take(t + 2 * MINUTE, h2);
            life.emit(
                s2,
                agent(&a2),
                Payload::Assigned(Assigned {
                    group,
                    agent: Some(a2.clone()),
                    tier: 2,
                }),
            );
            t = s2 + (h2 * MINUTE as f64) as i64;
            life.emit(
                t,
                agent(&a2),
                Payload::WorkLogged(WorkLogged {
                    agent: a2.clone(),
                    minutes: h2.round().max(1.0) as u32,
                }),
            );
            resolver = a2.clone();
            tier = 2;
            if self.rng.random::<f64>() < 0.25 {
                let (t3, a3, waited) = self.tier_three(life, t, &a2, handle);
                (t, resolver, tier) = (t3, a3, 3);
                paused += waited;
            }
        }
        (t, resolver, tier, paused)
    }

    /// Tier 3 takes an escalated ticket, maybe waits for a vendor, and logs its work; the
    /// time, the agent and the time paused.
    fn tier_three(
        &mut self,
        life: &mut Lifecycle,
        mut t: i64,
        a2: &str,
        handle: f64,
    ) -> (i64, String, i64) {
        let mut paused = 0i64;
        let group = self.tier3.group.clone();
        let h3 = (handle * 4.0 * (0.5 + self.rng.random::<f64>())).clamp(10.0, 900.0);
        life.emit(
            t + MINUTE,
            agent(a2),
            Payload::Escalated(Escalated {
                from_tier: 2,
                to_tier: 3,
                group: group.clone(),
                reason: Some("infrastructure change needed".into()),
            }),
        );
        let (s3, a3) = self.tier3.take(t + 2 * MINUTE, h3);
        life.emit(
            s3,
            agent(&a3),
            Payload::Assigned(Assigned {
                group,
                agent: Some(a3.clone()),
                tier: 3,
            }),
        );
        t = s3;
        if self.rng.random::<f64>() < 0.3 {
            life.emit(
                t + MINUTE,
                agent(&a3),
                Payload::StatusChanged(StatusChanged {
                    from: Status::InProgress,
                    to: Status::PendingVendor,
                }),
            );
            let wait = (self.lognormal(20.0, 0.7).clamp(1.0, 200.0) * HOUR as f64) as i64;
            paused = wait;
            t += MINUTE + wait;
            life.emit(
                t,
                agent(&a3),
                Payload::StatusChanged(StatusChanged {
                    from: Status::PendingVendor,
                    to: Status::InProgress,
                }),
            );
        }
        t += (h3 * MINUTE as f64) as i64;
        life.emit(
            t,
            agent(&a3),
            Payload::WorkLogged(WorkLogged {
                agent: a3.clone(),
                minutes: h3.round().max(1.0) as u32,
            }),
        );
        (t, a3, paused)
    }

    /// One ticket in 17 comes back: reopened, worked again and resolved; the new time.
    fn maybe_reopen(
        &mut self,
        life: &mut Lifecycle,
        mut t: i64,
        resolver: &str,
        requester: &Actor,
        handle: f64,
    ) -> i64 {
        if self.rng.random::<f64>() < 0.06 {
            let back = t + (self.lognormal(8.0, 0.8).clamp(0.5, 96.0) * HOUR as f64) as i64;
            life.emit(
                back,
                requester.clone(),
                Payload::Reopened(Reopened {
                    reason: Some("issue came back".into()),
                }),
            );
            life.emit(
                back + 2 * MINUTE,
                agent(resolver),
                Payload::StatusChanged(StatusChanged {
                    from: Status::Open,
                    to: Status::InProgress,
                }),
            );
            let h = self.lognormal(handle, 0.5).clamp(2.0, 240.0);
            t = back + 2 * MINUTE + (h * MINUTE as f64) as i64;
            life.emit(
                t,
                agent(resolver),
                Payload::WorkLogged(WorkLogged {
                    agent: resolver.to_string(),
                    minutes: h.round().max(1.0) as u32,
                }),
            );
            t += MINUTE;
            life.emit(
                t,
                agent(resolver),
                Payload::Resolved(Resolved {
                    resolution_code: "fixed".into(),
                    first_contact: false,
                    kb_article: None,
                }),
            );
        }
        t
    }

    fn next_ticket_time(&self) -> Option<(i64, Option<usize>)> {
        let problem = self.problem_arrivals.last().copied();
        match problem {
            Some((t, p)) if t <= self.next_arrival => Some((t, Some(p))),
            _ if self.next_arrival != i64::MAX => Some((self.next_arrival, None)),
            Some((t, p)) => Some((t, Some(p))),
            None => None,
        }
    }
}

/// Who calls: tenant, language, site, requester, channel and priority.
struct Who {
    tenant: &'static str,
    french: bool,
    site: &'static str,
    user: String,
    channel: Channel,
    priority: Priority,
}

/// What a call is about.
struct Call {
    category: &'static str,
    subcategory: &'static str,
    service: &'static str,
    item: String,
    title: String,
    description: String,
    escalation: f64,
    handle: f64,
    kb: Option<&'static str>,
}

/// One ticket's events as its lifecycle is planned, numbered in order.
struct Lifecycle {
    ticket_id: String,
    tenant: Option<String>,
    seq: u32,
    events: Vec<(u32, TicketEvent)>,
}

impl Lifecycle {
    fn new(ticket_id: &str, tenant: &str) -> Lifecycle {
        Lifecycle {
            ticket_id: ticket_id.to_string(),
            tenant: Some(tenant.to_string()),
            seq: 0,
            events: Vec::with_capacity(12),
        }
    }

    fn emit(&mut self, t: i64, actor: Actor, payload: Payload) {
        self.seq += 1;
        let seq = self.seq;
        self.events.push((
            seq,
            TicketEvent {
                event_id: format!("{}-{seq:02}", self.ticket_id),
                ticket_id: self.ticket_id.clone(),
                tenant: self.tenant.clone(),
                occurred_at: ms_to_time(t),
                actor,
                payload,
            },
        ));
    }
}

fn agent(id: &str) -> Actor {
    Actor {
        id: id.to_string(),
        role: Role::Agent,
    }
}

impl Iterator for Simulator {
    type Item = TicketEvent;

    fn next(&mut self) -> Option<TicketEvent> {
        loop {
            let next_ticket = self.next_ticket_time();
            let next_event = self.pending.peek().map(|Reverse((t, _, _))| *t);
            match (next_ticket, next_event) {
                (Some((t, problem)), e) if e.is_none_or(|e| t < e) => {
                    match problem {
                        Some(_) => {
                            self.problem_arrivals.pop();
                        }
                        None => {
                            self.background_left -= 1;
                            self.next_arrival = self.next_background_arrival(t);
                        }
                    }
                    self.create_ticket(t, problem);
                }
                (_, Some(_)) => {
                    let Reverse((_, ticket, seq)) = self.pending.pop()?;
                    let slot = self.slot_of.remove(&(ticket, seq))?;
                    let event = self.events[slot].take()?;
                    self.free_slots.push(slot);
                    self.written += 1;
                    return Some(event);
                }
                _ => return None,
            }
        }
    }
}

/// The clocks one ticket's events breach under the default policy ([`DEFAULT_TARGETS`], 24×7,
/// pending_customer and pending_vendor pause): an oracle written apart from the SLA engine.
/// First response is judged against the priority when it happened, resolution against the
/// priority when the ticket was (last) resolved; a clock breaches when its elapsed time,
/// pauses excluded, reaches the target.
pub fn expected_breaches(events: &[&TicketEvent]) -> Vec<ExpectedBreach> {
    let Some(first) = events.first() else {
        return Vec::new();
    };
    let Payload::Created(c) = &first.payload else {
        return Vec::new();
    };
    let targets = |p: Priority| {
        DEFAULT_TARGETS
            .iter()
            .find(|(q, _, _)| *q == p)
            .map(|(_, f, r)| (f * MINUTE, r * MINUTE))
            .unwrap_or((240 * MINUTE, 1440 * MINUTE))
    };
    let created = first.occurred_at.timestamp_millis();
    let mut priority = c.effective_priority();
    let mut paused_since: Option<i64> = None;
    // Elapsed active time of each clock, and whether it runs.
    let (mut fr, mut fr_running, mut fr_done) = (0i64, true, None);
    let (mut res, mut res_running, mut res_priority) = (0i64, true, priority);
    let mut mark = created;
    let pausing = |s: Status| matches!(s, Status::PendingCustomer | Status::PendingVendor);
    let mut status = Status::New;
    for e in &events[1..] {
        let t = e.occurred_at.timestamp_millis();
        if paused_since.is_none() {
            if fr_running {
                fr += t - mark;
            }
            if res_running {
                res += t - mark;
            }
        }
        mark = t;
        let mut to = None;
        match &e.payload {
            Payload::Commented(c) if c.public && c.author_role == Role::Agent && fr_running => {
                fr_running = false;
                fr_done = Some(priority);
            }
            Payload::PriorityChanged(p) => priority = p.to,
            Payload::StatusChanged(s) => to = Some(s.to),
            Payload::Resolved(_) => to = Some(Status::Resolved),
            Payload::Reopened(_) => to = Some(Status::Open),
            Payload::Closed(_) => to = Some(Status::Closed),
            _ => {}
        }
        if let Some(to) = to {
            if matches!(to, Status::Resolved | Status::Closed | Status::Cancelled) {
                if fr_running {
                    fr_running = false;
                    fr_done = Some(priority);
                }
                if res_running {
                    res_running = false;
                    res_priority = priority;
                }
                paused_since = None;
            } else {
                if status == Status::Resolved {
                    res_running = true;
                }
                paused_since = pausing(to).then_some(t);
            }
            status = to;
        }
    }
    let mut out = Vec::new();
    let ticket_id = &first.ticket_id;
    for (clock, elapsed, p) in [
        ("first_response", fr, fr_done.unwrap_or(priority)),
        ("resolution", res, res_priority),
    ] {
        let (f, r) = targets(p);
        let target = if clock == "first_response" { f } else { r };
        if elapsed >= target {
            out.push(ExpectedBreach {
                ticket_id: ticket_id.clone(),
                clock,
                priority: p,
                elapsed_minutes: elapsed / MINUTE,
                target_minutes: target / MINUTE,
            });
        }
    }
    out
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Hour of the week (Monday 00:00 = 0) of an instant, for profiles.
pub fn hour_of_week(t: DateTime<Utc>) -> usize {
    t.weekday().num_days_from_monday() as usize * 24 + t.hour() as usize
}

/// The start of the day `days` before `now`, for simulations that end around now.
pub fn days_before(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    let t = now - Duration::days(days);
    t.with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::{Outcome, Projection};

    #[test]
    fn same_seed_same_bytes_and_every_event_applies() {
        let params = Params {
            tickets: 600,
            seed: 7,
            ..Params::default()
        };
        let a: Vec<Vec<u8>> = Simulator::new(params.clone())
            .map(|e| e.to_json())
            .collect();
        let b: Vec<Vec<u8>> = Simulator::new(params).map(|e| e.to_json()).collect();
        assert_eq!(a, b);
        let mut p = Projection::new();
        let mut last = String::new();
        for (i, bytes) in a.iter().enumerate() {
            let e = TicketEvent::from_json(bytes).unwrap();
            assert!(
                e.occurred_at.to_rfc3339() >= last,
                "events are in time order"
            );
            last = e.occurred_at.to_rfc3339();
            assert_eq!(p.apply(&e, i as u64), Outcome::Applied, "{e:?}");
        }
        assert_eq!(p.ticket_count(), 600);
    }

    #[test]
    fn injects_problems_and_some_breaches() {
        let mut sim = Simulator::new(Params {
            tickets: 5000,
            seed: 3,
            ..Params::default()
        });
        let events = sim.by_ref().count() as u64;
        let truth = sim.truth();
        assert_eq!(truth.events, events);
        assert!(truth.recurring_problems.len() >= 3);
        for p in &truth.recurring_problems {
            assert!(p.ticket_ids.len() >= 6, "{p:?}");
        }
        let breached = truth.expected_breaches.len();
        assert!(breached > 50 && breached < 2500, "{breached} breaches");
    }
}
