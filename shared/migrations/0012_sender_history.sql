-- A deleted sender leaves the lists but stays for the campaigns it sent (their history keeps its
-- From); its address can be added again at once.
ALTER TABLE senders ADD COLUMN deleted_at timestamptz;
DROP INDEX senders_identity;
CREATE UNIQUE INDEX senders_identity ON senders (user_id, lower(from_email), lower(host), port, username)
    WHERE deleted_at IS NULL;
