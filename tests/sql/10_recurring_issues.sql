-- Recurring fingerprints of the last 7 days of the stream, with their flags.
select label, tenant, category, configuration_item, tickets, requesters, baseline_tickets,
       problem_candidate, kb_candidate
from recurring_issues
order by tickets desc, fingerprint
limit 10
