-- Audio a call can play (`<Play>`): files people upload and prompts a voice renders, converted
-- to 8 kHz mu-law WAV (control.audio_convert) and kept here, so whichever node SignalWire asks
-- serves them. A voice's render is found again by `render_key` (a hash of engine, voice and
-- text): each prompt is rendered once per org.
CREATE TABLE audio_clips (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    source         text NOT NULL CHECK (source IN ('upload', 'voice')),
    name           text NOT NULL,
    uploaded_type  text CHECK (uploaded_type IN ('wav', 'mp3', 'ogg', 'm4a')),
    engine         text,
    voice          text,
    text           text,
    render_key     text,
    duration_ms    integer NOT NULL CHECK (duration_ms >= 0),
    size_bytes     integer NOT NULL CHECK (size_bytes > 0),
    sha256         text NOT NULL,
    wav            bytea NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, render_key),
    CHECK ((source = 'upload') = (uploaded_type IS NOT NULL)),
    CHECK ((source = 'voice') = (render_key IS NOT NULL AND engine IS NOT NULL))
);
CREATE INDEX audio_clips_org_idx ON audio_clips (org_id, created_at DESC, id DESC);

-- The voice that says the org's prompts: SignalWire's own `<Say>`, or a rendering engine.
ALTER TABLE organizations
    ADD COLUMN voice_engine text NOT NULL DEFAULT 'say'
        CHECK (voice_engine IN ('say', 'elevenlabs', 'piper')),
    ADD COLUMN voice_name text CHECK (voice_name IS NULL OR length(voice_name) <= 100);
GRANT UPDATE (voice_engine, voice_name) ON organizations TO voxsouth_app;

GRANT SELECT, INSERT, DELETE ON audio_clips TO voxsouth_app;
ALTER TABLE audio_clips ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON audio_clips FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());
