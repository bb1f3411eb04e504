"""CAP 1.2 in: an OASIS ``<alert>`` read whole into a :class:`CapMessage`.

Parsing is defensive (defusedxml: no DTDs, so no entities and no external references; the
body size is capped by the HTTP layer). With a schema configured (``[cap] schema``) the document
is validated against the OASIS ``cap12.xsd`` first, each error naming its element path. XML
signatures (``ds:Signature``) are neither verified nor enforced against the xmldsig schema, and
are not kept: the bearer token is what authenticates a sender (``docs/cap.md``).

Every ``<info>`` block is kept as plain data (:attr:`CapMessage.infos`, CAP's own element
names); the first one becomes the incident (:mod:`alertcast.cap_map`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import ParseError, fromstring  # type: ignore[import-untyped]

__all__ = ["CAP_NS", "CapError", "CapMessage", "Reference", "read_cap"]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP_NS}
MAX_SCHEMA_ERRORS = 10
BROADCAST_STATUSES = ("Actual", "Exercise", "Test")
MSG_TYPES = ("Alert", "Update", "Cancel")

# <info> children in schema order: repeated plain texts, (valueName, value) pairs, the rest single
LISTS = ("category", "responseType")
PAIRS = ("eventCode", "parameter")
INFO_ORDER = (
    "language",
    "category",
    "event",
    "responseType",
    "urgency",
    "severity",
    "certainty",
    "audience",
    "eventCode",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "web",
    "contact",
    "parameter",
    "resource",
    "area",
)
RESOURCE_ORDER = ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest")
AREA_ORDER = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")


class CapError(ValueError):
    """The document is not a CAP 1.2 alert alertcast can act on; ``field`` names the element,
    ``errors`` every (field, message) found (a schema may find several)."""

    def __init__(
        self, message: str, field: str = "(body)", errors: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors or ((field, message),)


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``sender,identifier,sent`` triple of ``<references>``."""

    sender: str
    identifier: str
    sent: str

    @property
    def key(self) -> str:
        """What names a CAP message: its sender and identifier."""
        return f"{self.sender},{self.identifier}"

    @property
    def text(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True, slots=True)
class CapMessage:
    """A CAP message as alertcast keeps it: the ``<alert>`` header and every ``<info>``."""

    sender: str
    identifier: str
    sent: str
    status: str  # CAP's word: Actual, Exercise or Test
    msg_type: str  # Alert, Update or Cancel
    scope: str
    references: tuple[Reference, ...]
    note: str
    infos: tuple[dict[str, Any], ...]

    @property
    def key(self) -> str:
        return f"{self.sender},{self.identifier}"

    def record(self) -> dict[str, Any]:
        """What the store keeps of it (JSON), from which :func:`from_record` rebuilds it."""
        return {
            "sender": self.sender,
            "identifier": self.identifier,
            "sent": self.sent,
            "status": self.status,
            "msg_type": self.msg_type,
            "scope": self.scope,
            "references": [r.text for r in self.references],
            "note": self.note,
            "infos": list(self.infos),
        }


def from_record(data: dict[str, Any]) -> CapMessage:
    refs = tuple(_reference(t) for t in data.get("references", ()))
    return CapMessage(
        data["sender"],
        data["identifier"],
        data["sent"],
        data["status"],
        data["msg_type"],
        data.get("scope", "Public"),
        refs,
        data.get("note", ""),
        tuple(data.get("infos", ())),
    )


def _tag(node: Element) -> str:
    return node.tag.rpartition("}")[2]


def _text(node: Element, path: str) -> str | None:
    found = node.find(path, _NS)
    return found.text.strip() if found is not None and found.text else None


def _need(node: Element, name: str) -> str:
    value = _text(node, f"cap:{name}")
    if value is None:
        raise CapError(f"{name} is missing", name)
    return value


def _children(node: Element, order: tuple[str, ...]) -> dict[str, Any]:
    """A CAP element's children as data: texts, lists of texts, pairs, nested resources and
    areas (elements of other namespaces, such as signatures, are left out)."""
    out: dict[str, Any] = {}
    for child in node:
        if not child.tag.startswith(f"{{{CAP_NS}}}") or (name := _tag(child)) not in order:
            continue
        if name in PAIRS or name == "geocode":
            pair = [_text(child, "cap:valueName") or "", _text(child, "cap:value") or ""]
            out.setdefault(name, []).append(pair)
        elif name == "resource":
            out.setdefault(name, []).append(_children(child, RESOURCE_ORDER))
        elif name == "area":
            out.setdefault(name, []).append(_children(child, AREA_ORDER))
        elif name in (*LISTS, "polygon", "circle"):
            if child.text and child.text.strip():
                out.setdefault(name, []).append(child.text.strip())
        elif child.text and child.text.strip():
            out[name] = child.text.strip()
    return out


def _reference(triple: str) -> Reference:
    parts = triple.split(",")
    if len(parts) != 3 or not all(parts):
        raise CapError(f"references {triple[:120]!r} is not 'sender,identifier,sent'", "references")
    return Reference(*parts)


def _root(body: bytes) -> Element:
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise CapError(f"not well-formed or unsafe XML: {exc}") from None
    if not isinstance(root, Element) or root.tag != f"{{{CAP_NS}}}alert":
        raise CapError(f"root element is {root.tag!r}, not a CAP 1.2 alert ({CAP_NS})")
    return root


@functools.lru_cache(maxsize=4)
def schema(path: Path) -> Any:
    """The OASIS CAP 1.2 schema alone: ``use_fallback=False`` keeps xmlschema from loading
    its bundled xmldsig schema for the signature wildcard (``processContents="lax"``)."""
    import xmlschema  # type: ignore[import-untyped,unused-ignore]

    return xmlschema.XMLSchema(str(path), use_fallback=False)


def _element_path(path: str | None) -> str:
    """``/{ns}alert/{ns}info[1]/{ns}severity`` as ``info[1].severity``."""
    steps = [s.rpartition("}")[2] for s in (path or "").split("/") if s]
    return ".".join(steps[1:]) or "alert"


def _schema_errors(root: Element, path: Path) -> Iterator[tuple[str, str]]:
    for error in schema(path).iter_errors(root):
        yield _element_path(error.path), str(error.reason or error.message)[:300]


def validate(root: Element, path: Path) -> None:
    """Raise :class:`CapError` listing up to ten schema errors, each by element path."""
    errors: list[tuple[str, str]] = []
    for found in _schema_errors(root, path):
        errors.append(found)
        if len(errors) == MAX_SCHEMA_ERRORS:
            break
    if errors:
        where, why = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CapError(f"not valid CAP 1.2: {where}: {why}{more}", where, tuple(errors))


def _checked_header(root: Element) -> tuple[str, str, str]:
    status, msg_type, scope = _need(root, "status"), _need(root, "msgType"), _need(root, "scope")
    if status not in BROADCAST_STATUSES:
        raise CapError(
            f"status {status[:40]!r} is not for broadcast (Actual, Exercise or Test)", "status"
        )
    if msg_type not in MSG_TYPES:
        raise CapError(f"msgType {msg_type[:40]!r} is not Alert, Update or Cancel", "msgType")
    if scope != "Public":
        raise CapError(
            f"scope {scope[:40]!r}: alertcast broadcasts to the public; only Public is taken",
            "scope",
        )
    return status, msg_type, scope


def read_cap(body: bytes, schema_path: Path | None = None) -> CapMessage:
    """Parse (and, with ``schema_path``, validate) a CAP 1.2 document; raises
    :class:`CapError` naming the element at fault."""
    root = _root(body)
    if schema_path is not None:
        validate(root, schema_path)
    status, msg_type, scope = _checked_header(root)
    refs = tuple(_reference(t) for t in (_text(root, "cap:references") or "").split())
    if msg_type != "Alert" and not refs:
        raise CapError(f"a {msg_type} names the messages it follows in references", "references")
    infos = tuple(_children(i, INFO_ORDER) for i in root.findall("cap:info", _NS))
    if msg_type != "Cancel" and not infos:
        raise CapError("info is missing: an alert or update needs one", "info")
    return CapMessage(
        sender=_need(root, "sender"),
        identifier=_need(root, "identifier"),
        sent=_need(root, "sent"),
        status=status,
        msg_type=msg_type,
        scope=scope,
        references=refs,
        note=_text(root, "cap:note") or "",
        infos=infos,
    )
