"""Home Assistant's Wyoming protocol beside the OpenAI API: one TCP port that serves every
speech-to-text and text-to-speech model Bragi has, through the same model manager.

``framing`` reads and writes events, ``events`` types their data, ``catalog`` builds the
``info``, ``choose`` picks the model and voice of a request, ``stt`` and ``tts`` answer
them, ``connection`` runs one client, ``server`` the listener ``bragi serve`` starts, and
``zeroconf`` announces it. See docs/wyoming.md.
"""

from bragi.wyoming.server import WyomingListener, check_settings

__all__ = ["WyomingListener", "check_settings"]
