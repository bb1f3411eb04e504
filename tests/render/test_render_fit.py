"""Fitting: optional parts go in one fixed order; mandatory facts never; failure is an error."""

from __future__ import annotations

import pytest

from alertcast.render.fit import FitError, Parts, fit
from alertcast.render.policies import Chars

PARTS = Parts(
    headline="headline words here",
    description="description with a link https://a.example/x and 12.5 more words",
    instruction="instruction",
    hashtags="#tag",
)


def body(p: Parts) -> str:
    words = ["CORE", p.headline, p.description, p.instruction, p.hashtags]
    return " ".join([w for w in words if w] + (["DETAILS"] if p.details else []))


ORDER = [
    ("fits as it is", 200, (), "#tag DETAILS"),
    ("hashtags first", 120, ("hashtags",), "12.5 more words instruction DETAILS"),
    (
        "then the description is shortened, the instruction kept",
        116,
        ("hashtags", "description"),
        "12.5 more w… instruction DETAILS",
    ),
    (
        "a cut never splits a number",
        105,
        ("hashtags", "description"),
        "and… instruction DETAILS",
    ),
    (
        "a cut never splits a url",
        97,
        ("hashtags", "description"),
        "with a link… instruction DETAILS",
    ),
    (
        "a description too short to be useful is dropped before the instruction",
        60,
        ("hashtags", "description"),
        "CORE headline words here instruction DETAILS",
    ),
    (
        "then the instruction, then the headline",
        40,
        ("hashtags", "description", "instruction", "headline"),
        "CORE headline words… DETAILS",
    ),
    (
        "a part too short to be useful is dropped",
        30,
        ("hashtags", "description", "instruction", "headline"),
        "CORE DETAILS",
    ),
    ("details last", 20, ("hashtags", "description", "instruction", "headline", "details"), "CORE"),
]


@pytest.mark.parametrize(("name", "limit", "steps", "tail"), ORDER, ids=[o[0] for o in ORDER])
def test_fixed_order(name: str, limit: int, steps: tuple[str, ...], tail: str) -> None:
    """Each tighter budget gives up the next optional part, and the text fits."""
    fitted = fit(body, PARTS, Chars(limit), prefix="[EXERCISE] ")
    assert fitted.steps == steps
    assert fitted.text.startswith("[EXERCISE] CORE")
    assert fitted.text.endswith(tail)
    assert len(fitted.text) <= limit


def test_mandatory_overflow_is_an_error() -> None:
    """When even the prefix and the core cannot fit, fitting raises, saying by how much."""
    with pytest.raises(FitError, match="need 15 chars, the limit is 9"):
        fit(body, PARTS, Chars(9), prefix="[EXERCISE] ")


def test_deterministic() -> None:
    """The same input always gives the same text."""
    assert {fit(body, PARTS, Chars(70), prefix="X").text for _ in range(5)} == {
        fit(body, PARTS, Chars(70), prefix="X").text
    }
