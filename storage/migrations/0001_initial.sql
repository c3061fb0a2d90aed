-- Organizations, their phone numbers, calls, media streams and transcript segments.
-- Every table holding org data carries org_id.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which org a called number belongs to, and where its calls are sent.
CREATE TABLE phone_numbers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number       text NOT NULL UNIQUE CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    dial_target  text CHECK (dial_target IS NULL OR dial_target ~ '^\+[1-9][0-9]{6,14}$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_org_idx ON phone_numbers (org_id);

CREATE TABLE calls (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_sid             text NOT NULL UNIQUE,
    account_sid          text,
    direction            text NOT NULL,
    from_number          text NOT NULL,
    to_number            text NOT NULL,
    status               text NOT NULL DEFAULT 'queued' CHECK (status IN (
                             'queued', 'initiated', 'ringing', 'in-progress',
                             'completed', 'busy', 'failed', 'no-answer', 'canceled')),
    -- Highest SequenceNumber of a status callback applied; older ones are ignored.
    status_sequence      integer,
    started_at           timestamptz NOT NULL DEFAULT now(),
    answered_at          timestamptz,
    ended_at             timestamptz,
    duration_seconds     integer,
    disposition          text,
    disposition_notes    text,
    recording_consent    boolean,
    consent_verified_by  text,
    escalated            boolean NOT NULL DEFAULT false,
    escalation_time      timestamptz,
    audio_lost_ms        bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_org_started_idx ON calls (org_id, started_at DESC);

CREATE TABLE media_streams (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id                   uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    stream_sid                text NOT NULL UNIQUE,
    name                      text,
    status                    text NOT NULL DEFAULT 'streaming',
    codec                     text,
    sample_rate               integer,
    tracks                    text[] NOT NULL DEFAULT '{}',
    frames_received_inbound   bigint NOT NULL DEFAULT 0,
    frames_received_outbound  bigint NOT NULL DEFAULT 0,
    frames_lost_inbound       bigint NOT NULL DEFAULT 0,
    frames_lost_outbound      bigint NOT NULL DEFAULT 0,
    audio_lost_ms             bigint NOT NULL DEFAULT 0,
    messages_lost             bigint NOT NULL DEFAULT 0,
    end_reason                text,
    error                     text,
    started_at                timestamptz,
    stopped_at                timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_streams_call_idx ON media_streams (call_id);

CREATE TABLE transcript_segments (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id     uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    stream_sid  text NOT NULL,
    track       text NOT NULL CHECK (track IN ('inbound', 'outbound')),
    speaker     text NOT NULL CHECK (speaker IN ('caller', 'agent')),
    start_ms    integer NOT NULL CHECK (start_ms >= 0),
    end_ms      integer NOT NULL CHECK (end_ms >= start_ms),
    text        text NOT NULL,
    confidence  real,
    is_final    boolean NOT NULL,
    engine      text NOT NULL,
    spoken_at   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transcript_segments_call_idx ON transcript_segments (call_id, start_ms);

-- Keypad digits received on a media stream.
CREATE TABLE dtmf_events (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    stream_sid   text NOT NULL,
    track        text NOT NULL CHECK (track IN ('inbound', 'outbound')),
    digit        text NOT NULL CHECK (digit ~ '^[0-9*#A-D]$'),
    offset_ms    integer NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX dtmf_events_call_idx ON dtmf_events (call_id, offset_ms);
