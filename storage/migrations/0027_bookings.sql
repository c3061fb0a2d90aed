-- A booking (a callback at a time the caller asked for) is a campaign of one target whose
-- first attempt is due at that time: the dialler places it as any other (storage.bookings).
ALTER TABLE campaigns ADD COLUMN kind text NOT NULL DEFAULT 'campaign'
    CHECK (kind IN ('campaign', 'booking'));
CREATE INDEX campaigns_org_kind_created_idx ON campaigns (org_id, kind, created_at DESC, id DESC);

-- The dialler finds what is due from the due targets, not by visiting every running campaign:
-- bookings make many campaigns that wait for days.
CREATE INDEX campaign_targets_pending_next_idx ON campaign_targets (next_at)
    WHERE state = 'pending';
