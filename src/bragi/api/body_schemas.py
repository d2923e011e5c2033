"""Request bodies described for the OpenAPI schema, for routes that read their body
themselves (after the key check) and so cannot let FastAPI describe it.

A pydantic model's JSON schema keeps its nested models under ``$defs`` and points at
them with ``#/$defs/...``, which inside an OpenAPI document points at nothing; these
bodies have their nested models written out in place.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["json_body"]

_DEFS = "#/$defs/"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return _inline(defs[ref.removeprefix(_DEFS)], defs) | _inline(rest, defs)
        return {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose required JSON body is ``model``."""
    schema = model.model_json_schema()
    inlined = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}
