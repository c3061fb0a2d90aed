-- A track whose cloud transcription failed mid-stream goes on with the offline engine; the
-- stream's record says so, per track, with the service's error.
ALTER TABLE media_streams
    ADD COLUMN transcription_error_inbound text,
    ADD COLUMN transcription_error_outbound text;
