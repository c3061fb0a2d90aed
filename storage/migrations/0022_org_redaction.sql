-- What an org redacts from its calls' words before they are stored or shown (media.redaction):
-- every kind unless its admin chose otherwise.
ALTER TABLE organizations ADD COLUMN redact_kinds text[] NOT NULL
    DEFAULT '{card,ssn,account,cvv,expiry,dob,phone,email}'
    CHECK (redact_kinds <@ '{card,ssn,account,cvv,expiry,dob,phone,email}'::text[]);
GRANT UPDATE (redact_kinds) ON organizations TO voxsouth_app;
