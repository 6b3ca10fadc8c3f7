-- Bounces read back over IMAP (issue 11): each sender may have an IMAP account (the same
-- password as SMTP unless one of its own is sealed here), the bounce worker's place in its INBOX
-- (UIDVALIDITY and the next UID it has not read), and the last problem to show on the sender page.
ALTER TABLE senders
    ADD COLUMN imap_host                text,
    ADD COLUMN imap_port                integer CHECK (imap_port BETWEEN 1 AND 65535),
    ADD COLUMN imap_username            text,
    ADD COLUMN imap_password_encrypted  bytea,
    ADD COLUMN imap_move_bounces        boolean NOT NULL DEFAULT false,
    ADD COLUMN imap_verified_at         timestamptz,
    ADD COLUMN imap_uidvalidity         bigint,
    ADD COLUMN imap_next_uid            bigint,
    ADD COLUMN imap_checked_at          timestamptz,
    ADD COLUMN imap_claimed_until       timestamptz,  -- a bounce worker is reading it (several may run)
    ADD COLUMN imap_problem             text;

-- A recipient whose server took the message (250) and bounced it later.
ALTER TABLE recipients DROP CONSTRAINT recipients_status_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'bounced'));

-- Soft bounces (4.x.x) of a mailbox in a row: suppressed after a few (shared/bounces/record.py);
-- a later message that is not bounced does not reset it, since delivery is never confirmed.
CREATE TABLE soft_bounces (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address     text NOT NULL,
    count       integer NOT NULL,
    last_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);

-- One bounce message recorded once, whatever re-reads the mailbox (a UIDVALIDITY change).
CREATE TABLE bounce_messages (
    sender_id    bigint NOT NULL,
    message_key  text NOT NULL,   -- the bounce's Message-ID, or a hash of its bytes
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_id, message_key)
);
