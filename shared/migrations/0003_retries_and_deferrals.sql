-- Retries with backoff, and work put off until later (rate limits, paused senders, leases).

ALTER TABLE recipients ADD COLUMN next_attempt_at timestamptz;

CREATE TABLE deferred_batches (
    id          bigserial PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    sender_id   bigint NOT NULL,
    first_position integer NOT NULL,
    last_position  integer NOT NULL,
    spread      boolean NOT NULL DEFAULT false,
    not_before  timestamptz NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deferred_batches_due ON deferred_batches (not_before);

-- The fan-out commits recipients in chunks and publishes each chunk at once; after a crash it
-- resumes from the contact-file row it had reached.
ALTER TABLE campaigns ADD COLUMN loaded_rows integer NOT NULL DEFAULT 0;
