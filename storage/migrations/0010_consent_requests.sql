-- Consent is an answer to a request (media/detectors/consent.py). An org's mode chooses the
-- prompt the platform plays: 'speech', a <Say> notice (the agent asks, if anyone does);
-- 'ask', a <Gather input="dtmf speech"> that asks, answered by voice or keypad; 'keypad', a
-- <Gather input="dtmf"> that asks for 1 or 2.
ALTER TABLE organizations DROP CONSTRAINT organizations_consent_mode_check;
ALTER TABLE organizations
    ADD CONSTRAINT organizations_consent_mode_check
        CHECK (consent_mode IN ('speech', 'ask', 'keypad')),
    -- A notice implies consent, where the call's jurisdiction allows it (one-party calls).
    ADD COLUMN consent_implied_by_notice boolean NOT NULL DEFAULT false;
GRANT UPDATE (consent_implied_by_notice) ON organizations TO voxsouth_app;
