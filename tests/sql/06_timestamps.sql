-- Derived timestamps of the first tickets.
select ticket_id, created_at, first_assigned_at, first_response_at, resolved_at, closed_at,
       handle_minutes, event_count
from tickets order by ticket_id limit 5
