-- The largest text clusters: how many tickets each holds, and its founder.
select cluster_label, cluster_founder, count(*) as tickets
from ticket_clusters
group by cluster_label, cluster_founder
order by tickets desc, cluster_label
limit 8
