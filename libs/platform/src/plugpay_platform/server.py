"""The one HTTP entry point of every service's console script: logging, uvicorn, proxy trust."""

from __future__ import annotations

import os

import uvicorn

from plugpay_platform.logging import configure_logging
from plugpay_platform.settings import PlatformSettings


def serve(name: str, app_factory: str, *, env_prefix: str) -> None:
    """Run ``app_factory`` (``"pkg.app:create_app"``) under uvicorn on ``{env_prefix}HOST`` /
    ``{env_prefix}PORT`` (default 127.0.0.1:8000). X-Forwarded-For is believed only from the
    front door named by ``PLUGPAY_FORWARDED_ALLOW_IPS`` (nobody by default): the throttles count
    the address it yields."""
    configure_logging(name, level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
    uvicorn.run(
        app_factory,
        factory=True,
        host=os.environ.get(f"{env_prefix}HOST", "127.0.0.1"),
        port=int(os.environ.get(f"{env_prefix}PORT", "8000")),
        log_config=None,
        **PlatformSettings().server_proxy_options(),
    )
