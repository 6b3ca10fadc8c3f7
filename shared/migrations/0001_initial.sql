-- Users, API keys, SMTP senders, campaigns and their recipients.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL,
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix      text NOT NULL UNIQUE,
    secret_hash bytea NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE senders (
    id                        bigserial PRIMARY KEY,
    user_id                   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_email                text NOT NULL,
    from_name                 text NOT NULL DEFAULT '',
    host                      text NOT NULL,
    port                      integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    security                  text NOT NULL CHECK (security IN ('tls', 'starttls', 'none')),
    username                  text NOT NULL,
    password_encrypted        bytea NOT NULL,
    per_minute                integer CHECK (per_minute > 0),
    per_day                   integer CHECK (per_day > 0),
    recipients_per_connection integer CHECK (recipients_per_connection > 0),
    paused_until              timestamptz,
    pause_reason              text,
    verified_at               timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX senders_user ON senders (user_id);
CREATE UNIQUE INDEX senders_identity ON senders (user_id, lower(from_email), lower(host), port, username);

CREATE TABLE campaigns (
    id              uuid PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sender_id       bigint NOT NULL REFERENCES senders (id),
    subject         text NOT NULL,
    html_body       text NOT NULL,
    text_body       text,
    status          text NOT NULL CHECK (status IN
                        ('draft', 'queued', 'sending', 'paused', 'cancelled', 'finished')),
    status_reason   text,
    recipient_count integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX campaigns_user ON campaigns (user_id, created_at DESC);

-- One row per unique address of a campaign; `position` is its 1-based place in the list,
-- which delivery messages refer to by range so that Kafka never carries addresses or secrets.
CREATE TABLE recipients (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    position    integer NOT NULL,
    email       text NOT NULL,
    fields      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts    integer NOT NULL DEFAULT 0,
    reply       text,
    claimed_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, position)
);
CREATE UNIQUE INDEX recipients_email_key ON recipients (campaign_id, lower(email));
CREATE INDEX recipients_open ON recipients (campaign_id, position) WHERE status IN ('pending', 'sending');
