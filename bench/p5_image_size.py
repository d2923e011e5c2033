"""P5: image size. Measured by ``scripts/build-image``, not here: ``--image-size-json FILE``
reads its result, ``{"compressed_bytes": N}`` (or ``compressed_mb``). Target <= 400 MB."""

from __future__ import annotations

import json

from bench.context import Context
from bench.report import Figure, value_figure

__all__ = ["run"]


def run(ctx: Context) -> list[Figure]:
    target = "<= 400 MB"
    path = ctx.options.image_size_json
    size = None
    note = "see scripts/build-image (pass its result with --image-size-json)"
    if path is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "compressed_bytes" in data:
            size = float(data["compressed_bytes"]) / 1e6
        elif "compressed_mb" in data:
            size = float(data["compressed_mb"])
        else:
            raise SystemExit(f"bench: {path} has neither compressed_bytes nor compressed_mb")
        note = f"from {path.name}" + (f" ({data['image']})" if "image" in data else "")
    return [value_figure("P5", "image size, CPU image, compressed", "MB", size, target, note=note)]
