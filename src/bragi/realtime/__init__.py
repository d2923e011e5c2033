"""Live transcription over OpenAI's Realtime API: a WebSocket peer of ``api/``.

``GET /v1/realtime?intent=transcription`` takes audio as it is spoken and sends text
back while the person speaks and when each turn ends; ``POST /v1/realtime/client_secrets``
makes short-lived keys for browsers. Modules, outside in: ``endpoint`` (the socket:
auth, limits, reader and writer), ``session`` (events ─▶ state), ``session_config``
(``session.update`` in GA and beta shapes), ``events``, ``formats`` (PCM, G.711),
``buffer``, ``turn_detection`` (Silero), ``turn``, ``decoder`` (partial and final decodes,
one lease per decode), ``deltas`` (which partial text is safe to send), ``partials``
(each model's mode), ``service`` (what sessions share). The HTTP side (ephemeral keys)
is ``bragi.api.routes.realtime``; this package imports nothing from ``bragi.api``.
"""

from __future__ import annotations

from bragi.realtime.endpoint import router
from bragi.realtime.partials import PartialsMode, partials_mode
from bragi.realtime.service import RealtimeService

__all__ = ["PartialsMode", "RealtimeService", "partials_mode", "router"]
