-- A node lost mid-call (issue 18). When a process dies with live calls, a surviving process
-- starts a new media stream for each call still in progress at SignalWire (Streams REST), so
-- the call is heard again (control/restream.py). The bookkeeping of those restarts, per call:
--
-- restream_lost_at: the loss the attempts below are for (the stopped_at of the call's last
--   stream, closed as process_lost). A later loss (the restarted stream lost in turn) starts
--   the count afresh.
-- restream_attempts: Streams requests made for that loss.
-- restream_next_at: not claimed again before this. A claim holds the call while its request is
--   under way and its stream lands; a failure sets when to try again; 'infinity' gives up on
--   the loss (the reconcile and `unknown` timeout rules then take the call as before). The
--   claim takes the row lock with SKIP LOCKED, so any number of processes share the work and
--   each call is asked for by one at a time.
ALTER TABLE calls ADD COLUMN restream_lost_at timestamptz;
ALTER TABLE calls ADD COLUMN restream_attempts integer NOT NULL DEFAULT 0
    CHECK (restream_attempts >= 0);
ALTER TABLE calls ADD COLUMN restream_next_at timestamptz;

-- restarted_after: why the control plane started this stream itself, mid-call, where NULL is
-- a stream the call's LaML started. 'process_lost': the process carrying the call died. It
-- comes with the stream's `start` (a parameter the restart gave), which the media plane checks
-- is a short word (media.session), so no constraint here can refuse a batch of events.
ALTER TABLE media_streams ADD COLUMN restarted_after text;
