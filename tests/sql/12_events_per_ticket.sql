-- A high-cardinality group-by on the events' ticket id (a string view over the stored
-- dictionary), and a join of events with their tickets on it.
select e.ticket_id, t.priority, count(*) as events
from ticket_events e join tickets t on e.ticket_id = t.ticket_id
group by 1, 2 order by 3 desc, 1 limit 8
