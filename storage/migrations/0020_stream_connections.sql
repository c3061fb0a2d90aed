-- A call's record through reconnects (issue 12). The same stream (its streamSid) may reconnect
-- with its chunks going on: each connection keeps its own row, numbered from 1, so the first
-- connection's end and frame counts are not overwritten. A stream's statusCallback describes
-- the stream as SignalWire sees it and lands on its first connection's row.
--
-- offset_ms: where the stream's audio begins on the call's clock. A later stream of a call (a
--   new streamSid after a drop) counts its media timestamps from its own start; its segments,
--   digits and alerts are stored on the call's clock, and this says where it came in.
ALTER TABLE media_streams ADD COLUMN connection integer NOT NULL DEFAULT 1
    CHECK (connection >= 1);
ALTER TABLE media_streams ADD COLUMN offset_ms integer NOT NULL DEFAULT 0 CHECK (offset_ms >= 0);
ALTER TABLE media_streams DROP CONSTRAINT media_streams_stream_sid_key;
ALTER TABLE media_streams ADD CONSTRAINT media_streams_stream_connection_key
    UNIQUE (stream_sid, connection);
