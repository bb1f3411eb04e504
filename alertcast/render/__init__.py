"""Rendering: one incident, every platform's format, within every platform's limits, facts intact.

``Renderer(config).render(incident, account, ctx)`` returns one JSON-ready payload for the
account's format; ``Renderer.check`` lists configuration problems by path. See docs/rendering.md.
"""

from __future__ import annotations

from alertcast.render.context import RenderContext, RenderError
from alertcast.render.formats import RENDER_OPTIONS
from alertcast.render.renderer import Renderer, render_key

__all__ = ["RENDER_OPTIONS", "RenderContext", "RenderError", "Renderer", "render_key"]
