"""Configuration: one TOML file, validated once, secrets only by environment-variable reference.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` listing every
problem with its path (``accounts[2].secret_env: …``). Environment variables named
``ALERTCAST_<TABLE>__<KEY>`` override the file (``ALERTCAST_SERVER__PORT=9000``).

This module is tables only: it knows no channel and no renderer. What needs them — a known
channel, its options, the formats it takes — is checked by :mod:`alertcast.checks`, whose
:func:`~alertcast.checks.load_checked` is how the daemon and the CLI load a configuration.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alertcast.capconfig import CapConfig
from alertcast.feedconfig import FeedApproval, FeedConfig, SeverityBands
from alertcast.lengths import WEIBO_LINK_HALF_UNITS
from alertcast.models import Kind, Severity, Status
from alertcast.schedules import ScheduleConfig

__all__ = [
    "RENDER_OPTIONS",
    "AccountConfig",
    "Check",
    "Config",
    "ConfigError",
    "DispatchConfig",
    "ExpiryConfig",
    "IssuerConfig",
    "LogConfig",
    "MaxDelays",
    "RenderConfig",
    "ServerConfig",
    "StoreConfig",
    "load_config",
]

# Keys that would hold a secret value if written inline; each has an ``*_env`` twin.
INLINE_SECRET_KEYS = frozenset(
    {
        "token",
        "secret",
        "access_token",
        "app_secret",
        "key",
        "password",
        "api_key",
        "callback_token",
        "aes_key",
        "encoding_aes_key",
    }
)
# Account options the renderer reads: the channel's own options are the others.
RENDER_OPTIONS = frozenset(
    {"template_fields", "sms_max_segments", "sms_signature", "max_characters", "url_length"}
)
Identifier = str


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Table):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # The edge (applied by ``alertcast serve``): a connection that has not sent a whole request
    # line and headers this long after connecting (or after its last answer) is closed; a
    # request's body must arrive in full within ``body_timeout_s`` (or 408); at
    # ``max_connections`` open connections, the oldest idle one is closed to make room (a 503
    # if none is idle).
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_connections: int = Field(default=2048, ge=16, le=65536)


class StoreConfig(_Table):
    url: str = "sqlite:///alertcast.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("store url must start with sqlite:// or postgresql://")
        return url


_DAY_S = 86400.0


class MaxDelays(_Table):
    """``[dispatch.max_delay_s]``: how long after it is queued an alert's own post may still go
    out, per kind (seconds); past it (or the incident's ``expires_at``, whichever is first) the
    delivery ends ``dead`` instead of going out stale. Corrections never lapse. The defaults and
    why: docs/delivery.md."""

    earthquake: float = Field(default=1800.0, gt=0, le=7 * _DAY_S)
    fire: float = Field(default=3600.0, gt=0, le=7 * _DAY_S)
    police: float = Field(default=7200.0, gt=0, le=7 * _DAY_S)
    weather: float = Field(default=21600.0, gt=0, le=7 * _DAY_S)
    general: float = Field(default=10800.0, gt=0, le=7 * _DAY_S)

    def of(self, kind: Kind) -> float:
        return float(getattr(self, kind.value))


DEFAULT_CONCURRENCY = 64


class DispatchConfig(_Table):
    # Sends in flight at once; unset, it follows the accounts (see Config.concurrency).
    concurrency: int | None = Field(default=None, ge=1, le=10000)
    max_attempts: int = Field(default=10, ge=1, le=1000)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    lease_s: float = Field(default=120.0, ge=5)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_delay_s: MaxDelays = MaxDelays()


class LogConfig(_Table):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class RenderConfig(_Table):
    templates_dir: Path | None = None
    link_length: int = Field(default=WEIBO_LINK_HALF_UNITS, ge=1, le=200)  # Weibo half-units


class RegionsConfig(_Table):
    """Explicit parents for codes that do not nest by prefix (``{"SE-AB-0180" = "SE-AB"}``),
    and GB/T 2260 codes to accept beyond the bundled divisions (``known``: a new county)."""

    parents: dict[str, str] = Field(default_factory=dict)
    known: list[str] = Field(default_factory=list)


class RouteConfig(_Table):
    """A rule over the accounts' own filters: add accounts to, or keep them from, matching
    incidents. It never sends a drill to a non-exercise account."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kinds: list[Kind] = Field(default_factory=lambda: list(Kind))
    min_severity: Severity = Severity.unknown
    max_severity: Severity = Severity.extreme
    regions: list[str] = Field(default_factory=list)
    add: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class ApprovalConfig(_Table):
    """Which incidents wait for a second issuer's approval before anything is sent."""

    severities: list[Severity] = Field(default_factory=lambda: [Severity.extreme])
    feed_min_magnitude: float | None = Field(default=None, ge=0, le=10)
    # Each feed's own ``approval`` ("default" | "always" | "never"), by feed name: copied here
    # from the [[feeds]] entries (set it there), so the two-person rule reads one table.
    feeds: dict[str, FeedApproval] = Field(default_factory=dict)
    # A cancellation of a chain that needed approval waits for a second approver, except an
    # approver's own (a correction must be fast); false makes every cancellation wait.
    approver_cancels_at_once: bool = True


class ExpiryConfig(_Table):
    """``[expiry]``: how long an incident stays in force when it states no ``expires_at``, per
    kind (hours after ``occurred_at``; none: until cancelled). Past it the incident is no longer
    active on the keyword reply, the public page or the API (docs/feeds.md)."""

    earthquake_h: float | None = Field(default=24.0, gt=0, le=24 * 366)
    fire_h: float | None = Field(default=None, gt=0, le=24 * 366)
    police_h: float | None = Field(default=None, gt=0, le=24 * 366)
    weather_h: float | None = Field(default=None, gt=0, le=24 * 366)
    general_h: float | None = Field(default=None, gt=0, le=24 * 366)

    def hours(self, kind: str) -> float | None:
        value = getattr(self, f"{kind}_h", None)
        return None if value is None else float(value)


class SeverityConfig(_Table):
    """The lowest severity the facts allow: an earthquake's magnitude bands (the feeds' table).

    A declared severity below the band is raised to it, and the audit trail says so.
    """

    earthquake: SeverityBands = SeverityBands()


OFFICIAL_WAIT_S = (
    600.0  # a subscription account's one daily send waits this for the official report
)
Role = Literal["submit", "approve", "operate", "read"]
DEFAULT_ROLES: tuple[Role, ...] = ("submit", "operate", "read")


class IssuerConfig(_Table):
    """A token's holder: what it may do (``roles``) and about what (``kinds``, ``regions``).

    ``submit`` raises, updates and cancels; ``approve`` is the second person of the two-person
    rule (``can_approve = true`` grants it too); ``operate`` re-drives deliveries and resumes
    accounts; ``read`` sees incidents, deliveries, accounts and the stream. Without ``roles`` an
    issuer may submit, operate and read. Every role is bound by the kinds and regions.
    """

    name: Identifier = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    token_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kinds: list[Kind] = Field(default_factory=lambda: list(Kind))
    regions: list[str] = Field(default_factory=list)
    can_approve: bool = False
    roles: list[Role] | None = Field(default=None, min_length=1)

    @property
    def granted(self) -> frozenset[str]:
        """Every role this issuer holds."""
        roles = set(self.roles if self.roles is not None else DEFAULT_ROLES)
        return frozenset(roles | ({"approve"} if self.can_approve else set()))

    @property
    def approver(self) -> bool:
        return "approve" in self.granted


class AccountConfig(BaseModel):
    """Common keys of an ``[[accounts]]`` entry; the channel's own keys stay in ``options``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Identifier = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    channel: str = Field(min_length=1)
    enabled: bool = True
    format: str | None = None
    language: str = "zh-CN"
    kinds: list[Kind] = Field(default_factory=lambda: list(Kind))
    min_severity: Severity = Severity.unknown
    regions: list[str] = Field(default_factory=list)
    # Also take incidents whose area is wider than the account's regions and covers them: a
    # city-wide alert (510100) reaches a district account (510107) that sets this.
    downward: bool = False
    exercise: bool = False
    statuses: list[Status] | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    per_minute: float | None = Field(default=None, gt=0)
    per_second: float | None = Field(default=None, gt=0)
    # Calls per hour, by the name of a budget the account's channel declares (Weibo: post,
    # comment, total); each overrides the platform's default (docs/channels.md).
    budgets: dict[
        Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")], Annotated[int, Field(ge=1, le=10**6)]
    ] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    backoff_max_s: float | None = Field(default=None, gt=0, le=86400)  # else [dispatch]'s
    lead: str | None = None
    # A member waits this long for its lead's post to repost it, then posts the text itself
    # (at once when the lead's delivery failed or its account is paused).
    lead_wait_s: float = Field(default=60.0, ge=0, le=3600)
    # How long an automatic earthquake report (CENC 自动测定) waits for the official one before
    # it spends the account's send; the official report, when it comes in time, goes instead.
    # Default: 600 s on a WeChat subscription account (one mass send a day; CENC's reviewed
    # parameters come within 10 minutes for domestic quakes), 0 elsewhere.
    official_wait_s: float | None = Field(default=None, ge=0, le=3600)
    # How a correction follows the original: by default the platform's plan
    # (alertcast/plan/corrections.py); "delete" and "reply_and_delete" delete the original only
    # after the correction itself is delivered.
    on_update: Literal["reply", "repost", "edit", "post"] | None = None
    on_cancel: Literal["reply", "reply_and_delete", "delete", "edit", "post"] | None = None
    fallback: list[str] = Field(default_factory=list)
    # Accounts that carry this account's updates and cancellations to the same people at once
    # (a WeChat subscription account's paired service account, sending template messages):
    # the path of a correction when this account cannot reach its followers again today.
    corrections_via: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _statuses_match_exercise(self) -> AccountConfig:
        drills = {s for s in (self.statuses or []) if s.is_drill}
        if drills and not self.exercise:
            raise ValueError(
                "statuses name exercise/test but exercise is not true: "
                "only accounts marked exercise = true may take drills"
            )
        return self

    @model_validator(mode="after")
    def _lead_wait_needs_a_lead(self) -> AccountConfig:
        if "lead_wait_s" in self.model_fields_set and self.lead is None:
            raise ValueError("lead_wait_s is how long a member waits for its lead: set lead too")
        return self

    @property
    def automatic_waits_s(self) -> float:
        """``official_wait_s``, or its default for the account's channel."""
        if self.official_wait_s is not None:
            return self.official_wait_s
        options = self.options
        once_a_day = options.get("account_type", "subscription") == "subscription"
        return OFFICIAL_WAIT_S if self.channel == "wechat_oa" and once_a_day else 0.0

    @property
    def takes(self) -> frozenset[Status]:
        """The statuses this account accepts; drills only ever if ``exercise = true``."""
        if self.statuses is not None:
            return frozenset(self.statuses)
        return frozenset({Status.exercise, Status.test} if self.exercise else {Status.actual})

    @property
    def options(self) -> dict[str, Any]:
        """The keys this model does not know: the channel's and the renderer's."""
        return dict(self.model_extra or {})

    @property
    def channel_options(self) -> dict[str, Any]:
        """The keys the channel validates: ``options`` less the rendering ones."""
        return {k: v for k, v in self.options.items() if k not in RENDER_OPTIONS}


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="ALERTCAST_", env_nested_delimiter="__", frozen=True
    )

    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    dispatch: DispatchConfig = DispatchConfig()
    logging: LogConfig = LogConfig()
    render: RenderConfig = RenderConfig()
    regions: RegionsConfig = RegionsConfig()
    approval: ApprovalConfig = ApprovalConfig()
    expiry: ExpiryConfig = ExpiryConfig()
    severity: SeverityConfig = SeverityConfig()
    issuers: list[IssuerConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    cap: CapConfig = CapConfig()
    source_path: Path | None = None

    @property
    def concurrency(self) -> int:
        """Sends in flight at once: ``[dispatch] concurrency``, or by default one per account
        and at least 64, so that an alert to every account goes out in one wave."""
        given = self.dispatch.concurrency
        return given if given is not None else max(DEFAULT_CONCURRENCY, len(self.accounts))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings

    @model_validator(mode="before")
    @classmethod
    def _feed_approval(cls, data: Any) -> Any:
        """Each feed's ``approval`` copied into ``[approval] feeds`` (one table for the rule)."""
        if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
            return data
        modes = {
            str(_key(f, "name")): _key(f, "approval") or "default"
            for f in data["feeds"]
            if _key(f, "name") is not None
        }
        approval = data.get("approval") or {}
        if isinstance(approval, BaseModel):
            approval = approval.model_dump()
        if isinstance(approval, dict):
            if approval.get("feeds", modes) != modes:
                raise ValueError("approval.feeds: set approval on each [[feeds]] entry instead")
            data = {**data, "approval": {**approval, "feeds": modes}}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for what, names in (
            ("accounts", [a.id for a in self.accounts]),
            ("issuers", [i.name for i in self.issuers]),
            ("routes", [r.name for r in self.routes]),
            ("feeds", [f.name for f in self.feeds]),
            ("schedules", [s.name for s in self.schedules]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate names {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _references_exist(self) -> Config:
        ids = {a.id for a in self.accounts}
        named = [(f"routes {r.name}", x) for r in self.routes for x in (*r.add, *r.exclude)]
        named += [(f"account {a.id} lead", a.lead) for a in self.accounts if a.lead]
        named += [(f"account {a.id} fallback", x) for a in self.accounts for x in a.fallback]
        named += [
            (f"account {a.id} corrections_via", x) for a in self.accounts for x in a.corrections_via
        ]
        unknown = [f"{where} names unknown account {x!r}" for where, x in named if x not in ids]
        if unknown:
            raise ValueError("; ".join(unknown))
        for a in self.accounts:
            if a.lead == a.id:
                raise ValueError(f"account {a.id} cannot be its own lead")
            lead = self.account(a.lead) if a.lead else None
            if lead is not None and lead.lead is not None:
                raise ValueError(
                    f"account {a.id}: its lead {lead.id} has a lead itself; a cluster has one lead"
                )
        return self

    def account(self, account_id: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account_id), None)


def _key(entry: Any, name: str) -> Any:
    """A key of a raw ``[[feeds]]`` entry, or of one already validated."""
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


class ConfigError(Exception):
    """Every problem of a configuration, each as ``(path, message)``."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"{p}: {m}" for p, m in self.problems))


Check = Callable[[Config], Iterable[tuple[str, str]]]
"""A check of a valid configuration that tables alone cannot make: ``(path, message)`` each."""


def load_config(
    path: str | Path | None = None, *, check_env: bool = False, checks: Iterable[Check] = ()
) -> Config:
    """Read, validate and cross-check the file at ``path`` (or ``$ALERTCAST_CONFIG``).

    ``checks`` run on the valid configuration and their problems join the others: every one
    is reported at once (:func:`alertcast.checks.load_checked` passes the channel checks).
    """
    path = Path(path or os.environ.get("ALERTCAST_CONFIG") or "config/example.toml")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror or exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from exc
    problems = list(_inline_secrets(raw))
    _resolve_paths(raw, path.resolve().parent)
    try:
        config = Config(**raw, source_path=path.resolve())
    except ValidationError as exc:
        named = {path for path, _ in problems}
        problems += [
            (where, e["msg"]) for e in exc.errors() if (where := _dotted(e["loc"])) not in named
        ]
        raise ConfigError(problems) from exc
    for check in checks:
        problems += check(config)
    if check_env:
        problems += _check_env(config)
    if problems:
        raise ConfigError(_first_per_path(problems))
    return config


def _first_per_path(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One message per path: the most specific one, which is found first."""
    seen: dict[str, str] = {}
    for path, message in problems:
        seen.setdefault(path, message)
    return list(seen.items())


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Relative file paths in the config are relative to the config file, not the cwd."""
    render = raw.get("render")
    if isinstance(render, dict) and isinstance(render.get("templates_dir"), str):
        render["templates_dir"] = str(base / render["templates_dir"])


def _dotted(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _inline_secrets(raw: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for table in ("issuers", "accounts", "feeds"):
        for i, entry in enumerate(raw.get(table) or []):
            if not isinstance(entry, Mapping):
                continue
            for key in sorted(INLINE_SECRET_KEYS & entry.keys()):
                yield (
                    f"{table}[{i}].{key}",
                    f"secrets are never written in the config file; set {key}_env to the name "
                    "of an environment variable that holds it",
                )


def env_references(config: Config) -> list[tuple[str, str]]:
    """Every ``(path, VARIABLE)`` the configuration names for a secret."""
    refs = [(f"issuers[{i}].token_env", s.token_env) for i, s in enumerate(config.issuers)]
    refs += [
        (f"feeds[{i}].token_env", f.token_env) for i, f in enumerate(config.feeds) if f.token_env
    ]
    for i, account in enumerate(config.accounts):
        refs += [
            (f"accounts[{i}].{key}", value)
            for key, value in sorted(account.options.items())
            if key.endswith("_env") and isinstance(value, str)
        ]
    return refs


def _check_env(config: Config) -> list[tuple[str, str]]:
    return [
        (path, f"environment variable {var} is not set")
        for path, var in env_references(config)
        if not os.environ.get(var) and not os.environ.get(f"{var}_FILE")
    ]
