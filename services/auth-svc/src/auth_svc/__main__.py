"""Run auth-svc alone: ``auth-svc`` or ``python -m auth_svc``

uvicorn, with settings from the environment. ``auth-svc rotate-signing-key`` starts signing
with a new key (the previous one stays in the JWKS until its tokens have expired).
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn
from plugpay_platform.logging import configure_logging


async def _rotate() -> None:
    from plugpay_platform.database import Database

    from auth_svc import service
    from auth_svc.settings import Settings

    settings = Settings()
    database = Database(settings.database_url.get_secret_value(), pool_size=1)
    try:
        async with database.write() as session:
            key = await service.rotate_signing_key(service.AuthContext(settings), session)
        print(f"now signing with {key.kid}")
    finally:
        await database.dispose()


def main() -> None:
    configure_logging("auth-svc", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
    if sys.argv[1:] == ["rotate-signing-key"]:
        asyncio.run(_rotate())
        return
    uvicorn.run(
        "auth_svc.app:create_app",
        factory=True,
        host=os.environ.get("AUTH_SVC_HOST", "127.0.0.1"),
        port=int(os.environ.get("AUTH_SVC_PORT", "8000")),
        log_config=None,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
