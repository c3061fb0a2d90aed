-- Secure mode (payments). While a call's secure_mode is on, its recording is paused at
-- SignalWire (or stopped, if the pause fails), its caller's words are not transcribed (or are
-- wholly redacted, as the org chose) and keypad digits are stored without the digit.
ALTER TABLE calls ADD COLUMN secure_mode boolean NOT NULL DEFAULT false;

-- A paused recording, and the claims that pause and resume it (storage.recordings).
ALTER TABLE calls DROP CONSTRAINT calls_recording_state_check;
ALTER TABLE calls ADD CONSTRAINT calls_recording_state_check CHECK (recording_state IN (
    'none', 'starting', 'recording', 'pausing', 'paused', 'resuming', 'stopping', 'stopped'));

-- How the org's recordings are paused (SignalWire's PauseBehavior: the paused time left out,
-- or kept as silence), and what secure mode does to the caller's words.
ALTER TABLE organizations
    ADD COLUMN secure_pause_behavior text NOT NULL DEFAULT 'skip'
        CHECK (secure_pause_behavior IN ('skip', 'silence')),
    ADD COLUMN secure_caller_words text NOT NULL DEFAULT 'suspend'
        CHECK (secure_caller_words IN ('suspend', 'redact'));
GRANT UPDATE (secure_pause_behavior, secure_caller_words) ON organizations TO voxsouth_app;

-- A digit pressed in secure mode is stored as a press (when, which track), never as the digit.
ALTER TABLE dtmf_events ALTER COLUMN digit DROP NOT NULL;
