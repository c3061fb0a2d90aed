-- Secret shopper: a script of moments a call should (or must not) have, and each call's score
-- against it, from its transcript (control.shopper).

CREATE TABLE shopper_scripts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- [{"name", "kind": "expected"|"forbidden", "phrases": [...], "speaker", "weight"}]
    moments     jsonb NOT NULL CHECK (jsonb_typeof(moments) = 'array'),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shopper_scores (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    script_id     uuid NOT NULL REFERENCES shopper_scripts (id) ON DELETE CASCADE,
    call_id       uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    -- The line tested: the number the shopper called (or, for a call to us, called from).
    agent_number  text NOT NULL,
    score         real NOT NULL CHECK (score BETWEEN 0 AND 100),
    -- Per moment: met or not, where in the call, and the words that matched.
    moments       jsonb NOT NULL,
    call_started  timestamptz NOT NULL,
    scored_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (script_id, call_id)
);
CREATE INDEX shopper_scores_trend_idx ON shopper_scores (script_id, agent_number, call_started);

GRANT SELECT, INSERT, UPDATE, DELETE ON shopper_scripts, shopper_scores TO voxsouth_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['shopper_scripts', 'shopper_scores']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
