-- How long an org keeps each kind of call data (days; NULL keeps it), enforced by the retention
-- sweeper (control.retention), and erasure on request (storage.retention.erase_calls). No row:
-- everything is kept. The audit log may be kept longer than the rest, never shorter.
CREATE TABLE retention_policies (
    org_id            uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    transcripts_days  integer CHECK (transcripts_days BETWEEN 1 AND 36500),
    recordings_days   integer CHECK (recordings_days BETWEEN 1 AND 36500),
    dtmf_days         integer CHECK (dtmf_days BETWEEN 1 AND 36500),
    escalations_days  integer CHECK (escalations_days BETWEEN 1 AND 36500),
    feed_days         integer CHECK (feed_days BETWEEN 1 AND 36500),
    audit_days        integer CHECK (audit_days BETWEEN 1 AND 36500),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (audit_days IS NULL OR audit_days >= GREATEST(
        transcripts_days, recordings_days, dtmf_days, escalations_days, feed_days))
);
GRANT SELECT, INSERT, UPDATE ON retention_policies TO voxsouth_app;
ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON retention_policies FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());

-- The sweeper finds an org's oldest rows of each kind through these.
CREATE INDEX transcript_segments_org_created_idx ON transcript_segments (org_id, created_at);
CREATE INDEX dtmf_events_org_received_idx ON dtmf_events (org_id, received_at);
CREATE INDEX feed_events_org_created_idx ON feed_events (org_id, created_at);
CREATE INDEX recordings_org_created_idx ON recordings (org_id, created_at);

-- The audit log stays append-only for everyone but the retention sweeper, which removes an
-- org's entries past its audit retention inside a transaction that says so (the tenant role
-- has no DELETE grant at all).
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('voxsouth.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
