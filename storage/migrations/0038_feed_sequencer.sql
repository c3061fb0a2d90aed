-- Feed positions without a lock through commit (issue 18). Migration 0009 gave each row its
-- `seq` at commit under one advisory lock (and a NOTIFY, whose own lock is held through commit
-- too), so every feeding transaction on every node committed one at a time.
--
-- Now a writer only inserts its rows (`seq` NULL). One sequencer at a time, in whichever
-- server process holds its lock (control/feed_sequencer.py), positions rows that are already
-- committed, in batches: one batch is one transaction, and it is the only thing that takes the
-- lock below. What a reader is promised is unchanged: a row is readable (and announced) only
-- once positioned; every position a batch hands out is above every position handed out before
-- (batches are serial, and the next one sees the last one's commit); and a row is positioned
-- only once committed. So a row that commits late (a transaction that started first and
-- committed last) is positioned after every row anyone has seen, and whoever has seen
-- position N has seen every position below it: resuming after N misses nothing.
--
-- Rows committed before this migration keep their positions (they were given them at commit,
-- and this migration waits for every transaction that is inserting feed rows), and the
-- sequence goes on from where it was.

DROP TRIGGER feed_events_publish ON feed_events;
DROP FUNCTION feed_events_publish();

-- The sequencer's queue: committed rows without a position (and, unseen by it, uncommitted ones).
CREATE INDEX feed_events_unpositioned_idx ON feed_events (id) WHERE seq IS NULL;

-- One batch: positions up to `max_rows` committed rows, oldest insert first (so one
-- transaction's rows keep their order), and announces each with the same notification as
-- before. Returns how many it positioned, or NULL when another sequencer's batch is running.
-- Runs as the owner: positioning crosses every org.
CREATE FUNCTION feed_events_sequence(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    ids bigint[];
    first_seq bigint;
    row record;
BEGIN
    -- Held until this batch has committed (a lock is released after the commit is visible),
    -- so the next batch sees this one's positions and gives out only higher ones. Only a
    -- batch takes it: a writer never waits on it.
    IF NOT pg_try_advisory_xact_lock(hashtext('voxsouth.feed_events.seq')) THEN
        RETURN NULL;
    END IF;
    -- This statement's snapshot sees committed rows only: a row still being written is left
    -- for a later batch, which positions it above everything positioned here.
    SELECT array_agg(id ORDER BY id) INTO ids
    FROM (SELECT id FROM feed_events WHERE seq IS NULL ORDER BY id LIMIT max_rows) AS pending;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    -- Reserve a block of positions: only a batch, under the lock, takes from this sequence.
    first_seq := nextval('feed_events_seq_seq');
    PERFORM setval('feed_events_seq_seq', first_seq + cardinality(ids) - 1);
    UPDATE feed_events f SET seq = first_seq + p.at - 1
    FROM unnest(ids) WITH ORDINALITY AS p(id, at)
    WHERE f.id = p.id;
    -- Delivered at this batch's commit, in position order (a row deleted meanwhile, by the
    -- retention sweep, leaves a gap: positions need not be dense).
    FOR row IN
        SELECT seq, org_id, call_id, type, event_id FROM feed_events
        WHERE seq BETWEEN first_seq AND first_seq + cardinality(ids) - 1 ORDER BY seq
    LOOP
        PERFORM pg_notify('voxsouth_events', json_strip_nulls(json_build_object(
            'id', row.seq, 'org_id', row.org_id, 'call_id', row.call_id, 'type', row.type,
            'event_id', row.event_id))::text);
    END LOOP;
    RETURN cardinality(ids);
END $$;

-- Only the server's own role (the owner, which runs migrations and the sequencer) positions.
REVOKE EXECUTE ON FUNCTION feed_events_sequence(integer) FROM PUBLIC;
