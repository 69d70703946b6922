"""The JSON Schema of ``sweep analyze --format json`` (schema.json, shipped as package data)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def json_schema() -> dict:
    return json.loads(resources.files("sweep.analysis").joinpath("schema.json").read_text(encoding="utf-8"))
