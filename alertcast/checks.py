"""Cross-checks of a configuration against the channels and feeds: what tables cannot know.

:mod:`alertcast.config` validates every table and knows no channel; this module checks each
account against its channel — the name is one an adapter claims, the channel's own options
validate, the format is one the channel takes — and :func:`load_checked` is how the daemon and
the CLI load a configuration: every problem, of the tables and of these checks, by path.

:func:`correction_problems` checks that every account's corrections can reach the people it
alerted (docs/channels.md, "Corrections: a path to everyone who saw the original"): a public
WeChat subscription account has a path for them besides its one mass send a day; a
``fallback`` or ``corrections_via`` account reaches someone the account does not reach itself
(:class:`Reach`); a ``corrections_via`` account can carry them at all. :func:`weibo_problems`
checks that a Weibo account's safe domain covers ``[server] public_url``, where every short post
links to its full text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import product
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from pydantic import ValidationError

from alertcast.accounts import budget_problems
from alertcast.channels import UnknownChannel, channel_class
from alertcast.config import AccountConfig, Config, load_config
from alertcast.feeds.association import group_problems
from alertcast.geocheck import region_problems
from alertcast.lengths import links_to_domain
from alertcast.models import Incident, Kind, Severity, Status
from alertcast.regions import Hierarchy
from alertcast.render.samples import sample_incident
from alertcast.routing import Decision, route

__all__ = [
    "CHECKS",
    "Reach",
    "account_problems",
    "channel_problems",
    "correction_problems",
    "each_problems",
    "feed_problems",
    "load_checked",
    "weibo_problems",
]

ELSEWHERE = "(elsewhere)"
"""The probes' area code that no configured region covers (an account without regions takes it)."""


def load_checked(path: str | Path | None = None, *, check_env: bool = False) -> Config:
    """:func:`~alertcast.config.load_config` with :data:`CHECKS`: the configuration, or a
    :class:`~alertcast.config.ConfigError` listing every problem by path."""
    return load_config(path, check_env=check_env, checks=CHECKS)


def channel_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every account its channel refuses."""
    return [
        (f"accounts[{i}]{where}", message)
        for i, account in enumerate(config.accounts)
        for where, message in account_problems(account)
    ]


def account_problems(account: AccountConfig) -> Iterator[tuple[str, str]]:
    """``(".key", message)`` for what the account's channel refuses: an unknown channel, its
    options, a format it does not take, a budget it does not have."""
    try:
        cls = channel_class(account.channel)
    except UnknownChannel as exc:
        yield ".channel", str(exc)
        return
    try:
        cls.Options.model_validate(account.channel_options)
    except ValidationError as exc:
        yield from ((_dotted(e["loc"]), e["msg"]) for e in exc.errors())
    if account.format is not None and not cls.takes(account.format):
        takes = ", ".join(sorted(cls.formats or {}))
        yield ".format", f"channel {cls.name} takes the formats {takes}; not {account.format!r}"
    yield from budget_problems(cls, account)


def _dotted(loc: Iterable[int | str]) -> str:
    """``.key[0].sub`` from a pydantic location, without the tags of union members."""
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in loc
        if isinstance(part, int) or part.isidentifier()
    )


def feed_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every ``associate`` group of feeds that cannot work."""
    return group_problems(config.feeds)


def correction_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every enabled account whose corrections have no path to the
    people it alerted, or name an account that cannot carry them."""
    reach = Reach(config)
    return [
        (f"accounts[{i}]{where} ({account.id})", message)
        for i, account in enumerate(config.accounts)
        if account.enabled
        for where, message in _corrections(config, reach, account)
    ]


def _corrections(config: Config, reach: Reach, account: AccountConfig) -> Iterator[tuple[str, str]]:
    """``(".key", message)`` for what ``account``'s corrections cannot count on."""
    if not (account.corrections_via or account.fallback or _public_subscription(account)):
        return
    routed, carriers = reach.ever(account), 0
    for key, named in (
        ("corrections_via", account.corrections_via),
        ("fallback", account.fallback),
    ):
        for j, other in enumerate(config.account(x) for x in named):
            if other is None:
                continue  # the tables name it already
            if (why := _refusal(reach, account, other, key, routed=routed)) is not None:
                yield f".{key}[{j}]", why
            elif other.enabled and other.id != account.id and Status.actual in other.takes:
                carriers += 1
    if routed and carriers == 0 and _public_subscription(account):
        yield "", _no_path(account)


def _refusal(
    reach: Reach, account: AccountConfig, other: AccountConfig, key: str, *, routed: bool
) -> str | None:
    """Why ``other``, named in ``account``'s ``key``, is refused, if it is."""
    if key == "corrections_via" and (why := _cannot_carry(account, other)) is not None:
        return why
    if routed and other.enabled and other.id != account.id and not reach.adds(account, other):
        return _no_reach(account, other, key)
    return None


def _cannot_carry(account: AccountConfig, other: AccountConfig) -> str | None:
    """Why ``other`` can carry none (or not all) of ``account``'s corrections, if it cannot."""
    if other.id == account.id:
        return (
            f"names {account.id} itself: its corrections need another account that reaches the "
            "same people (a WeChat service account sending template messages, say)"
        )
    if not other.enabled:
        return f"{other.id} is disabled (enabled = false): it would carry no correction"
    missing = account.takes - other.takes
    if Status.actual in missing:
        return (
            f"{other.id} is an exercise account and {account.id} is public: only drills ever "
            f"reach {other.id}, so it would carry none of {account.id}'s corrections"
        )
    if missing:
        names = ", ".join(sorted(s.value for s in missing))
        return f"{other.id} does not take {names}, which {account.id} takes"
    return None


def _no_reach(account: AccountConfig, other: AccountConfig, key: str) -> str:
    done = (
        "as a fallback it reaches no one new; keep it as a copy of its own"
        if key == "fallback"
        else f"it corrects its own copies and would carry {account.id}'s corrections to no one"
    )
    return (
        f"{other.id} already gets every incident {account.id} gets (its kinds, statuses, "
        f"min_severity, regions and the routes take them all): {done}. Name an account that "
        f"gets none of {account.id}'s incidents of its own (a [[routes]] rule can exclude it)"
    )


def _public_subscription(account: AccountConfig) -> bool:
    """A WeChat subscription account (one mass send a day) that takes public alerts."""
    kind = account.options.get("account_type", "subscription")
    return account.channel == "wechat_oa" and kind == "subscription" and not account.exercise


def _no_path(account: AccountConfig) -> str:
    named = [*account.corrections_via, *account.fallback]
    none = f" (none of {', '.join(named)} can)" if named else ""
    return (
        "a public WeChat subscription account has one mass send a day, and the alert spends "
        f"it: no account carries its updates and cancellations to its followers{none}. Add "
        'corrections_via = ["<id>"] naming a WeChat service account (account_type = "service", '
        'mode = "template") that reaches the same followers and gets no alerts of its own, or '
        "a fallback that reaches people this account does not"
    )


def weibo_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for every enabled Weibo account whose posts cannot link to their
    full text: ``[server] public_url`` unset, or not on the account's safe domain."""
    public = config.server.public_url
    problems = []
    for i, account in enumerate(config.accounts):
        safe = account.options.get("safe_domain_url")
        if account.channel != "weibo" or not account.enabled or not isinstance(safe, str):
            continue
        if not urlsplit(safe).hostname:
            continue  # the channel's own check names it
        if public is None:
            problems.append((f"accounts[{i}] ({account.id})", _UNSET))
        elif not links_to_domain(public.rstrip("/") + "/p/inc", safe):
            where = f"accounts[{i}].safe_domain_url ({account.id})"
            problems.append((where, _OFF_DOMAIN.format(safe=safe, public=public)))
    return problems


_UNSET = (
    "[server] public_url is unset: every short Weibo post links to its full text there, and "
    "statuses/share takes only a text with a link on the app's safe domain (10017 otherwise); "
    "set public_url to an address on the safe domain"
)
_OFF_DOMAIN = (
    "{safe} does not cover [server] public_url {public}: every short post links to its full "
    "text there, and statuses/share takes only a text with a link on the app's safe domain "
    "(10017 otherwise); put public_url on the safe domain's host or a subdomain of it"
)


class Reach:
    """Whom an account reaches that another does not, as :func:`alertcast.routing.route` decides.

    ``adds(account, other)``: routing chooses ``account`` for some incident it does not choose
    ``other`` for — by their own filters (kinds, statuses, ``min_severity``, regions under the
    region hierarchy) and every ``[[routes]]`` rule that adds or excludes either of them. It is
    decided by routing probe incidents: every kind × status × severity, each with one area code
    out of those the two accounts and those rules name, and one code outside them all. For an
    incident with one area code that is exact: any other code is routed as the deepest named code
    that covers it. An incident naming several codes is judged code by code.
    """

    def __init__(self, config: Config) -> None:
        self.regions = Hierarchy(config.regions.parents)
        self.rules = config.routes
        self.bases = [cast(Incident, sample_incident(k, "zh-CN", Status.actual)) for k in Kind]

    def adds(self, account: AccountConfig, other: AccountConfig) -> bool:
        """True when routing chooses ``account`` for some incident and not ``other``."""
        pair = (account, other)
        return any(mine.chosen and not theirs.chosen for mine, theirs in self._routed(pair))

    def ever(self, account: AccountConfig) -> bool:
        """True when routing chooses ``account`` for some incident."""
        return any(mine.chosen for mine, _ in self._routed((account, account)))

    def _routed(self, pair: tuple[AccountConfig, AccountConfig]) -> Iterator[Sequence[Decision]]:
        ids = {a.id for a in pair}
        rules = [r for r in self.rules if ids & {*r.add, *r.exclude}]
        codes = {c for a in pair for c in a.regions} | {c for r in rules for c in r.regions}
        for base, status, severity, code in product(
            self.bases, Status, Severity, [*sorted(codes), ELSEWHERE]
        ):
            area = base.area.model_copy(update={"codes": [code]})
            probe = base.model_copy(update={"status": status, "severity": severity, "area": area})
            yield route(probe, pair, self.regions, rules)


def each_problems(config: Config) -> list[tuple[str, str]]:
    """``(path, message)`` for what an account that sends to each recipient one by one
    (``alertcast.bulk``) is asked and cannot do: be a cluster's lead (it makes no public post
    for the members to repost: they would wait ``lead_wait_s`` for nothing, then post alone),
    or delete its original (each recipient's message is their own; the cancellation reaches
    each one the alert reached, as a reply)."""
    found: list[tuple[str, str]] = []
    for i, account in enumerate(config.accounts):
        if not account.enabled:  # as for corrections: a disabled account sends nothing
            continue
        lead = config.account(account.lead) if account.lead else None
        if lead is not None and _each(lead):
            found.append(
                (
                    f"accounts[{i}].lead ({account.id})",
                    f"{lead.id} sends to each of its recipients and makes no public post to "
                    f"repost: {account.id} would wait lead_wait_s ({account.lead_wait_s:g} s) "
                    "for nothing; lead with an account that posts publicly, or set no lead",
                )
            )
        if account.on_cancel in ("delete", "reply_and_delete") and _each(account):
            found.append(
                (
                    f"accounts[{i}].on_cancel ({account.id})",
                    f"{account.id} sends to each of its recipients: there is no post to "
                    f"delete ({account.on_cancel!r}); each one the alert reached gets the "
                    'cancellation as a reply: use on_cancel = "reply"',
                )
            )
    return found


def _each(account: AccountConfig) -> bool:
    """Whether ``account`` sends to its recipients one by one (options its channel refuses,
    or an unknown channel, are named by :func:`channel_problems`)."""
    try:
        cls = channel_class(account.channel)
        return cls.per_recipient(cls.Options.model_validate(account.channel_options))
    except (UnknownChannel, ValidationError):
        return False


CHECKS = (
    channel_problems,
    feed_problems,
    correction_problems,
    weibo_problems,
    region_problems,
    each_problems,
)
"""Every cross-check :func:`load_checked` runs."""
