"""Run pricing-svc alone: ``pricing-svc`` or ``python -m pricing_svc``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

from plugpay_platform.server import serve


def main() -> None:
    serve("pricing-svc", "pricing_svc.app:create_app", env_prefix="PRICING_SVC_")


if __name__ == "__main__":
    main()
