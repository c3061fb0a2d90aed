-- Email goes out from a durable outbox (control.email): a request or a call only queues a
-- message, so an unreachable mail server never holds either up, and nothing queued is lost.

CREATE TABLE email_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       uuid REFERENCES organizations (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    to_address   text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 320),
    subject      text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
    body         text NOT NULL,
    -- One message per key (a booking's reminder, say), so a repeated request queues it once.
    dedupe_key   text UNIQUE,
    status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_at) WHERE status = 'pending';
CREATE INDEX email_outbox_org_idx ON email_outbox (org_id, id DESC);

GRANT SELECT, INSERT, UPDATE ON email_outbox TO voxsouth_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO voxsouth_app;
ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON email_outbox FOR ALL TO voxsouth_app
    USING (org_id = current_org()) WITH CHECK (org_id = current_org());

-- A booking's reminder, by email, some minutes before its call.
ALTER TABLE campaigns ADD COLUMN remind_email text, ADD COLUMN remind_before_min integer
    CHECK (remind_before_min BETWEEN 5 AND 10080);
