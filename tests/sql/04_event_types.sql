-- History rows per event type, with work-logged minutes.
select event_type, count(*) as events, sum(minutes) as minutes
from ticket_events group by event_type order by event_type
