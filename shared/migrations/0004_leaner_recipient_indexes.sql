-- Every status change (two per message) rewrote these indexes. Listing by status walks the
-- primary key instead, and addresses are de-duplicated before they are written (fan-out and
-- /api/send-message both keep a set of case-folded addresses), so the unique index on
-- lower(email) only cost time.
DROP INDEX IF EXISTS recipients_status;
DROP INDEX IF EXISTS recipients_email_key;
