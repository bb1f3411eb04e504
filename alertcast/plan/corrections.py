"""How an update or a cancellation reaches everyone who saw the original, per platform, as data.

A correction has two audiences: (a) the followers, in their timelines or chat lists, and (b) the
people who open the original later. :data:`PLATFORMS` says, for every channel, which steps reach
them, each with the platform fact it rests on (``shared/facts/platforms.md``), so a reader can
check the table against the platform's documentation. :func:`steps` applies an account's own
settings to it (``on_update`` / ``on_cancel`` override the table; ``corrections_via`` and the
WeChat callback add paths).

Paths (what a delivery's ``path`` records):

``timeline``  a new entry in the followers' timelines or chat lists (a post, a mass send, a robot
              message, a webhook POST)
``thread``    on the original, for whoever opens it (a Weibo comment)
``edit``      the original changed in place
``withdraw``  the original taken down (WeChat ``mass/delete``; Weibo ``statuses/destroy``)
``paired``    another account that reaches the same people at once (``corrections_via``)
``window``    WeChat customer-service messages to the followers inside the interaction window
``fallback``  the account's fallback accounts, once its quota is spent

Rules the planners keep: a deletion on Weibo comes only after the correction's timeline post is
delivered (a comment goes with its post, so deleting first would make the alarm vanish with no
correction); WeChat withdraws a mass-sent article first (no quota needed) and then corrects by
every path that reaches followers now; the next mass send carries the correction when nothing
else reached the followers (it waits for the paired account's delivery and goes only if that
failed, when the quota returns if need be).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from alertcast.config import AccountConfig

__all__ = ["PLATFORMS", "Path", "Step", "steps"]

Path = Literal["timeline", "thread", "edit", "withdraw", "paired", "window", "fallback"]


@dataclass(frozen=True, slots=True)
class Step:
    """One delivery of a correction: the action on the account's platform and the path it is.

    ``after``: the index of an earlier step this one waits for and needs delivered (a deletion
    after the correction is confirmed). ``fact``: where the platform documents it.
    """

    action: str
    path: Path
    after: int | None = None
    fact: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    update: tuple[Step, ...]
    cancel: tuple[Step, ...]


_POST = Step("post", "timeline", fact="a new message to the same audience")
_ROBOT = Plan((_POST,), (_POST,))
_REPLY = Step(
    "reply", "timeline", fact="one message to the same receiver, threaded to the original"
)
_THREADED = Plan((_REPLY,), (_REPLY,))

_WEIBO_TIMELINE = Step(
    "post",
    "timeline",
    fact="§1.1 statuses/share; a repost of one's own post answers 20103 (§1.3), so the "
    "correction is a new post linking the original's page (repost_own = true reposts instead)",
)
_WEIBO_THREAD = Step("reply", "thread", fact="§1.3 comments/create on the original")
_WECHAT_WITHDRAW = Step(
    "delete", "withdraw", fact="§2.3 message/mass/delete of the mass-sent article: no quota"
)
_WECHAT_MASS = Step(
    "post",
    "timeline",
    fact="§2.3 message/mass/sendall: 1 a day on subscription accounts (45028 when spent); it "
    "waits for the quota to return when no other path reached the followers",
)

_FEDIVERSE_REPLY = Step(
    "reply",
    "timeline",
    fact="§5 statuses with in_reply_to_id: threaded to the original, and a public reply of "
    "one's own status is in the followers' home timelines (edit and delete by on_cancel only)",
)
_TELEGRAM_REPLY = Step(
    "reply",
    "timeline",
    fact="§6 sendMessage with reply_parameters: a new message in the chat, quoting the "
    "original (editMessageText / deleteMessage within 48 h by on_cancel only)",
)

_EMAIL_REPLY = Step(
    "reply",
    "timeline",
    fact="a new mail to the same recipients, In-Reply-To and References naming the original's "
    "Message-ID: mail clients thread it under the alert",
)
_SMS_POST = Step(
    "post", "timeline", fact="§8 SendSms: a new text to the same numbers (SMS cannot thread)"
)

PLATFORMS: Mapping[str, Plan] = {
    "weibo": Plan((_WEIBO_TIMELINE, _WEIBO_THREAD), (_WEIBO_TIMELINE, _WEIBO_THREAD)),
    "wechat_oa": Plan((_WECHAT_MASS,), (_WECHAT_WITHDRAW, _WECHAT_MASS)),
    "wecom_robot": _ROBOT,  # §3 a group robot cannot thread or delete: a new message in the group
    "dingtalk_robot": _ROBOT,  # §4.1 likewise
    "feishu_robot": _ROBOT,  # §4.2 likewise
    "mastodon": Plan((_FEDIVERSE_REPLY,), (_FEDIVERSE_REPLY,)),
    "telegram": Plan((_TELEGRAM_REPLY,), (_TELEGRAM_REPLY,)),
    "email": Plan((_EMAIL_REPLY,), (_EMAIL_REPLY,)),
    "sms": Plan((_SMS_POST,), (_SMS_POST,)),
    "webhook": _THREADED,  # action reply, in_reply_to the original's id, references
    "file": _THREADED,
    "console": _THREADED,
}

_EXPLICIT: Mapping[str, tuple[Step, ...]] = {
    "reply": (Step("reply", "thread"),),
    "repost": (Step("repost", "timeline"),),
    "edit": (Step("edit", "edit"),),
    "post": (_POST,),
}


def steps(account: AccountConfig, msg_type: str, original: dict[str, object]) -> tuple[Step, ...]:
    """The deliveries a correction (``msg_type`` update or cancel) makes on ``account``, whose
    original went out with the payload ``original``: the platform's plan, or the account's
    ``on_update`` / ``on_cancel``, adjusted to how the original went out."""
    plan = PLATFORMS.get(account.channel, _ROBOT)
    chosen = account.on_update if msg_type == "update" else account.on_cancel
    if chosen is None:
        found = plan.update if msg_type == "update" else plan.cancel
    elif chosen in ("reply_and_delete", "delete"):
        found = _then_delete(account, plan.cancel)
    else:
        found = _EXPLICIT[chosen]
    found = _windowed(account, tuple(_own(account, s) for s in found))
    return tuple(s for s in found if _possible(account, s, original))


_WINDOW = Step(
    "custom",
    "window",
    fact="§2.6 message/custom/send to each follower who wrote to the account within 48 h",
)


def _windowed(account: AccountConfig, found: tuple[Step, ...]) -> tuple[Step, ...]:
    """A WeChat account with a callback also writes to the followers inside the interaction
    window (those who asked it for alerts), before its next mass send."""
    if account.channel != "wechat_oa" or not account.options.get("callback_token_env"):
        return found
    at = next((i for i, s in enumerate(found) if s.path == "timeline"), len(found))
    later = tuple(
        replace(s, after=s.after + 1) if s.after is not None and s.after >= at else s
        for s in found[at:]
    )
    return (*found[:at], _WINDOW, *later)


def _then_delete(account: AccountConfig, cancel: tuple[Step, ...]) -> tuple[Step, ...]:
    """The cancellation, then the original deleted once its timeline step is delivered: a
    deletion alone would make the alarm vanish for those who saw it, uncorrected. On Weibo a
    comment goes with its post, so a deleted original takes no comment."""
    kept = tuple(s for s in cancel if s.action != "delete")
    if account.channel == "weibo":
        kept = tuple(s for s in kept if s.path != "thread")
    first = next((i for i, s in enumerate(kept) if s.path == "timeline"), 0)
    return (*kept, Step("delete", "withdraw", after=first, fact="after the correction"))


def _own(account: AccountConfig, step: Step) -> Step:
    """Weibo reposts its own original only where the app may (``repost_own``)."""
    own = account.channel == "weibo" and account.options.get("repost_own") is True
    if own and step.path == "timeline" and step.action == "post":
        return replace(step, action="repost")
    return step


def _possible(account: AccountConfig, step: Step, original: dict[str, object]) -> bool:
    """WeChat withdraws only what a mass send put out as an article (``mass/delete``):
    template messages and free-published articles stay; so do mass-sent texts, which the
    platform's delete does not take (the message card stays in chat lists either way)."""
    if account.channel != "wechat_oa" or step.action != "delete":
        return True
    opts = account.options
    mass = opts.get("mode") == "article" and opts.get("article_publish", "mass") == "mass"
    return mass and bool(original.get("content_html"))
