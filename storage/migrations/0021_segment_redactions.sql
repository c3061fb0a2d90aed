-- What was redacted from each segment's text (media.redaction): the kind of each span replaced,
-- e.g. {card,phone}, never what it was. A call's counts by kind are summed from these, so a
-- replayed segment (ON CONFLICT DO NOTHING) cannot count twice.
ALTER TABLE transcript_segments ADD COLUMN redacted text[] NOT NULL DEFAULT '{}';
