-- A process owns what it opens (issue 12, crashes). Each server process registers here at start
-- and renews its lease every few seconds (control/process_lease.py); the media streams it opens
-- carry its id. A stream still `streaming` whose owner holds no live lease was left by a process
-- that died (kill -9, a lost host): whichever live process sweeps first closes it
-- (storage/processes.py). Lease times are Postgres's own now(), so hosts' clocks need not agree.
--
-- Not org data: no org_id, hence no row-level security, and no grant to voxsouth_app (only a
-- process's own connection, outside any tenant, reads or writes it).
CREATE TABLE server_processes (
    id            uuid PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

-- No foreign key: a registration is deleted at a clean shutdown, or by the sweep once nothing
-- of it is open, and a stream whose owner has no live registration is what the sweep looks for.
-- NULL for rows written before this migration and rows only a stream status callback made.
ALTER TABLE media_streams ADD COLUMN owner_id uuid;
CREATE INDEX media_streams_open_owner_idx ON media_streams (owner_id) WHERE status = 'streaming';
CREATE INDEX media_streams_process_lost_idx ON media_streams (call_id)
    WHERE end_reason = 'process_lost';

-- `unknown`: the call's streams died with their process and its final status callback never
-- came; a terminal status arriving later still replaces it (storage.calls.apply_call_status).
ALTER TABLE calls DROP CONSTRAINT calls_status_check;
ALTER TABLE calls ADD CONSTRAINT calls_status_check CHECK (status IN (
    'queued', 'initiated', 'ringing', 'in-progress',
    'completed', 'busy', 'failed', 'no-answer', 'canceled', 'unknown'));
