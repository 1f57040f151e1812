-- Every breached clock, with the exact breach instant.
select ticket_id, clock, target_seconds, elapsed_seconds, started_at, breached_at, stopped_at
from sla_clocks
where state = 'breached'
order by breached_at, ticket_id, clock
