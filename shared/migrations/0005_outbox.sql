-- Commands for the workers, written in the same transaction as the state change they act on
-- (a campaign started or resumed, an upload handed over for inspection) and published to Kafka
-- by a relay, so a broker outage at the moment a user presses Start delays the work instead of
-- losing it or leaving the campaign `queued` with nothing coming.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The sweeper asks whether a campaign still has a command waiting here.
CREATE INDEX outbox_key ON outbox (key);
