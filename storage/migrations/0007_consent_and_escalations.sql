-- Recording consent (jurisdiction, evidence), escalation rules and raised escalations,
-- recordings, and the supervisors' feed.

-- Where a call's parties are outside the maintained table of US states, the org decides.
ALTER TABLE organizations
    ADD COLUMN consent_default text NOT NULL DEFAULT 'all_party'
        CHECK (consent_default IN ('one_party', 'all_party')),
    -- How the caller is asked: a spoken answer after the disclosure, or a keypad <Gather>.
    ADD COLUMN consent_mode text NOT NULL DEFAULT 'speech'
        CHECK (consent_mode IN ('speech', 'keypad')),
    -- The default escalation rules are added once, the first time the org needs its rules;
    -- an org that deletes them all keeps none.
    ADD COLUMN rules_seeded boolean NOT NULL DEFAULT false;
GRANT UPDATE (consent_default, consent_mode, rules_seeded) ON organizations TO voxsouth_app;

ALTER TABLE calls
    -- Decided from both parties' numbers when the call opens.
    ADD COLUMN consent_rule text CHECK (consent_rule IN ('one_party', 'all_party')),
    ADD COLUMN consent_rule_reason text,
    ADD COLUMN consent_decided_at timestamptz,
    ADD COLUMN recording_state text NOT NULL DEFAULT 'none'
        CHECK (recording_state IN ('none', 'starting', 'recording', 'stopping', 'stopped')),
    ADD COLUMN recording_sid text;

-- Evidence for a call's consent verdict: the disclosure (played by LaML or spoken by the
-- agent), the other party's answer (speech or keypad), and agents' manual verifications.
CREATE TABLE consent_events (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('disclosure', 'answer', 'manual')),
    detector     text NOT NULL,
    verdict      text CHECK (verdict IN ('granted', 'refused')),
    track        text CHECK (track IN ('inbound', 'outbound')),
    offset_ms    integer CHECK (offset_ms >= 0),
    evidence     text NOT NULL,
    segment_id   uuid,
    actor        text,
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_call_idx ON consent_events (call_id, occurred_at);

CREATE TABLE escalation_rules (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    kind         text NOT NULL CHECK (kind IN ('phrase', 'keypad', 'raised_voice', 'dead_air',
                                               'talk_over', 'sentiment', 'composite')),
    severity     text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    cooldown_s   integer NOT NULL CHECK (cooldown_s BETWEEN 0 AND 86400),
    params       jsonb NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE escalations (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id           uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    rule_id           uuid REFERENCES escalation_rules (id) ON DELETE SET NULL,
    rule_name         text NOT NULL,
    kind              text NOT NULL,
    severity          text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    track             text CHECK (track IN ('inbound', 'outbound')),
    start_ms          integer NOT NULL CHECK (start_ms >= 0),
    end_ms            integer NOT NULL CHECK (end_ms >= start_ms),
    evidence          text NOT NULL,
    segment_id        uuid,
    raised_at         timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'acknowledged', 'resolved')),
    assigned_to       uuid REFERENCES users (id) ON DELETE SET NULL,
    acknowledged_by   text,
    acknowledged_at   timestamptz,
    resolved_by       text,
    resolved_at       timestamptz,
    resolution_notes  text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalations_org_raised_idx ON escalations (org_id, raised_at DESC);
CREATE INDEX escalations_call_idx ON escalations (call_id, raised_at);

CREATE TABLE recordings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id         uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    recording_sid   text NOT NULL UNIQUE,
    status          text NOT NULL,
    url             text,
    duration_s      integer,
    channels        integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_call_idx ON recordings (call_id);

-- What supervisors' live feeds show, in order. Written in the same transaction as the change
-- it describes; NOTIFY carries only (org, id), so payloads stay far under NOTIFY's limit and
-- a reconnecting client is served what it missed from here.
CREATE TABLE feed_events (
    id           bigserial PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id      uuid,
    -- The media event it came from: a replayed event is announced once.
    event_id     uuid UNIQUE,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feed_events_org_idx ON feed_events (org_id, id);

GRANT SELECT, INSERT ON consent_events, escalations, feed_events TO voxsouth_app;
GRANT UPDATE ON escalations TO voxsouth_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON escalation_rules, recordings TO voxsouth_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO voxsouth_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['consent_events', 'escalation_rules', 'escalations', 'recordings',
                             'feed_events']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
