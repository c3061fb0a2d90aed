-- Calls a stopping process could not carry to their end (its drain ran out, or it had none:
-- their streams closed as 'server_shutdown') are streamed again by the processes that remain,
-- as calls a lost process left are (control/restream.py, storage/restreams.py). The claim's
-- query finds such calls by this index; its predicate is the query's, word for word.
CREATE INDEX media_streams_unheard_idx ON media_streams (call_id)
    WHERE end_reason IN ('process_lost', 'server_shutdown');
