"""OCPP frames in the gateway's log: one line each, codes redacted, long frames truncated."""

from __future__ import annotations

import json
import logging

from plugpay_platform.logging import ScrubbingFormatter
from station_gateway.frame_log import loggable_frame
from station_gateway.ocpp_endpoint import ocpp_log

FORGED = "\n2026-12-02 10:00:00,000 ERROR auth_svc.app: admin password reset"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += self.format(record).splitlines()


def test_the_ocpp_logger_writes_frames_escaped_and_without_codes() -> None:
    handler = Lines()
    ocpp_log.addHandler(handler)
    level = ocpp_log.level
    ocpp_log.setLevel(logging.DEBUG)
    try:
        forged = json.dumps([2, "1", "DataTransfer", {"vendorId": "x", "data": f"hi{FORGED}"}])
        ocpp_log.info("%s: receive message %s", "CP-1", forged)
        reply = {"sessionId": "s", "code": "ACD34F", "qr": "https://p/s/t"}
        answer = json.dumps([3, "2", {"status": "Accepted", "data": json.dumps(reply)}])
        ocpp_log.debug("%s <- %s", "CP-1", answer)
        display = {"message": {"format": "ASCII", "content": "Pay with phone: enter ACD34F"}}
        ocpp_log.debug("%s <- %s", "CP-1", json.dumps([2, "3", "SetDisplayMessage", display]))
    finally:
        ocpp_log.removeHandler(handler)
        ocpp_log.setLevel(level)
    assert len(handler.lines) == 3, handler.lines
    assert not any("ERROR auth_svc" in line.split(": ", 1)[0] for line in handler.lines)
    assert "\\n2026-12-02" in handler.lines[0]
    assert not any("ACD34F" in line for line in handler.lines), handler.lines
    assert "Pay with phone: enter ***" in handler.lines[2]


def test_a_long_or_unparseable_frame_is_truncated_and_escaped() -> None:
    text = loggable_frame("not json\r\n" + "x" * 5000)
    assert text.startswith("not json\\r\\n") and len(text) < 1100 and "(+" in text
    assert loggable_frame('[2,"1","Heartbeat",{}]') == '[2,"1","Heartbeat",{}]'


def test_a_web_payment_shared_secret_never_reaches_the_log() -> None:
    frame = json.dumps(
        [
            2,
            "m-1",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "https://pay.example.org/{totp}",
                        "component": {"name": "WebPaymentsCtrlr"},
                        "variable": {"name": "URLTemplate"},
                    },
                    {
                        "attributeValue": "the-shared-secret-0123456789",
                        "component": {"name": "WebPaymentsCtrlr"},
                        "variable": {"name": "SharedSecret"},
                    },
                ]
            },
        ]
    )
    logged = loggable_frame(frame)
    assert "the-shared-secret-0123456789" not in logged
    assert "https://pay.example.org/{totp}" in logged  # the rest stays readable


def test_frames_without_secrets_are_logged_as_sent_and_disguised_keys_are_still_found() -> None:
    status = (
        '[2,"7","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]'
    )
    assert loggable_frame(status) == status  # nothing to redact: not parsed, not re-serialised
    # A key spelled with JSON escapes, or a code inside JSON-in-a-string, is redacted all the same.
    escaped = '[3,"8",{"\\u0063ode":"ACD34F"}]'
    nested = json.dumps([3, "9", {"status": "Accepted", "data": json.dumps({"Code": "ACD34F"})}])
    for frame in (escaped, nested):
        assert json.loads(frame)  # a valid frame
        logged = loggable_frame(frame)
        assert "ACD34F" not in logged and "***" in logged, logged
