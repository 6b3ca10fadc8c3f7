-- Searching the suppression list (shared/suppression_search.py) by the start of a key or of its
-- domain: a LIKE '%…%' read every entry of a list of a million (up to 3.6 s). pg_trgm is not in
-- the bundled Postgres, so these are btrees in byte order ("C"), whatever the database's collation
-- (RDS's en_US sorts otherwise): each search is one ordered range scan of a page.
CREATE INDEX suppressed_key_prefix ON suppressed (user_id, (address COLLATE "C"));
CREATE INDEX suppressed_domain_prefix
    ON suppressed (user_id, (split_part(address, '@', -1) COLLATE "C"), (address COLLATE "C"));

-- Each message counted as soft-bounced, by campaign and position (shared/bounces/record.py): a
-- second report of it counts nothing, also after its campaign (and so its recipient row) is deleted.
CREATE TABLE soft_bounced_messages (
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    campaign_id  uuid NOT NULL,     -- no foreign key: it outlives the campaign
    position     integer NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, campaign_id, position)
);
CREATE INDEX soft_bounced_messages_recorded ON soft_bounced_messages (recorded_at);
-- The last one counted for each mailbox so far (earlier ones are covered while their campaigns exist).
INSERT INTO soft_bounced_messages (user_id, campaign_id, position, recorded_at)
SELECT user_id, last_campaign_id, last_position, last_at FROM soft_bounces WHERE last_campaign_id IS NOT NULL
ON CONFLICT DO NOTHING;
