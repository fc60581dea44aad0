"""Run session-svc alone: ``session-svc`` or ``python -m session_svc``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

import os

import uvicorn
from plugpay_platform.logging import configure_logging


def main() -> None:
    configure_logging("session-svc", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
    uvicorn.run(
        "session_svc.app:create_app",
        factory=True,
        host=os.environ.get("SESSION_SVC_HOST", "127.0.0.1"),
        port=int(os.environ.get("SESSION_SVC_PORT", "8000")),
        log_config=None,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
