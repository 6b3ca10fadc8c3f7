-- Whose mailbox `imap_uidvalidity` / `imap_next_uid` were reached in (host, a newline, login):
-- turning bounce reading off and on again with the same mailbox keeps the place instead of
-- reading the mailbox again from its first message (issue 11).
ALTER TABLE senders ADD COLUMN imap_place text;
UPDATE senders SET imap_place = imap_host || chr(10) || coalesce(imap_username, '')
 WHERE imap_host IS NOT NULL AND imap_next_uid IS NOT NULL;
