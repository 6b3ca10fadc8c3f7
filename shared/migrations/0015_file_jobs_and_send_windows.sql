-- Big contact files are read by the fan-out's file readers from this queue (shared/file_jobs.py),
-- not in front of everyone's campaign starts on the commands topic: one user's files at a time,
-- a correction superseding the reading it replaces, a lease that a dead reader loses.
CREATE TABLE file_jobs (
    subject       uuid PRIMARY KEY,  -- the upload to inspect, or the campaign whose recipients to load
    kind          text NOT NULL CHECK (kind IN ('inspect', 'load')),
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation    integer NOT NULL DEFAULT 1,  -- a correction bumps it: the reading under way stops
    queued_at     timestamptz NOT NULL DEFAULT now(),
    not_before    timestamptz NOT NULL DEFAULT now(),
    token         uuid,  -- the reader holding it, while claimed_until is in the future
    claimed_until timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX file_jobs_queue ON file_jobs (queued_at);
CREATE INDEX file_jobs_user ON file_jobs (user_id);

-- A campaign's delivery batches in Kafka: at most a window of them published and not yet
-- finished (shared/send_window.py), so one big campaign never queues hundreds of batches in
-- front of another user's mail.
CREATE TABLE send_windows (
    campaign_id   uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    next_position integer NOT NULL DEFAULT 1,  -- where this pass over the open recipients goes on
    open_batches  integer[] NOT NULL DEFAULT '{}',  -- first positions of the batches out now
    updated_at    timestamptz NOT NULL DEFAULT now()
);
