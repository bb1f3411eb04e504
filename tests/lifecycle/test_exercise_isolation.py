"""No exercise or test message, original or follow-up, can reach a non-exercise account."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alertcast.channels import registry
from alertcast.config import AccountConfig, RouteConfig
from alertcast.models import Kind, Severity, parse_incident
from alertcast.routing import route
from tests.conftest import TOKEN, incident

CODES = ["510000", "510100", "510104", "511826", "500101"]
codes = st.lists(st.sampled_from(CODES), max_size=2)


@st.composite
def accounts(draw: st.DrawFn) -> list[AccountConfig]:
    out = []
    for i in range(draw(st.integers(1, 8))):
        exercise = draw(st.booleans())
        out.append(
            AccountConfig(
                id=f"a{i}",
                channel=draw(st.sampled_from(sorted(registry()))),
                exercise=exercise,
                enabled=draw(st.booleans()),
                regions=draw(codes),
                kinds=draw(st.lists(st.sampled_from(list(Kind)), min_size=1, unique=True)),
                min_severity=draw(st.sampled_from(list(Severity))),
                statuses=draw(
                    st.none() | st.just(["actual", "exercise", "test"] if exercise else ["actual"])
                ),
            )
        )
    return out


@st.composite
def rules(draw: st.DrawFn, ids: list[str]) -> list[RouteConfig]:
    return [
        RouteConfig(
            name=f"r{i}",
            add=draw(st.lists(st.sampled_from(ids))),
            exclude=draw(st.lists(st.sampled_from(ids))),
            regions=draw(codes),
        )
        for i in range(draw(st.integers(0, 4)))
    ]


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    status=st.sampled_from(["exercise", "test"]),
    severity=st.sampled_from(list(Severity)),
    area=codes,
)
def test_no_rule_or_account_sends_a_drill_to_the_public(
    data: st.DataObject, status: str, severity: Severity, area: list[str]
) -> None:
    """Whatever the accounts and route rules, a drill is chosen only for exercise accounts."""
    accs = data.draw(accounts())
    rule_list = data.draw(rules([a.id for a in accs]))
    drill = parse_incident(
        incident(status=status, severity=severity.value, area={"name": "x", "codes": area})
    )
    chosen = [d.account for d in route(drill, accs, None, rule_list) if d.chosen]
    assert all(a.exercise for a in chosen)


async def test_drill_follow_ups_stay_with_the_drill_accounts(start_daemon: Any) -> None:
    """A drill, its update and its cancellation touch only the exercise account."""
    drill_acc = {
        "id": "drill",
        "channel": "webhook",
        "url": "{sink}/drill",
        "secret_env": "T_HOOK_SECRET",
        "exercise": True,
    }
    routes = [{"name": "everyone", "add": ["hook-0", "hook-1", "drill"]}]
    d = await start_daemon(hooks=2, accounts=[drill_acc], routes=routes)
    first = await (await d.post(incident(status="exercise"))).json()
    await d.settled(first["id"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    upd = await (
        await d.client.post(
            f"/v1/incidents/{first['id']}/update", json={"severity": "severe"}, headers=auth
        )
    ).json()
    await d.settled(upd["id"])
    cancel = await (
        await d.client.post(
            f"/v1/incidents/{first['id']}/cancel", json={"reason": "演习结束"}, headers=auth
        )
    ).json()
    await d.settled(cancel["id"])
    assert {r.path for r in d.sink.received} == {"/hook/drill"}
    assert len(d.sink.received) == 3
    assert all(r.body["text"].startswith("【演习】") for r in d.sink.received)
