"""OCPP frames as log text: a station writes them, so they are untrusted.

The ``ocpp`` library logs whole frames (every received one at INFO, failed ones with their
payload). A frame may carry line breaks that would forge log lines, and the gateway's own
frames carry typed session codes, which are live credentials. ``FrameLogFilter`` rewrites the
arguments of every record on the gateway's OCPP logger: codes redacted (a ``code`` field, also
inside DataTransfer's JSON-in-a-string ``data``, and in display-message text), control
characters escaped, long frames truncated. A station's web payment shared secret (SetVariables,
GetVariables) is redacted too.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from plugpay_events.session_code import TYPED_CODE_ALPHABET, TYPED_CODE_LENGTH
from plugpay_platform.logging import loggable

FRAME_LOG_LIMIT = 1000
REDACTED = "***"
_TYPED_CODE = re.compile(rf"\b[{TYPED_CODE_ALPHABET}]{{{TYPED_CODE_LENGTH}}}\b")
# A frame holding none of these has nothing to redact (no code field, no display text, no
# shared secret, no JSON inside a string, no escaped key that could spell one): most frames
# (heartbeats, statuses, meter values) skip the parse and re-serialisation.
_MAY_HOLD_SECRETS = ('"code"', '"content"', "sharedsecret", '"{', '"[', "\\u")


def _secret_variable(value: dict[Any, Any]) -> bool:
    # SetVariables/GetVariables data for a WebPaymentsCtrlr SharedSecret (OCPP 2.1 C25).
    variable = value.get("variable")
    return isinstance(variable, dict) and str(variable.get("name", "")).lower() == "sharedsecret"


def _redact(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict) and _secret_variable(value):
        value = {k: REDACTED if k == "attributeValue" else v for k, v in value.items()}
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() == "code" and isinstance(v, str) else _redact(v, str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    if isinstance(value, str):
        if key == "content":  # SetDisplayMessage text shows the typed code to the driver
            return _TYPED_CODE.sub(REDACTED, value)
        if value.startswith(("{", "[")):  # 1.6 DataTransfer data: JSON inside a string
            try:
                inner = json.loads(value)
            except ValueError:
                return value
            return json.dumps(_redact(inner), separators=(",", ":"))
    return value


def loggable_frame(raw: str, limit: int = FRAME_LOG_LIMIT) -> str:
    """A frame (or any text a station sent) safe for one log line."""
    lowered = raw.lower()
    if not any(marker in lowered for marker in _MAY_HOLD_SECRETS):
        return loggable(raw, limit)
    try:
        frame = json.loads(raw)
    except ValueError:
        return loggable(raw, limit)
    return loggable(json.dumps(_redact(frame), separators=(",", ":")), limit)


class FrameLogFilter(logging.Filter):
    """Renders every argument of a record with ``loggable_frame`` (numbers pass as they are)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = {k: self._render(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(self._render(arg) for arg in record.args)
        return True

    @staticmethod
    def _render(arg: Any) -> Any:
        if isinstance(arg, int | float):
            return arg
        return loggable_frame(str(arg))
