-- Intake channels, with first-contact resolutions.
select channel, count(*) as tickets, sum(case when first_contact then 1 else 0 end) as first_contact
from tickets group by channel order by tickets desc, channel
