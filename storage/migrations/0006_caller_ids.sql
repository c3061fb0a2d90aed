-- Numbers an org may show as caller ID without owning them on SignalWire, once SignalWire has
-- verified them (it calls the number and reads a code the org submits back).
CREATE TABLE caller_ids (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number         text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    name           text,
    signalwire_id  text NOT NULL,
    verified_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, number)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON caller_ids TO voxsouth_app;
ALTER TABLE caller_ids ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON caller_ids FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());
