"""Structured JSON logs with the correlation id, and secrets scrubbed before they are written."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

from opentelemetry import trace

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
_websocket_denied: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "websocket_denied", default=False
)
_SPURIOUS_DENIAL_ERROR = "ASGI callable returned without completing handshake."

# Anything that looks like a credential is replaced, whoever logged it (libraries included).
_SECRET_PATTERNS = [
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)\s+[^\s\"',]+"),
        r"\1\2 ***",
    ),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|refresh_token|access_token|card_number|cvc)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&}]+"
        ),
        r"\1***",
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "***jwt***"),
    (re.compile(r"\b\d{13,19}\b"), "***pan***"),
    # A typed session code is a live credential until used: any "code" field (JSON, a Python
    # repr, or JSON inside a JSON string), and the path of the retired GET lookup.
    (
        re.compile(r"""(?i)(\\*["']code\\*["']\s*[:=]\s*\\*["'])[^"'\\]+"""),
        r"\1***",
    ),
    (re.compile(r"(/sessions/codes/)(?!lookup\b)[^\s\"'?/]+"), r"\1***"),
]
# What an ASCII message must contain for any pattern above to match (lower-cased where the
# pattern ignores case); most lines (a station's status report, a request line) hold none, and
# these few substring tests cost a tenth of running the patterns.
_SECRET_MARKERS = (
    "authorization", "passw", "secret", "token", "card_number", "cvc", '"code', "'code",
)  # fmt: skip
_CASE_SENSITIVE_MARKERS = ("eyJ", "/sessions/codes/")
# Digits to "0" and the rest to " ": a run of 13 digits is then a plain substring test
# (several times faster than searching with a pattern).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_THIRTEEN_DIGITS = b"0" * 13
# Line breaks and other control characters in a message would start a forged log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _may_hold_secret(text: str) -> bool:
    if not text.isascii():  # case-insensitive matching beyond ASCII is not lower()'s
        return True
    if any(m in text for m in _CASE_SENSITIVE_MARKERS):
        return True
    if _THIRTEEN_DIGITS in text.encode("ascii").translate(_DIGITS_ONLY):
        return True
    lowered = text.lower()
    return any(m in lowered for m in _SECRET_MARKERS)


def scrub(text: str) -> str:
    """Remove passwords, tokens, session codes and card-number-like digits from a log message."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """Control characters (line breaks included) as visible escapes: one record, one line."""
    if text.isprintable():  # none of them (nor any other unprintable character) is there
        return text
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def loggable(text: str, limit: int = 500) -> str:
    """Untrusted text (a frame, a header) ready for a log line: secrets scrubbed, control
    characters escaped, at most ``limit`` characters plus a count of the rest."""
    text = escape_controls(scrub(text))
    if len(text) > limit:
        text = f"{text[:limit]}...(+{len(text) - limit} chars)"
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation/trace ids, service."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        if cid := correlation_id.get():
            entry["correlation_id"] = cid
        # The span current when the line was logged: jump from a log line to its trace.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry)


class ScrubbingFormatter(logging.Formatter):
    """Human-readable lines for a terminal, scrubbed like the JSON ones.

    The message is one line (control characters escaped) and a traceback's lines are indented,
    so every line that starts at the margin is a record the program wrote.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = logging.makeLogRecord(record.__dict__)  # other handlers keep the original
        line.msg, line.args = escape_controls(scrub(record.getMessage())), None
        line.exc_info, line.exc_text, line.stack_info = None, None, None
        text = super().format(line)
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for block in extra:
            text += "\n" + "\n".join("  " + part for part in scrub(block).splitlines())
        return text


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Install the platform's log format on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(service)
        if json_lines
        else ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def mark_websocket_denied() -> None:
    """Call before refusing a WebSocket handshake with an HTTP denial response.

    uvicorn's websockets-sansio protocol logs a spurious ERROR after every denial response
    (Kludex/uvicorn#3138); ``install_denial_filter`` drops that line for this connection only,
    so a refused station is not an error while a real incomplete handshake still is.
    """
    _websocket_denied.set(True)


class _DenialFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_websocket_denied.get() and record.getMessage() == _SPURIOUS_DENIAL_ERROR)


def install_denial_filter() -> None:
    """Drop uvicorn's spurious ERROR after a denial response (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialFilter) for f in logger.filters):
        logger.addFilter(_DenialFilter())
