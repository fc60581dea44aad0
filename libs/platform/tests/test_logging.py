"""Log lines cannot be forged and carry no session codes: control characters in a message are
escaped, a traceback's lines are indented, and "code" fields are scrubbed."""

from __future__ import annotations

import itertools
import json
import logging

from plugpay_platform.logging import (
    _CONTROL,
    _SECRET_PATTERNS,
    JsonFormatter,
    ScrubbingFormatter,
    escape_controls,
    loggable,
    scrub,
)

FORGED = "\n2026-12-02 10:00:00,000 ERROR auth_svc.app: admin password reset"


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("ocpp", logging.INFO, __file__, 1, msg, args, exc_info)


def test_a_message_with_line_breaks_stays_one_line() -> None:
    formatter = ScrubbingFormatter("%(levelname)s %(name)s: %(message)s")
    text = formatter.format(record("CP-1: receive message %s", f'[2,"1","Heartbeat",{{}}]{FORGED}'))
    assert len(text.splitlines()) == 1
    assert "\\n2026-12-02 10:00:00,000 ERROR auth_svc.app" in text
    assert not any(line.startswith("2026-12-02") for line in text.splitlines())


def test_a_traceback_cannot_start_a_line_at_the_margin() -> None:
    formatter = ScrubbingFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError(f"bad frame{FORGED}")
    except ValueError as error:
        text = formatter.format(record("unreadable frame", exc=error))
    lines = text.splitlines()
    assert lines[0] == "INFO ocpp: unreadable frame"
    assert len(lines) > 2 and all(line.startswith("  ") for line in lines[1:])


def test_json_lines_stay_one_line() -> None:
    text = JsonFormatter("station-gateway").format(record("frame %s", f"x{FORGED}\u2028y"))
    assert len(text.splitlines()) == 1
    assert json.loads(text)["msg"].startswith("frame x\n2026-12-02")


def test_session_codes_are_scrubbed_wherever_they_are_written() -> None:
    frames = [
        '[3,"1",{"status":"Accepted","data":"{\\"sessionId\\":\\"s\\",\\"code\\":\\"ACD34F\\"}"}]',
        '{"code": "ACD34F"}',
        "<Call - payload={'code': 'ACD34F'}>",
        '127.0.0.1:5000 - "GET /sessions/codes/ACD-34F HTTP/1.1" 200',
    ]
    for frame in frames:
        assert "ACD34F" not in scrub(frame) and "ACD-34F" not in scrub(frame), frame
    assert (
        scrub('"POST /sessions/codes/lookup HTTP/1.1"') == '"POST /sessions/codes/lookup HTTP/1.1"'
    )
    assert scrub('{"error_code": "NoError"}') == '{"error_code": "NoError"}'


def _every_pattern(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def test_skipping_a_line_with_nothing_to_scrub_never_lets_a_secret_through() -> None:
    # Pieces of every pattern, in every case, near misses and non-ASCII look-alikes: joined
    # three at a time, whatever scrub() skips the patterns would have left unchanged too.
    pieces = [
        "Authorization: Bearer ", "BASIC ", "PassWord=", "passwd:'", "SECRET=", "x_token ",
        "refresh_Token=", "Card_Number: ", "cvc=", '"Code": "', "'code':'", '\\"code\\":\\"',
        "errorCode", "ACD34F", "/sessions/codes/", "/Sessions/Codes/", "eyJhbGciOiJI.",
        "EYJ", "4242424242424242", "424242424242", " ", "\u212a", "pa\u017f\u017fword=",
        "\u0130", "é",
    ]  # fmt: skip
    for parts in itertools.product(pieces, repeat=3):
        text = "".join(parts)
        assert scrub(text) == _every_pattern(text), text


def test_skipping_a_printable_line_never_lets_a_control_character_through() -> None:
    pieces = ["a", " ", "\x00", "\n", "\r", "\x1b", "\x7f", "\x85", "\xa0", "\u2028", "\u2029", "é"]
    for parts in itertools.product(pieces, repeat=3):
        text = "".join(parts)
        expected = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
        assert escape_controls(text) == expected, repr(text)


def test_untrusted_text_is_escaped_and_truncated() -> None:
    text = loggable("a\r\nb\x1b[31m" + "x" * 1000, limit=50)
    assert text.startswith("a\\r\\nb\\x1b[31m") and text.endswith("...(+964 chars)")
    assert len(text.splitlines()) == 1
