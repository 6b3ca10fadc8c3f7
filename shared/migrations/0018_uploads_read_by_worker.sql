-- A contact file whose reading within the request ran out of time (a small file crafted to be
-- slow to read) is counted by the fan-out's file readers, as a big file is; its campaigns then
-- load their recipients there too, never in front of other users' starts on the commands topic.
ALTER TABLE uploads ADD COLUMN read_by_worker boolean NOT NULL DEFAULT false;

-- A user's window of delivery batches is filled from their sending campaigns (shared/send_window.py).
CREATE INDEX campaigns_user_sending ON campaigns (user_id) WHERE status = 'sending';
