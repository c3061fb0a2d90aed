-- Asking SignalWire about a call left open by a lost process (issue 12, crashes). A call whose
-- streams died with their process and whose final status callback has not come is looked up
-- with the REST Call resource where credentials exist (control/call_reconcile.py).
--
-- remote_checked_at: when a sweeper last claimed the call to ask SignalWire (whatever the
--   answer). The claim takes the row lock, so two processes never ask at once, and calls are
--   asked oldest-asked first, so a backlog is worked through in turn.
-- remote_live_at: when SignalWire last said the call is still live (only its stream was lost).
--   The `unknown` timeout counts from this as well as from the loss (storage.processes).
ALTER TABLE calls ADD COLUMN remote_checked_at timestamptz;
ALTER TABLE calls ADD COLUMN remote_live_at timestamptz;
