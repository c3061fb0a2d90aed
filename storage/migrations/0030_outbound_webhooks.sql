-- Outbound webhooks: an org's HTTPS endpoints, told of its calls' events. A feed row that
-- announces one of the events an endpoint wants queues a delivery in the same transaction (the
-- trigger below), so nothing announced is lost; control.webhook_delivery sends the queue.

CREATE TABLE webhook_endpoints (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url            text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    events         text[] NOT NULL CHECK (cardinality(events) > 0),
    -- The signing secret, sealed (control.sealed): shown once, when the endpoint is made.
    secret_sealed  bytea NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event         text NOT NULL,
    call_id       uuid,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at    timestamptz,
    last_status   integer,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_call_idx ON webhook_deliveries (endpoint_id, call_id, id)
    WHERE status IN ('pending', 'sending');

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_deliveries TO voxsouth_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;

-- Which feed rows are which webhook events (storage.webhooks.EVENTS names the same ones).
CREATE FUNCTION webhook_event_of(type text, payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE type
        WHEN 'call_started' THEN 'call.started'
        WHEN 'call_status' THEN CASE WHEN payload->>'status' IN
            ('completed', 'busy', 'failed', 'no-answer', 'canceled', 'unknown') THEN 'call.ended' END
        WHEN 'consent' THEN CASE WHEN (payload->>'applied')::boolean
            AND payload->>'verdict' IS NOT NULL THEN 'consent.decided' END
        WHEN 'escalation' THEN 'escalation.raised'
        WHEN 'escalation_updated' THEN CASE payload->>'action'
            WHEN 'escalation.acknowledge' THEN 'escalation.acknowledged'
            WHEN 'escalation.resolve' THEN 'escalation.resolved' END
        WHEN 'survey_completed' THEN 'survey.completed'
        WHEN 'campaign_finished' THEN 'campaign.finished'
    END
$$;

-- Runs as the owner: whoever writes the feed row (the tenant role, the media plane's writer)
-- needs no grant on the queue's other orgs, and sees only its own endpoints anyway.
CREATE FUNCTION webhook_enqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    event text := webhook_event_of(NEW.type, NEW.payload);
BEGIN
    IF event IS NOT NULL THEN
        INSERT INTO webhook_deliveries (org_id, endpoint_id, event, call_id, payload)
        SELECT NEW.org_id, e.id, event, NEW.call_id,
               jsonb_build_object('id', gen_random_uuid(), 'type', event,
                                  'call_id', NEW.call_id, 'occurred_at', NEW.created_at,
                                  'data', NEW.payload)
        FROM webhook_endpoints e
        WHERE e.org_id = NEW.org_id AND e.active AND event = ANY(e.events);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER webhook_enqueue AFTER INSERT ON feed_events
    FOR EACH ROW EXECUTE FUNCTION webhook_enqueue();
