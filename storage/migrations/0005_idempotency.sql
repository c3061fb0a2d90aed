-- Idempotency keys of mutating API requests: the first response is replayed for 24 hours.
CREATE TABLE idempotency_keys (
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        integer,            -- NULL while the first request is still running
    body          jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO voxsouth_app;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON idempotency_keys FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());
