-- Utterances never transcribed for want of time (a full transcription queue, stream end):
-- words the call's record does not have, counted per stream and per call like lost audio.
ALTER TABLE media_streams ADD COLUMN utterances_skipped integer NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN utterances_skipped integer NOT NULL DEFAULT 0;
