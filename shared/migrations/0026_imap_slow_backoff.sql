-- A mailbox whose IMAP server was too slow for a look (issue 11) is not looked at again before
-- `imap_slow_until`: a minute, doubling with each slow look in a row (`imap_slow_strikes`) up to
-- an hour; a look that ends in time clears both. Honoured by the poller and by IDLE sessions.
ALTER TABLE senders
    ADD COLUMN imap_slow_until timestamptz,
    ADD COLUMN imap_slow_strikes integer NOT NULL DEFAULT 0;
