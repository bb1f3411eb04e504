"""The ``[cap]`` table: how CAP 1.2 comes in (its schema) and how alertcast issues it.

A leaf of pydantic tables (like :mod:`alertcast.feedconfig`, which :mod:`alertcast.config`
embeds the same way); what the keys *do* is in :mod:`alertcast.cap` and
:mod:`alertcast.cap_out`, and ``docs/cap.md`` explains each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CapConfig", "IdentifierStyle"]

IdentifierStyle = Literal["plain", "gbt35965"]
_NO_SPACE = r"^[^\s,<&]{1,200}$"  # CAP: identifier and sender hold no space, comma, < or &


class CapConfig(BaseModel):
    """``schema``: the OASIS ``cap12.xsd`` every CAP document in is validated against (unset:
    the mapping's own checks only). ``sender``/``sender_name``: who alertcast's own messages
    come from. ``identifier = "gbt35965"`` numbers them in the GB/T 35965.1 style from the
    ``area_code`` (GB/T 2260), ``agency_code`` (GB/T 4657), ``unit_code`` and ``extension``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_path: Path | None = Field(default=None, alias="schema")
    sender: str = Field(default="alertcast", pattern=_NO_SPACE)
    sender_name: str = Field(default="", max_length=200)
    identifier: IdentifierStyle = "plain"
    area_code: str = Field(default="", pattern=r"^(\d{6})?$")
    agency_code: str = Field(default="", pattern=r"^(\d{3})?$")
    unit_code: str = Field(default="000", pattern=r"^\d{3}$")
    extension: str = Field(default="00", pattern=r"^\d{2}$")
    utc_offset: str = Field(default="+08:00", pattern=r"^[-+](0\d|1[0-4]):[0-5]\d$")
    geocode_name: str = Field(default="GB/T 2260", min_length=1, max_length=60)

    @model_validator(mode="after")
    def _codes_for_gbt(self) -> CapConfig:
        if self.identifier == "gbt35965" and not (self.area_code and self.agency_code):
            raise ValueError('identifier = "gbt35965" needs area_code and agency_code')
        return self
