-- How many entries of each account's suppression list a person added by hand or imported (issue
-- 11): the cap on them (shared/suppressions.py MAX_ENTRIES) reads this one row, where it counted
-- the whole list — up to a million entries — for every address added. Kept by the triggers below
-- in the writing statement's own transaction, whatever writes the list. Unsubscribes and bounces
-- are not counted (they are never refused), so they never wait on this row; an entry's user and
-- reason never change after it is written (a second reason keeps the first), hence no UPDATE trigger.
CREATE TABLE suppression_counts (
    user_id  bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    by_hand  bigint NOT NULL
);

CREATE FUNCTION suppression_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO suppression_counts AS c (user_id, by_hand)
    SELECT user_id, count(*) FROM added WHERE reason IN ('manual', 'imported') GROUP BY user_id ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET by_hand = c.by_hand + EXCLUDED.by_hand;
    RETURN NULL;
END $$;

CREATE FUNCTION suppression_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE suppression_counts AS c SET by_hand = c.by_hand - gone.n
      FROM (SELECT user_id, count(*) AS n FROM removed WHERE reason IN ('manual', 'imported')
             GROUP BY user_id) AS gone
     WHERE c.user_id = gone.user_id;
    RETURN NULL;
END $$;

CREATE FUNCTION suppression_counts_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM suppression_counts;
    RETURN NULL;
END $$;

-- No write may pass between the triggers' creation and the count they start from.
LOCK TABLE suppressed IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER suppressed_counted_in AFTER INSERT ON suppressed
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION suppression_counts_added();
CREATE TRIGGER suppressed_counted_out AFTER DELETE ON suppressed
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION suppression_counts_removed();
CREATE TRIGGER suppressed_emptied AFTER TRUNCATE ON suppressed
    FOR EACH STATEMENT EXECUTE FUNCTION suppression_counts_emptied();

INSERT INTO suppression_counts (user_id, by_hand)
SELECT user_id, count(*) FROM suppressed WHERE reason IN ('manual', 'imported') GROUP BY user_id;
