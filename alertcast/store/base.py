"""The store protocol and the rows it speaks in.

Every engine (``sqlite``, ``postgres``) implements :class:`Store`; one contract test suite runs
against each. Times are Unix seconds (``float``) inside the store; the API formats them.

The dispatcher only ever calls :meth:`Store.claim_due` and :meth:`Store.finish_attempt` (or
:meth:`Store.finish_attempts`, several in one transaction): an engine claims however it can
(SQLite: one serialised writer; PostgreSQL: ``FOR UPDATE SKIP LOCKED``) without the
dispatcher knowing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertcast.models import DeliveryState
from alertcast.slots import Answer, Need, SlotRow  # limit slots

__all__ = [
    "AccountState",
    "ActiveClaim",
    "Applied",
    "AttemptRow",
    "AuditRow",
    "DeliveryRow",
    "DuplicateRecipient",
    "Effects",
    "FeedEventRow",
    "IdempotencyConflict",
    "IdempotencyRecord",
    "InWindow",
    "IncidentRow",
    "NewDelivery",
    "Outcome",
    "Recipient",
    "RecipientPart",
    "RecipientSend",
    "Release",
    "Requeue",
    "SendOutcome",
    "StaleRead",
    "StateConflict",
    "Store",
    "StoreInUse",
    "Taken",
    "Write",
]

SETTLED = tuple(s.value for s in DeliveryState if s.settled)


class StateConflict(Exception):
    """A write found the incident in another state than it requires (cancelled, approved)."""


class StoreInUse(Exception):
    """The store admits one process (SQLite) and another one holds it: the message says which."""


class StaleRead(Exception):
    """A follow-up was planned on deliveries that changed before it committed (an original
    meant to be withdrawn was claimed, or settled, meanwhile): read again and plan again."""


class IdempotencyConflict(Exception):
    """An ``Idempotency-Key`` was already used by this issuer; ``record`` is the first use."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(f"idempotency key {record.key!r} already used")
        self.record = record


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    issuer: str
    key: str
    body_sha256: str
    response: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: str
    kind: str
    status: str
    severity: str
    msg_type: str
    state: str
    issuer: str
    source: str
    body: Mapping[str, Any]
    created_at: float
    expires_at: float | None = None
    references: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    account: str
    channel: str
    payload: Mapping[str, Any]
    idempotency_key: str
    state: DeliveryState = DeliveryState.pending
    reason: str | None = None
    action: str = "post"
    target_delivery_id: str | None = None
    wait_for: str | None = None
    priority: int = 0
    max_attempts: int = 10
    expires_at: float | None = None
    hold: bool = False  # stored but not due until the incident is approved
    path: str | None = None  # the way a correction reaches people (alertcast.plan.corrections)
    not_before: float | None = None  # due no earlier (the next mass send when a quota returns)


@dataclass(frozen=True, slots=True)
class Taken:
    """New deliveries the creating worker claims in the same transaction that stores them, so
    they are on their way without another round trip to the store (``ids`` only: the rest of
    the new deliveries wait to be claimed as usual)."""

    worker: str
    lease_until: float
    ids: frozenset[str]
    targets: Mapping[str, str | None] = field(default_factory=dict)  # original -> remote id


@dataclass(frozen=True, slots=True)
class Effects:
    """What a follow-up changes besides adding itself, in the same transaction."""

    withdraw: tuple[str, ...] = ()  # undelivered deliveries that must not go out any more
    withdraw_reason: str = ""
    incident_state: tuple[str, str] | None = None  # (incident id, new state), unless cancelled
    live: str | None = None  # an incident that must not be cancelled by the time this commits
    released: str | None = None  # a held cancellation approved: it becomes ``cancelled``
    # Per-recipient parents the follow-up stops (issue 15 item 2): each one still pending,
    # retrying or being sent is withdrawn (``withdraw_reason``) with its sends not yet sent;
    # those it reached are the audience of its correction (alertcast.store.followup_sql).
    withdraw_recipients_of: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    incident_id: str
    account: str
    channel: str
    state: DeliveryState
    payload: Mapping[str, Any]
    idempotency_key: str
    attempts: int
    max_attempts: int
    next_attempt_at: float | None
    created_at: float
    updated_at: float
    reason: str | None = None
    action: str = "post"
    target_delivery_id: str | None = None
    wait_for: str | None = None
    last_error: str | None = None
    remote_id: str | None = None
    delivered_at: float | None = None
    priority: int = 0
    expires_at: float | None = None
    progress: Mapping[str, Any] | None = None  # a multi-recipient send's cursor, see Outgoing
    path: str | None = None  # the way a correction reaches people (alertcast.plan.corrections)


@dataclass(frozen=True, slots=True)
class ActiveClaim:
    """A claimed delivery plus what the adapter needs: the original's remote id, if any, and
    where the delivery it threads to stands (a cluster member's lead, a follow-up's original)."""

    delivery: DeliveryRow
    target_remote_id: str | None = None
    msg_type: str = "alert"
    target_delivered: bool = False  # the original reached the platform (with or without an id)
    target_state: DeliveryState | None = None
    target_account: str | None = None
    wait_state: DeliveryState | None = None  # where the delivery it waited for stands
    wait_account: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: str
    number: int
    started_at: float
    duration_ms: float
    outcome: str
    http_status: int | None = None
    error_code: str | None = None
    error: str | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt leaves the delivery as."""

    state: DeliveryState
    next_attempt_at: float | None = None
    last_error: str | None = None
    remote_id: str | None = None
    reason: str | None = None
    progress: Mapping[str, Any] | None = None  # stored when given; None keeps what was there


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: float
    actor: str
    action: str
    incident_id: str | None = None
    delivery_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Release:
    """An approval: exactly the held messages ``ids`` become active and their deliveries due.

    ``whole`` names the incident when the approval is of the incident itself: then any other
    held message of it written since the approver read it fails the write (:class:`StaleRead`,
    planned again), so an approval never releases words nobody checked.
    """

    ids: tuple[str, ...]
    whole: str | None = None


@dataclass(frozen=True, slots=True)
class Requeue:
    """An operator's re-drive of a settled delivery: back to ``pending`` with ``budget`` tries."""

    delivery_id: str
    budget: int


@dataclass(frozen=True, slots=True)
class Write:
    """Everything one plan changes, applied by :meth:`Store.apply` in one transaction."""

    incident: IncidentRow | None = None  # a new alert, update or cancellation
    deliveries: Sequence[NewDelivery] = ()  # the new incident's, or ``attach_to``'s
    attach_to: str | None = None  # a stored incident that gets more deliveries (a fallback)
    idempotency: IdempotencyRecord | None = None
    effects: Effects | None = None
    release: Release | None = None  # held messages approved: their deliveries become due
    requeue: Requeue | None = None
    audit: Sequence[AuditRow] = ()
    taken: Taken | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Store.apply` did beyond the write itself."""

    released: int = 0  # held deliveries made due by a release
    requeued: DeliveryRow | None = None
    claims: Sequence[ActiveClaim] = ()  # the deliveries ``taken`` names, as stored


class Store(Protocol):
    """Durable state: incidents, deliveries, attempts, idempotency keys and the audit trail."""

    single_process: bool  # True when one process owns every claim (SQLite)
    # How long a call that claims may take from its start, answer included, or None where a
    # claim's answer cannot be lost (SQLite: one process, its own disk); see ``release_lost``.
    claim_bound_s: float | None

    def describe(self) -> str:
        """Where the data lives, without credentials (for logs)."""

    async def open(self) -> None:
        """Connect and migrate; raises :class:`StoreInUse` if another process holds a store
        that admits one (``single_process``), before reading or changing anything."""

    async def close(self) -> None: ...

    async def apply(self, write: Write) -> Applied:
        """Make every change ``write`` holds in ONE transaction, or none of them.

        The incident, its deliveries (or ``attach_to``'s, added once by id), the idempotency
        key (:class:`IdempotencyConflict` when the issuer used it already), the effects
        (:class:`StaleRead`, :class:`StateConflict` when the plan's reading changed), the
        release of a held incident and the re-drive of a delivery (:class:`StateConflict` when
        either no longer applies), and the audit rows. The deliveries ``taken`` names are
        stored claimed (``sending``, first attempt) and come back as claims.
        """

    async def get_idempotency(self, issuer: str, key: str) -> IdempotencyRecord | None: ...
    async def get_incident(self, incident_id: str) -> IncidentRow | None: ...
    async def list_incidents(
        self,
        *,
        limit: int = 50,
        kind: str | None = None,
        state: str | None = None,
        status: str | None = None,
        before: float | None = None,
    ) -> list[IncidentRow]: ...
    async def follow_ups(self, incident_id: str) -> list[IncidentRow]: ...
    async def get_delivery(self, delivery_id: str) -> DeliveryRow | None: ...
    async def list_deliveries(
        self,
        *,
        incident_id: str | None = None,
        state: str | None = None,
        account: str | None = None,
        limit: int = 500,
    ) -> list[DeliveryRow]: ...
    async def counts(self, incident_id: str) -> dict[str, int]: ...
    async def attempts(self, delivery_id: str) -> list[AttemptRow]: ...

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        lease_s: float,
        worker: str,
        free: Mapping[str, int],
        waits: Mapping[str, float] | None = None,
        corrections: Mapping[str, Mapping[str, int]] | None = None,
    ) -> list[ActiveClaim]:
        """Mark up to ``limit`` due deliveries ``sending``, highest priority first: at most
        ``free[account]`` each, or for updates and cancellations (priority > 0), when given,
        ``corrections[account][action]`` (their action's own budget and a rate window's
        reserve are theirs); every one taken counts against all of its account's.

        A delivery that waits for another's is due once that one is settled; a cluster
        member's (one that waits for another account's: its lead's) also once it was tried
        before, or once it has been due ``waits[account]`` seconds.
        """

    async def finish_attempt(
        self, claim: DeliveryRow, attempt: AttemptRow, outcome: Outcome, *, worker: str = ""
    ) -> DeliveryRow:
        """Record the attempt and the new state in one transaction, if ``worker`` still holds
        the claim (a claim taken over after its lease ran out is not overwritten)."""

    async def finish_attempts(
        self, items: Sequence[tuple[DeliveryRow, AttemptRow, Outcome]], *, worker: str
    ) -> list[DeliveryRow]:
        """:meth:`finish_attempt` of each ``(claim, attempt, outcome)`` in ONE transaction
        (one group commit on SQLite): the rows in order, each as that call would return it."""

    async def save_progress(
        self, delivery_id: str, progress: Mapping[str, Any], *, worker: str, lease_s: float
    ) -> bool:
        """Checkpoint a long send: store ``progress`` and extend the lease, if ``worker`` still
        holds the claim. ``False`` means it does not (the lease ran out and another worker may
        have the delivery): the sender must stop."""

    async def unclaim(
        self,
        delivery_id: str,
        *,
        worker: str,
        due_at: float,
        reason: str | None = None,
        progress: Mapping[str, Any] | None = None,
    ) -> bool:
        """Give back a claim ``worker`` holds whose attempt does not count (nothing was sent, or
        a per-recipient pass made way): the delivery is due again at ``due_at`` with ``reason``
        (why it waits) and ``progress`` (if given) stored, the attempt the claim counted taken
        back. ``False``: the claim was no longer held (its lease ran out)."""

    async def release_lost(
        self,
        *,
        worker: str,
        held: Callable[[], Iterable[str]],
        claimed_before: float,
        now: float,
    ) -> int:
        """Claims ``worker`` made before ``claimed_before`` on deliveries it does not hold
        (``held()``: every delivery it is sending or was handed): the call that made each was
        committed but its answer never came back (a connection lost at the commit), so the
        worker never had the rows and sent nothing. Each is due again at ``now``, its attempt
        taken back, as :meth:`unclaim` would; how many. It runs only while none of this
        store's claiming calls is on its way (it waits for those, each answered or failed within
        ``claim_bound_s``, and holds new ones back) and calls ``held`` only then, so an answer
        that came is in it whatever its rows' stamps; ``claimed_before`` two bounds ago keeps
        out what a server still finishing a call the client gave up on might yet commit."""

    async def next_due_at(self) -> float | None: ...
    async def recover(self, *, now: float, everything: bool) -> int:
        """Return ``sending`` deliveries whose lease ran out (or all) to ``retrying``."""

    async def add_audit(self, row: AuditRow) -> None: ...
    async def audit_trail(self, incident_id: str) -> list[AuditRow]: ...

    # -- feed events (issue 5: the durable known-event table) -------------------------------
    async def get_feed_event(self, feed: str, event_id: str) -> FeedEventRow | None: ...
    async def feed_events(
        self,
        feed: str,
        *,
        ids: Sequence[str],
        between: tuple[float, float] | None = None,
    ) -> list[FeedEventRow]:
        """Events of ``feed`` holding any of ``ids`` (by their id index or own id), or whose
        time (Unix seconds) lies in ``between``: the candidates ``find_known`` chooses from."""

    async def live_feed_events(self, feed: str, *, since: float) -> list[FeedEventRow]:
        """Alerted, not cancelled events of ``feed`` whose time is ``since`` or later."""

    async def put_feed_event(
        self, row: FeedEventRow, *, takeover: Sequence[str] = (), now: float
    ) -> bool:
        """Store ``row`` if ``row.version`` is still the stored version (0: a new event).

        True: stored as version ``row.version + 1``, with every id of ``row.ids`` pointing at
        it (ids held by the events named in ``takeover`` move to it). False: another writer
        changed the event, or holds one of its ids, first; nothing was changed.
        """

    async def prune_feed_events(self, feed: str, *, before: float, idle_since: float) -> int:
        """Forget events of ``feed`` older than ``before``, unchanged since ``idle_since`` and
        with no pending action; returns how many."""

    # -- account state (issue 15: pauses survive a restart, account_sql) --------------------
    async def account_states(self) -> dict[str, AccountState]:
        """Every stored account state, by account id."""

    async def put_account_state(self, state: AccountState) -> None:
        """Store ``state`` as its account's, unless a later one (``updated_at``) is stored."""

    async def claim_spent(
        self,
        *,
        accounts: Sequence[str],
        now: float,
        limit: int,
        lease_s: float,
        worker: str,
        corrections: Sequence[str] = (),
    ) -> list[ActiveClaim]:
        """Claim up to ``limit`` due deliveries of original alerts of the spent ``accounts``
        (which hand them to their fallback at once), and of updates and cancellations of the
        spent ``corrections`` accounts, once what each waits for allows it (they go by the
        actions that spend no quota, or wait for the quota with the reason)."""

    # -- interaction windows (issue 11: customer-service messages, interaction_sql) ---------
    async def note_interaction(self, account: str, openid: str, kind: str, at: float) -> None:
        """Note that ``openid`` did ``kind`` (``message``; ``event``: a menu click, follow or
        scan; ``gone``: unfollowed) at ``at``, and forget the account's rows past every
        window. ``ValueError`` for another kind."""

    async def window(
        self, account: str, *, now: float, limit: int, after: str = ""
    ) -> list[InWindow]:
        """Followers of ``account`` inside a window at ``now`` with sends left, by openid,
        those after ``after`` only, at most ``limit``."""

    async def note_custom_sent(self, account: str, openids: Sequence[str], *, at: float) -> None:
        """One custom message was sent at ``at`` to each of ``openids``."""

    # -- per-recipient accounts (issue 15 item 2: migration 0008, recipient_sql) ------------
    async def import_recipients(
        self, account: str, rows: Iterable[tuple[int, Recipient]], *, replace: bool = False
    ) -> int:
        """Store ``(line, recipient)`` rows as ``account``'s recipients in one transaction, or
        none of them: an exception raised by ``rows`` (a bad line) aborts it, an id on two
        lines raises :class:`DuplicateRecipient`. Existing ids are updated; ``replace`` drops
        the account's recipients the file does not hold. Rows are streamed, never held whole
        (COPY on PostgreSQL); returns how many the file held."""

    async def count_recipients(self, account: str) -> int: ...
    async def list_recipients(
        self, account: str, *, after: str = "", limit: int = 100
    ) -> list[Recipient]: ...

    async def expand_recipients(
        self, delivery_id: str, account: str, codes: Sequence[str], *, limit: int, now: float
    ) -> tuple[str | None, int]:
        """Add the next ``limit`` recipients of ``account`` whose region lies in the area
        ``codes`` (or who have none) to the delivery's sends, ``pending``, as one part (a
        :class:`RecipientPart`), in one transaction; the parts say where the next begins, so a
        crash loses and repeats nothing. Returns the chunk's last id (None: no recipient left)
        and the sends added."""

    async def expand_correction(
        self,
        correction_id: str,
        original_id: str,
        account: str,
        *,
        first: bool,
        after: str,
        limit: int,
        now: float,
    ) -> tuple[str | None, int]:
        """Copy the next chunk (the original's recipient ids after ``after``) of who the
        original's family reached into the correction's sends, ``pending``, each with
        ``reply_to`` the remote id that reached them; ``first`` (an update): also those it
        withdrew, ``reply_to`` NULL. Idempotent. Returns the chunk's last id (None: the last
        chunk is copied) and the sends added."""

    async def start_recipients(
        self, delivery_id: str, ids: Sequence[str], *, now: float, by: str | None = None
    ) -> set[str]:
        """Mark the sends ``ids`` ``sending`` just before they are sent, those still due
        (a follow-up may have withdrawn the rest), stamped ``now`` on :meth:`clock` (a
        correction on another replica ages the stamp there), taken by ``by`` (the pass's
        token, for :meth:`give_back_recipients`): the ids to send."""

    async def touch_recipients(self, delivery_id: str, ids: Sequence[str], *, now: float) -> int:
        """The sends ``ids`` still ``sending`` (taken by this pass, outcome not recorded yet)
        stamped ``now`` (on :meth:`clock`): still on the wire, so a correction to those
        recipients waits for them (``followup_sql.WIRE_S`` after the last stamp on that clock,
        a dead pass's hold nothing); how many."""

    async def unstart_recipients(self, delivery_id: str, *, now: float) -> int:
        """The delivery's sends marked ``sending`` outside any part leased now (a pass that
        died with them): due again, or withdrawn when the delivery was; how many."""

    async def give_back_recipients(
        self, delivery_id: str, ids: Sequence[str], *, by: str, now: float
    ) -> int:
        """The sends ``ids`` that the pass ``by`` took (:meth:`start_recipients`), still
        ``sending``, and will not send (it stopped): due again, or withdrawn when the delivery
        was, and a cancellation's sends to those recipients withdrawn too where nothing of the
        family may have reached them (``followup_sql.NEVER_REACHED``); how many."""

    async def due_recipients(
        self,
        delivery_id: str,
        account: str,
        *,
        now: float,
        after: str = "",
        last: str | None = None,
        limit: int,
    ) -> list[RecipientSend]:
        """The delivery's sends due at ``now`` (pending, or retrying and due), by recipient id
        after ``after`` (and up to ``last``, if given), with each recipient's region and data."""

    async def record_recipients(
        self,
        delivery_id: str,
        outcomes: Sequence[SendOutcome],
        *,
        now: float,
        worker: str = "",
        done: Sequence[str] = (),
    ) -> None:
        """Record a batch of outcomes in one transaction (a delivered send stays delivered),
        with ``worker``'s parts ``done`` (by ``after``) marked done: each was tried whole."""

    async def take_recipient_part(
        self, delivery_id: str, *, worker: str, now: float, lease_s: float
    ) -> RecipientPart | None:
        """Lease the delivery's first part not done that nobody holds (or whose lease ran
        out) to ``worker`` for ``lease_s``; None when there is none."""

    async def take_any_recipient_part(
        self,
        *,
        accounts: Sequence[str],
        skip: Sequence[str] = (),
        worker: str,
        now: float,
        lease_s: float,
    ) -> RecipientPart | None:
        """Lease a part, as :meth:`take_recipient_part`, of any delivery of ``accounts`` being
        sent (but those in ``skip``), corrections' first."""

    async def release_lost_parts(
        self, *, worker: str, held: Callable[[], Iterable[tuple[str, str]]], now: float
    ) -> int:
        """Parts leased to ``worker`` that it does not hold (``held()``: every ``(delivery id,
        after)`` it took and still sweeps): the take that leased each was committed but its
        answer never came back, so nobody would send them until the lease ran out. Each is
        given back for anyone to take, as :meth:`release_recipient_parts`; how many. Like
        :meth:`release_lost`, it runs only while no claiming call (a part's take is one) is
        on its way, and calls ``held`` only then."""

    async def renew_recipient_parts(
        self, delivery_id: str, parts: Sequence[str], *, worker: str, until: float
    ) -> set[str]:
        """Extend ``worker``'s leases of ``parts`` to ``until``; those it still holds."""

    async def release_recipient_parts(
        self, delivery_id: str, parts: Sequence[str], *, worker: str
    ) -> None:
        """Give ``worker``'s ``parts`` (not done) back for anyone to take, the sends it
        marked ``sending`` in them and did not send due again."""

    async def correction_due(self, account: str, priority: int, *, now: float) -> bool:
        """Whether a delivery of a higher ``priority`` (a correction) is due on ``account``."""

    async def open_recipient_parts(self, delivery_id: str) -> int:
        """How many of the delivery's parts are not done."""

    async def recipient_summary(self, delivery_id: str) -> dict[str, int]:
        """The delivery's sends by state."""

    async def next_recipient_due(self, delivery_id: str) -> float | None: ...
    async def give_up_recipients(self, delivery_id: str, reason: str, *, now: float) -> int:
        """Every unsettled send of the delivery ends ``dead`` with ``reason``."""

    async def recipient_sends(
        self, delivery_id: str, *, state: str | None = None, after: str = "", limit: int = 100
    ) -> list[RecipientSend]:
        """The delivery's sends by recipient id after ``after`` (of ``state`` only, if given)."""

    # limit slots (issue 15): rate windows and quotas shared by replicas, see alertcast.slots
    def clock(self) -> float:
        """Now on the clock every replica reads for the slots' instants (PostgreSQL's own,
        estimated from this machine's: :mod:`alertcast.store.clock`; SQLite: the wall clock)."""

    async def take_slot(
        self, key: str, slot_id: str, needs: Sequence[Need], *, now: float, lease_s: float
    ) -> Answer:
        """Insert ``slot_id`` under ``key`` in every budget of ``needs`` if each has room,
        atomically across replicas (a slot taken before: taken); the slots counted."""

    async def finish_slot(self, key: str, slot_id: str, *, now: float) -> None:
        """The send ended: its slots count from ``now``."""

    async def drop_slot(self, key: str, slot_id: str) -> None:
        """The send never went out: its slots are forgotten."""

    async def held_slots(self, key: str, needs: Sequence[Need]) -> tuple[SlotRow, ...]:
        """The slots ``needs`` count now."""


@dataclass(frozen=True, slots=True)
class InWindow:
    """A follower inside a platform's interaction window, and how many sends they have left."""

    openid: str
    left: int


# -- feed events (issue 5) -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FeedEventRow:
    """One real event as one feed knows it; ``known`` is ``KnownEvent.to_json()``.

    ``pending`` is an action claimed with this version and not yet confirmed done; ``version``
    is 0 for an event not stored yet.
    """

    feed: str
    event_id: str
    known: Mapping[str, Any]
    ids: tuple[str, ...]
    event_time: float
    incident_id: str | None = None
    live: bool = False
    pending: Mapping[str, Any] | None = None
    version: int = 0
    updated_at: float = 0.0


# -- account state (issue 15) ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountState:
    """One account's pause as stored (migration 0005); ``paused_for`` None: not paused.

    ``paused_for`` is ``quota`` (spent until ``paused_until``) or ``credentials`` (rejected;
    ``paused_credentials`` is a salted digest of their fingerprint, never the credentials).
    ``correction_failed`` (migration 0011): a correction that reached no one on the account
    ("<delivery> (<incident>): why"), None once re-driven or the account resumed by an
    operator; ``correction_failed_at``: when that flag was last set or cleared. A write keeps
    the stored flag when its own is older (a replica that had not heard of the newer one).
    """

    account: str
    paused_for: str | None = None
    paused_reason: str | None = None
    paused_until: float | None = None
    paused_credentials: str | None = None
    updated_at: float = 0.0
    correction_failed: str | None = None
    correction_failed_at: float | None = None


# -- per-recipient accounts (issue 15 item 2) ------------------------------------------------
class DuplicateRecipient(ValueError):
    """An import names one recipient id on two lines: nothing of the file is stored."""

    def __init__(self, recipient_id: str, first: int, again: int) -> None:
        super().__init__(f"line {again}, column id: {recipient_id!r} is already on line {first}")
        self.recipient_id, self.first, self.again = recipient_id, first, again


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person a per-recipient account addresses (migration 0008): ``region`` a GB/T 2260
    code (None: everywhere), ``data`` the channel's own columns (a phone number, an address)."""

    id: str
    region: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecipientSend:
    """One recipient of one delivery and where its send stands; ``data`` (and ``region``) of
    the recipient when read for sending, None when it was removed from the account since."""

    recipient_id: str
    state: str
    attempts: int = 0
    next_attempt_at: float | None = None
    http_status: int | None = None
    last_error: str | None = None
    updated_at: float = 0.0
    region: str | None = None
    data: Mapping[str, Any] | None = None
    reply_to: str | None = None  # a correction's: the remote id of the send that reached them


@dataclass(frozen=True, slots=True)
class RecipientPart:
    """A range of one delivery's sends (migration 0009): recipient ids in (``after``,
    ``last``], written by one step of the expansion and taken by one worker at a time."""

    delivery_id: str
    after: str
    last: str


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one attempt at one recipient leaves its send as."""

    recipient_id: str
    state: str
    attempts: int
    next_attempt_at: float | None = None
    http_status: int | None = None
    last_error: str | None = None
    remote_id: str | None = None  # the receipt's (None keeps the one recorded before)
