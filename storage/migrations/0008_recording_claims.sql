-- When a process claimed the start of a call's recording. A claim older than any start can
-- take belongs to a process that died mid-start: the recording controller releases it, so the
-- call is not left unrecorded for good (storage.recordings.release_stale_starts).

ALTER TABLE calls ADD COLUMN recording_claimed_at timestamptz;
CREATE INDEX calls_recording_starting_idx ON calls (recording_claimed_at)
    WHERE recording_state = 'starting';
