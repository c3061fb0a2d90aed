-- Team invitations: single-use, expiring; only a hash of the token is stored.
CREATE TABLE invitations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email        text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'analyst', 'viewer')),
    token_hash   bytea NOT NULL UNIQUE,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz
);
CREATE INDEX invitations_org_idx ON invitations (org_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO voxsouth_app;
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON invitations FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());

-- Tenants see the people in their own org: id and email only, never password hashes.
GRANT SELECT (id, email, created_at) ON users TO voxsouth_app;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_members ON users FOR SELECT TO voxsouth_app
    USING (EXISTS (SELECT 1 FROM memberships m
                   WHERE m.user_id = users.id AND m.org_id = current_org()));
