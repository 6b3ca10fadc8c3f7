-- Soft bounces count only in a row (shared/bounces/record.py): each mailbox's count remembers the
-- last soft-bounced message and when it was sent, so the next one can tell whether a delivery
-- came in between (then it starts again at 1) and never counts the same message twice. Counts
-- kept so far take the time of their last bounce as the send time.
ALTER TABLE soft_bounces
    ADD COLUMN last_campaign_id  uuid,      -- no foreign key: it outlives the campaign
    ADD COLUMN last_position     integer,
    ADD COLUMN last_sent_at      timestamptz;
UPDATE soft_bounces SET last_sent_at = last_at;
