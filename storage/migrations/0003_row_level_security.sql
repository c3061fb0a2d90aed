-- Tenant isolation, enforced a second time by Postgres.
-- Tenant-scoped work runs as the non-superuser role voxsouth_app with the org set per
-- transaction (storage/tenancy.py: SET LOCAL ROLE + set_config('voxsouth.org_id')). Every org
-- table lets that role see and write only rows of that org; with no org set it sees nothing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voxsouth_app') THEN
        CREATE ROLE voxsouth_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
-- The connecting user must be able to SET ROLE to it.
GRANT voxsouth_app TO CURRENT_USER;

CREATE FUNCTION current_org() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('voxsouth.org_id', true), '')::uuid
$$;

GRANT USAGE ON SCHEMA public TO voxsouth_app;
GRANT SELECT ON organizations TO voxsouth_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON phone_numbers, calls, media_streams, transcript_segments, dtmf_events, memberships,
       sessions, api_keys
    TO voxsouth_app;
-- The audit trail can be added to and read, never changed: no UPDATE or DELETE grant.
GRANT SELECT, INSERT ON audit_log TO voxsouth_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO voxsouth_app;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON organizations FOR ALL TO voxsouth_app
    USING (id = current_org()) WITH CHECK (id = current_org());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['phone_numbers', 'calls', 'media_streams', 'transcript_segments',
                             'dtmf_events', 'memberships', 'sessions', 'api_keys', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
