"""Run notification-svc alone: ``notification-svc`` or ``python -m notification_svc``

uvicorn, with settings from the environment.
"""

from __future__ import annotations

from plugpay_platform.server import serve


def main() -> None:
    serve("notification-svc", "notification_svc.app:create_app", env_prefix="NOTIFICATION_SVC_")


if __name__ == "__main__":
    main()
