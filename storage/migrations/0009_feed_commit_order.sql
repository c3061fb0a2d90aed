-- Feed positions in commit order. A row's `id` is taken when it is inserted, so a transaction
-- that inserts first and commits last publishes a lower id after a higher one: a supervisor who
-- had seen the higher one (and so resumes after it, or skipped lower ones as already sent)
-- never got that row. `seq` is taken at commit instead, under a lock that lets one feeding
-- transaction commit at a time: whoever has seen position N has seen every row committed before
-- it. The feed and its announcements use `seq`.

ALTER TABLE feed_events ADD COLUMN seq bigint UNIQUE;
UPDATE feed_events SET seq = id;
CREATE SEQUENCE feed_events_seq_seq OWNED BY feed_events.seq;
SELECT setval('feed_events_seq_seq', COALESCE((SELECT max(id) FROM feed_events), 0) + 1, false);
DROP INDEX feed_events_org_idx;
CREATE INDEX feed_events_org_seq_idx ON feed_events (org_id, seq);

-- Runs at commit, once per inserted row, as the owner (so the tenant role needs no UPDATE).
CREATE FUNCTION feed_events_publish() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    next_seq bigint;
BEGIN
    -- Held until this transaction has committed (a lock is released after the commit is
    -- visible), so the next feeding transaction takes a higher position and commits later.
    PERFORM pg_advisory_xact_lock(hashtext('voxsouth.feed_events.seq'));
    next_seq := nextval('feed_events_seq_seq');
    UPDATE feed_events SET seq = next_seq WHERE id = NEW.id;
    PERFORM pg_notify('voxsouth_events', json_strip_nulls(json_build_object(
        'id', next_seq, 'org_id', NEW.org_id, 'call_id', NEW.call_id, 'type', NEW.type,
        'event_id', NEW.event_id))::text);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER feed_events_publish AFTER INSERT ON feed_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION feed_events_publish();
