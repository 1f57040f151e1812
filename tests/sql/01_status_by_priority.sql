-- Current status per priority.
select priority, status, count(*) as tickets
from tickets group by priority, status order by priority, status
