"""Run billing-svc alone: ``billing-svc`` or ``python -m billing_svc``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

from plugpay_platform.server import serve


def main() -> None:
    serve("billing-svc", "billing_svc.app:create_app", env_prefix="BILLING_SVC_")


if __name__ == "__main__":
    main()
