"""The JSON response class every route uses: orjson encoding, no detour through ``json``."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class Json(JSONResponse):
    """``JSONResponse`` rendered with orjson (datetimes as ISO 8601)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
