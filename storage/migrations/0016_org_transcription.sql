-- An org's choice of what transcribes its calls: the deployment's engine (no row), the offline
-- engine only, or a cloud service, with the org's own key where it brings one. The key is
-- sealed by the server (AES-GCM under its credentials key, the org's id bound in) before it
-- is written: the database alone never holds a usable key, and no API answer carries it.
CREATE TABLE org_transcription (
    org_id          uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    engine          text NOT NULL CHECK (engine IN ('deployment', 'whisper', 'assemblyai', 'deepgram')),
    api_key_sealed  bytea,
    api_key_hint    text CHECK (length(api_key_hint) <= 8),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- A key belongs to the service it was given for.
    CHECK (api_key_sealed IS NULL OR engine IN ('assemblyai', 'deepgram')),
    CHECK ((api_key_sealed IS NULL) = (api_key_hint IS NULL))
);

GRANT SELECT, INSERT, UPDATE, DELETE ON org_transcription TO voxsouth_app;
ALTER TABLE org_transcription ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON org_transcription FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());
