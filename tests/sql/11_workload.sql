-- Staffing inputs: busiest hours of the week per channel, and handle times per channel and tier.
select w.channel, w.hour_of_week, w.tickets, round(w.arrivals_per_hour, 4) as arrivals_per_hour,
       h.tickets as channel_tickets, h.with_work_logged, round(h.aht_minutes, 2) as aht_minutes,
       round(h.resolution_rate, 4) as resolution_rate, round(h.escalation_rate, 4) as escalation_rate
from workload w
join (select channel, sum(tickets) as tickets, sum(with_work_logged) as with_work_logged,
             sum(aht_minutes * tickets) / sum(tickets) as aht_minutes,
             sum(resolution_rate * tickets) / sum(tickets) as resolution_rate,
             sum(escalation_rate * tickets) / sum(tickets) as escalation_rate
      from handle_times group by channel) h on h.channel = w.channel
order by w.tickets desc, w.channel, w.hour_of_week
limit 12
