"""Run station-gateway alone: ``station-gateway`` or ``python -m station_gateway``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

from plugpay_platform.server import serve


def main() -> None:
    serve("station-gateway", "station_gateway.app:create_app", env_prefix="STATION_GATEWAY_")


if __name__ == "__main__":
    main()
