-- Word timings of a final segment where the engine gives them (the cloud engines): JSON
-- [{"text", "start_ms", "end_ms", "confidence"}], on the call's clock. NULL when not given.
ALTER TABLE transcript_segments ADD COLUMN words jsonb;
