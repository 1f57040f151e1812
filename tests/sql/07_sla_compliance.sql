-- SLA compliance per clock and priority under the default policies.
select clock, priority, policy, state, count(*) as clocks,
       round(avg(percent), 1) as avg_percent,
       round(sum(paused_seconds) / 3600, 2) as paused_hours
from sla_clocks
group by clock, priority, policy, state
order by clock, priority, state
