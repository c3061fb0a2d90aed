-- Transcripts translated into the org's chosen language after each call (control.translation),
-- beside the original, with the engine named.
ALTER TABLE organizations ADD COLUMN translate_to text
    CHECK (translate_to IS NULL OR translate_to ~ '^[a-z]{2,3}(-[A-Za-z]{2,4})?$');
GRANT UPDATE (translate_to) ON organizations TO voxsouth_app;

CREATE TABLE segment_translations (
    segment_id  uuid PRIMARY KEY REFERENCES transcript_segments (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id     uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    language    text NOT NULL,
    text        text NOT NULL,
    engine      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segment_translations_call_idx ON segment_translations (call_id);

-- A call is translated once: the claim a process takes (and releases if it fails).
ALTER TABLE calls ADD COLUMN translated_at timestamptz, ADD COLUMN translation_claimed_at
    timestamptz;

GRANT SELECT, INSERT, UPDATE, DELETE ON segment_translations TO voxsouth_app;
ALTER TABLE segment_translations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON segment_translations FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());
