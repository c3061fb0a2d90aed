-- Phone surveys: questions played to a caller (inbound on a number, or outbound from a
-- campaign) and answered by keypad or speech, one answer per question per call.

CREATE TABLE surveys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- [{"kind": "yes_no"|"rating"|"choice"|"speech", "prompt": text, "choices": {digit: label}}]
    questions   jsonb NOT NULL CHECK (jsonb_typeof(questions) = 'array'),
    closing     text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX surveys_org_created_idx ON surveys (org_id, created_at DESC);

CREATE TABLE survey_answers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    survey_id    uuid NOT NULL REFERENCES surveys (id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    question     integer NOT NULL CHECK (question >= 0),
    -- What the answer means for the question's kind ("yes", "4", "2", the words), or NULL
    -- when it could not be read; what was pressed or said, as heard (speech redacted).
    value        text,
    digits       text,
    speech       text,
    confidence   real,
    answered_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, survey_id, question)
);
CREATE INDEX survey_answers_survey_idx ON survey_answers (survey_id, question);

-- Inbound calls to a number with a survey take the survey after the disclosure.
ALTER TABLE phone_numbers ADD COLUMN survey_id uuid REFERENCES surveys (id) ON DELETE SET NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON surveys, survey_answers TO voxsouth_app;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['surveys', 'survey_answers']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant ON %I FOR ALL TO voxsouth_app '
            'USING (org_id = current_org()) WITH CHECK (org_id = current_org())', t);
    END LOOP;
END $$;
