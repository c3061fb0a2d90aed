-- The do-not-call list is read a page at a time, newest first (GET /api/do-not-call): a
-- contact center's list runs to many thousands of numbers, and each page is found by this
-- index rather than by sorting the whole list.
CREATE INDEX do_not_call_recent_idx ON do_not_call (org_id, created_at DESC, number);
