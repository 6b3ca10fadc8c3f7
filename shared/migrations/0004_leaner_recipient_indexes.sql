-- Every status change rewrote this index; listing by status walks the primary key instead.
DROP INDEX IF EXISTS recipients_status;
