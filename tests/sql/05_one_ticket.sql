-- The full history of one ticket, in log order.
select log_offset, event_id, event_type, occurred_at, actor_role, status_after, priority_after,
       assignment_group, tier, minutes, public, note
from ticket_events where ticket_id = 'INC0000007' order by log_offset
