-- Final tier and escalations; reassignments and reopens.
select tier, escalation_count, count(*) as tickets, sum(reassignment_count) as reassignments,
       sum(reopen_count) as reopens
from tickets group by tier, escalation_count order by tier, escalation_count
