"""Run station-gateway alone: ``station-gateway`` or ``python -m station_gateway``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

import os

import uvicorn
from plugpay_platform.logging import configure_logging


def main() -> None:
    configure_logging("station-gateway", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
    uvicorn.run(
        "station_gateway.app:create_app",
        factory=True,
        host=os.environ.get("STATION_GATEWAY_HOST", "127.0.0.1"),
        port=int(os.environ.get("STATION_GATEWAY_PORT", "8000")),
        log_config=None,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
