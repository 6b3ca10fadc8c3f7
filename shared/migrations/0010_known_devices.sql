-- Browsers that have logged in to an account before. Log-in throttling counts their failures
-- apart from their network address: guessers sharing the owner's address (an office or mobile
-- carrier NAT) or guessing from many addresses cannot lock the owner out of a known browser.
CREATE TABLE known_devices (
    token_hash  bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX known_devices_user ON known_devices (user_id, used_at);
