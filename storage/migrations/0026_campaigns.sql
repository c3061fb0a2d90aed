-- Outbound campaigns: a call flow, limits, and the targets it calls, each with its own state.
-- The dialler (control.dialler) keeps its state here, so any number of processes share the
-- work through row claims and a process that dies loses nothing (storage.campaigns).

CREATE TABLE campaigns (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status            text NOT NULL DEFAULT 'draft'
                          CHECK (status IN ('draft', 'running', 'paused', 'cancelled', 'completed')),
    -- What a call that is answered hears: {"say": text} | {"play": url} | {"connect": E.164}.
    flow              jsonb NOT NULL CHECK (jsonb_typeof(flow) = 'object'),
    from_number       text NOT NULL CHECK (from_number ~ '^\+[1-9][0-9]{6,14}$'),
    max_concurrent    integer NOT NULL DEFAULT 5 CHECK (max_concurrent BETWEEN 1 AND 500),
    window_start      time NOT NULL DEFAULT '08:00',
    window_end        time NOT NULL DEFAULT '21:00',
    window_days       integer[] NOT NULL DEFAULT '{0,1,2,3,4,5,6}'
                          CHECK (window_days <@ '{0,1,2,3,4,5,6}' AND cardinality(window_days) > 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 10),
    -- Seconds before calling again after each outcome (the wait doubles with each retry).
    retry_s           jsonb NOT NULL DEFAULT '{"busy": 300, "no-answer": 900, "failed": 1800}',
    -- On an answering machine: hang up, or play the flow as a message.
    on_machine        text NOT NULL DEFAULT 'hangup' CHECK (on_machine IN ('hangup', 'message')),
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    CHECK (window_start < window_end)
);
CREATE INDEX campaigns_org_created_idx ON campaigns (org_id, created_at DESC, id DESC);
CREATE INDEX campaigns_running_idx ON campaigns (id) WHERE status = 'running';

CREATE TABLE campaign_targets (
    campaign_id   uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- Copied when enrolled: a target changed or removed later does not change who is called.
    number        text NOT NULL,
    time_zone     text NOT NULL,
    target_id     uuid REFERENCES voice_targets (id) ON DELETE SET NULL,
    state         text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'dialing', 'in_call', 'done', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    -- The attempt in flight: its id goes into the call's webhook URLs, so SignalWire's
    -- callbacks name it even if the process that placed the call died before it heard back.
    attempt_id    uuid UNIQUE,
    claimed_by    uuid,
    claimed_at    timestamptz,
    call_id       uuid REFERENCES calls (id) ON DELETE SET NULL,
    -- SignalWire's answering-machine detection, from the answered call's voice webhook.
    answered_by   text,
    outcome       text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, number)
);
CREATE INDEX campaign_targets_due_idx ON campaign_targets (campaign_id, next_at)
    WHERE state = 'pending';
CREATE INDEX campaign_targets_active_idx ON campaign_targets (campaign_id)
    WHERE state IN ('dialing', 'in_call');

-- Calls all of an org's campaigns may have in flight at once.
ALTER TABLE organizations ADD COLUMN campaign_max_concurrent integer NOT NULL DEFAULT 20
    CHECK (campaign_max_concurrent BETWEEN 1 AND 1000);

-- The project's calls-per-second budget, shared by every process: each call takes the next
-- slot (storage.campaigns.take_slot).
CREATE TABLE dialler_pacing (
    key        text PRIMARY KEY,
    next_slot  timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON campaigns, campaign_targets TO voxsouth_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['campaigns', 'campaign_targets']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
