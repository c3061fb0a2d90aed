-- Numbers an org calls (campaigns, bookings, surveys), and the numbers it must never call.

CREATE TABLE voice_targets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number          text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    name            text CHECK (length(name) BETWEEN 1 AND 200),
    -- IANA name; `time_zone_set` says a person chose it (else it was inferred from the number).
    time_zone       text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    time_zone_set   boolean NOT NULL,
    tags            text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 50),
    fields          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, number)
);
CREATE INDEX voice_targets_org_created_idx ON voice_targets (org_id, created_at DESC, id DESC);
CREATE INDEX voice_targets_tags_idx ON voice_targets USING gin (tags);

-- Checked by every outbound path (the API's calls, campaigns, bookings).
CREATE TABLE do_not_call (
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number      text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    reason      text CHECK (length(reason) <= 500),
    added_by    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, number)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON voice_targets, do_not_call TO voxsouth_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['voice_targets', 'do_not_call']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
