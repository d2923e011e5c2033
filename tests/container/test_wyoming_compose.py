"""The container files expose the Wyoming port when it is enabled: the image declares
10300 and carries zeroconf; the Compose override publishes 10300 and turns Wyoming on for
every service of docker-compose.yml (Compose merges ``ports`` by appending and
``environment`` key by key)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bragi.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_override_enables_wyoming_on_every_service() -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    override = yaml.safe_load((ROOT / "docker-compose.wyoming.yml").read_text())
    assert override["services"].keys() == base["services"].keys()
    for name, service in override["services"].items():
        assert service["ports"] == ["${BRAGI_WYOMING_PUBLISH:-10300}:10300"], name
        enabled = service["environment"]["BRAGI_WYOMING__ENABLED"]
        assert Settings.model_validate({"wyoming": {"enabled": enabled}}).wyoming.enabled


def test_the_image_declares_the_port_and_carries_zeroconf() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^EXPOSE 8000 10300$", dockerfile, re.MULTILINE)
    extras = re.search(r"^ARG EXTRAS=(\S+)$", dockerfile, re.MULTILINE)
    assert extras is not None and "zeroconf" in extras.group(1).split(",")
