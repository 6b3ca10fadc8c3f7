-- Browser sessions, login throttling, idempotent requests, contact uploads, suppression lists,
-- and campaigns that start as drafts.

CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    id       bigserial PRIMARY KEY,
    email    text NOT NULL,
    client   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email ON login_failures (lower(email), at);
CREATE INDEX login_failures_client ON login_failures (client, at);

CREATE TABLE idempotency_keys (
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text NOT NULL,
    operation     text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, operation, key)
);

CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename        text NOT NULL,
    s3_key          text NOT NULL,
    size_bytes      bigint,
    status          text NOT NULL CHECK (status IN
                        ('awaiting_upload', 'inspecting', 'ready', 'failed')),
    error_code      text,
    error_detail    text,
    encoding        text,
    delimiter       text,
    has_header      boolean,
    email_column    integer,
    columns         jsonb,
    preview         jsonb,
    report          jsonb,
    rows_read       bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_user ON uploads (user_id, created_at DESC);

CREATE TABLE suppressions (
    sender_id   bigint NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    email       text NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('unsubscribed', 'manual', 'bounced')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_id, email)
);

ALTER TABLE senders
    ADD COLUMN preset text,
    ADD COLUMN last_error text;

ALTER TABLE campaigns
    ALTER COLUMN sender_id DROP NOT NULL,
    ALTER COLUMN subject SET DEFAULT '',
    ALTER COLUMN html_body SET DEFAULT '',
    ADD COLUMN name text NOT NULL DEFAULT '',
    ADD COLUMN upload_id uuid REFERENCES uploads (id),
    ADD COLUMN recipients_loaded boolean NOT NULL DEFAULT false,
    ADD COLUMN duplicates_removed integer NOT NULL DEFAULT 0,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- Campaigns from the seed API carry their recipients from the start.
UPDATE campaigns SET recipients_loaded = true;
CREATE INDEX recipients_status ON recipients (campaign_id, status, position);
