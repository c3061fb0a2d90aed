-- Who hears of a rule's escalations by email: the addresses on the rule. An escalation stored
-- queues one message per address in the same transaction (the email outbox, migration 0031).
ALTER TABLE escalation_rules ADD COLUMN notify text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(notify) <= 20);

CREATE FUNCTION escalation_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO email_outbox (org_id, kind, to_address, subject, body, dedupe_key)
    SELECT NEW.org_id, 'escalation', address,
           format('[%s] %s on a call', upper(NEW.severity), NEW.rule_name),
           format(E'An escalation was raised on a call: %s (%s severity).\n\n'
                  'What was heard: %s\n\nCall %s, %s s in.\n',
                  NEW.rule_name, NEW.severity, NEW.evidence, NEW.call_id, NEW.start_ms / 1000),
           format('escalation:%s:%s', NEW.id, address)
    FROM escalation_rules r, unnest(r.notify) AS address
    WHERE r.id = NEW.rule_id
    ON CONFLICT (dedupe_key) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER escalation_notify AFTER INSERT ON escalations
    FOR EACH ROW EXECUTE FUNCTION escalation_notify();
