"""media.detectors.intents and the default phrase rules: intents, not strings."""

from __future__ import annotations

import pytest

from media.detectors.intents import find_intent
from media.detectors.rules import DEFAULT_RULES, RuleEngine, validate_params

PHRASE_RULES = {r.name: r.params for r in DEFAULT_RULES if r.kind == "phrase"}


def intents(text: str) -> list[str]:
    return [
        name
        for name, p in PHRASE_RULES.items()
        if find_intent(
            text,
            actions=p["actions"],
            targets=p["targets"],
            outcomes=p["outcomes"],
            phrases=p["phrases"],
        )
    ]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Put me through to whoever runs this department.", "supervisor-request"),
        ("I want to speak to someone above you.", "supervisor-request"),
        ("Can I speak to a manager?", "supervisor-request"),
        ("Can't you just put me through to your supervisor?", "supervisor-request"),
        ("No I want a manager", "supervisor-request"),
        ("Close the whole account down.", "cancellation"),
        ("I want to cancel my subscription today.", "cancellation"),
        ("If this isn't fixed I'll get my lawyer involved.", "legal-threat"),
        ("You'll be hearing from my solicitor.", "legal-threat"),
        ("I want to make a formal complaint.", "complaint"),
        ("I'm reporting you to the better business bureau.", "complaint"),
        ("I want the contract ended today!", "cancellation"),  # the target, then what of it
        ("I want my subscription closed. Not paused, closed.", "cancellation"),
        ("Is there anyone above you who can look at partner airlines?", "supervisor-request"),
        ("Or I'll put it in the hands of my solicitor.", "legal-threat"),
        ("I'm reporting the whole thing to Ofcom.", "complaint"),
        ("Then get me someone who can't, your supervisor!", "supervisor-request"),
        ("Can you escalate this to whoever runs customer relations?", "supervisor-request"),
        # "or" heard as "where": a relative, not a question about policy.
        ("I want my deposit back, where I'll be talking to my lawyer.", "legal-threat"),
    ],
)
def test_requests_threats_and_announcements_in_words_no_list_holds_whole(
    text: str, intent: str
) -> None:
    assert intents(text) == [intent]


@pytest.mark.parametrize(
    "text",
    [
        "My supervisor told me to ring you.",  # reported speech
        "A manager sorted it out last time.",  # a past event
        "There's no need to fetch a manager.",  # negation, four words before
        "I'm not going to cancel, I just want it fixed.",
        "I don't want to complain, I just want it sorted.",
        "What's your cancellation policy?",  # a question about policy
        "How do I make a complaint about a delivery driver?",
        "Cancel the appointment on Tuesday and book Thursday.",  # not an account
        "My lawyer friend said you can't do that.",
        "The other driver's insurer says they'll take it to court.",  # someone else's threat
        "I've got a court date for a parking ticket.",
        "I manage a shop on the high street.",
        "My neighbour said I should sue you, but I'd rather sort it out.",  # reported, then "I"
        "And how would I make a complaint, if it came to it?",
        "I'll ask them to send a letter and how would I make a complaint?",  # mid-sentence
        "My partner wants to cancel her membership.",
        "My account was closed last year.",  # no want: a past event
        "Where would I send a complaint?",
    ],
)
def test_mentions_past_events_negations_and_policy_questions_are_not_escalations(
    text: str,
) -> None:
    assert intents(text) == []


def test_the_evidence_names_the_words_that_matched() -> None:
    found = find_intent(
        "could you transfer me to the person in charge please",
        actions=["transfer me to"],
        targets=["person in charge"],
    )
    assert found is not None and found.evidence == "transfer me to + person in charge"


def test_an_admin_adds_a_family_member_as_data() -> None:
    """Rules are per-org data: a new target makes the same action a request."""
    base = dict(PHRASE_RULES["supervisor-request"])
    text = "Let me speak to the duty officer."
    assert not find_intent(text, actions=base["actions"], targets=base["targets"])
    params = validate_params("phrase", {**base, "targets": [*base["targets"], "duty officer"]})
    rule = next(r for r in DEFAULT_RULES if r.name == "supervisor-request")
    engine = RuleEngine([type(rule)(rule.name, "phrase", "high", 0, params)], ("inbound",))
    [fired] = engine.on_text("inbound", 0, 1_000, text, None)
    assert fired.evidence == "let me speak + duty officer"
