"""Run auth-svc alone: ``auth-svc`` or ``python -m auth_svc``

uvicorn, with settings from the environment. ``auth-svc rotate-signing-key`` starts signing
with a new key (the previous one stays in the JWKS until its tokens have expired).
"""

from __future__ import annotations

import asyncio
import os
import sys

from plugpay_platform.logging import configure_logging
from plugpay_platform.server import serve


async def _rotate() -> None:
    from plugpay_platform.database import Database

    from auth_svc import service
    from auth_svc.settings import Settings

    settings = Settings()  # type: ignore[call-arg]
    database = Database(settings.database_url.get_secret_value(), pool_size=1)
    try:
        async with database.write() as session:
            key = await service.rotate_signing_key(service.AuthContext(settings), session)
        print(f"now signing with {key.kid}")
    finally:
        await database.dispose()


def main() -> None:
    if sys.argv[1:] == ["rotate-signing-key"]:
        configure_logging("auth-svc", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
        asyncio.run(_rotate())
        return
    serve("auth-svc", "auth_svc.app:create_app", env_prefix="AUTH_SVC_")


if __name__ == "__main__":
    main()
