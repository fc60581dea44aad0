"""Finish a service's virtual environment for its image (run by the Dockerfile's builder stage
with the environment's own interpreter, after `uv sync` and after native code was stripped):

1. check that every native extension module still imports (the stripping of debug symbols is
   verified, not trusted);
2. delete what no running service reads: C/Cython sources and headers, type stubs, and the
   Swagger UI files the API docs page never serves (the package ships the Swagger *editor*,
   source maps and ES bundles: 23 MB of its 25 MB);
3. compile bytecode for the modules the service imports when it starts, and only those: the
   image's root filesystem is read-only, so anything not compiled here is compiled in memory at
   every start, while compiling every module of every dependency doubles the environment (half
   of stripe, fontTools and SQLAlchemy is never imported).

    python slim_venv.py <service> [--site-packages DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

# Files no running service reads (sources of compiled extensions, headers, type stubs).
UNUSED_SUFFIXES = (".c", ".cpp", ".h", ".pyx", ".pxd", ".pxi", ".pyi")

# Modules the services import lazily while starting (migrations, the Kafka bus, tracing when an
# OTLP endpoint is configured, SQLAlchemy's asyncpg dialect named by the database URL), on top of
# what loading the application imports.
STARTUP_MODULES = (
    "plugpay_platform.migrations",
    "plugpay_platform.bus",
    "plugpay_events.bus.kafka",
    "plugpay_events.bus.embedded",
    "alembic.context",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.script",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)


def extension_modules(site: Path) -> list[str]:
    """Dotted names of the native extension modules under ``site`` (not the vendored shared
    libraries of ``*.libs`` folders, which are loaded by the modules)."""
    names = []
    for path in sorted(site.rglob("*.so")):
        relative = path.relative_to(site)
        if any(part.endswith(".libs") or part.endswith(".dist-info") for part in relative.parts):
            continue
        module = relative.name.split(".", 1)[0]
        names.append(".".join([*relative.parts[:-1], module]))
    return names


# Imports each module named on the command line; a module whose package needs an optional
# dependency that is not installed (PIL's Tk support, greenlet's tests) was loaded far enough.
_IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or name == e.name or name.startswith(e.name + "."):
            raise
"""


def check_extensions(site: Path) -> int:
    """Import every extension module in a child interpreter that writes no bytecode."""
    names = extension_modules(site)
    subprocess.run([sys.executable, "-B", "-c", _IMPORT_ALL, *names], check=True)
    return len(names)


def swagger_assets_unserved(site: Path) -> list[Path]:
    """Files of the Swagger UI package that the docs page (plugpay_platform) never serves."""
    folder = site / "swagger_ui" / "static"
    if not folder.is_dir():
        return []
    from plugpay_platform.http_security import DOCS_ASSETS

    keep = set(DOCS_ASSETS) | {"LICENSE"}
    return [p for p in folder.iterdir() if p.is_file() and p.name not in keep]


def prune(site: Path) -> int:
    doomed = [p for p in site.rglob("*") if p.suffix in UNUSED_SUFFIXES and p.is_file()]
    doomed += swagger_assets_unserved(site)
    freed = 0
    for path in doomed:
        freed += path.stat().st_size
        path.unlink()
    return freed


def warm_bytecode(service: str) -> None:
    """Load the service as `plugpay-service` does (uvicorn's config loads the app factory, its
    event loop and protocols) and import all its own modules, in a child interpreter that writes
    ``__pycache__``."""
    package = service.replace("-", "_")
    prefix = package.upper()
    code = f"""
import importlib, pkgutil, uvicorn
import {package}
for name in {STARTUP_MODULES!r}:
    importlib.import_module(name)
# every module of the service, whichever a setting picks (billing's Stripe processor)
for info in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(info.name)
uvicorn.Config("{package}.app:create_app", factory=True, log_config=None).load()
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # The app factory validates its settings; nothing connects while it only builds the app.
    env.setdefault(f"{prefix}_DATABASE_URL", "postgresql+asyncpg://warmup@127.0.0.1:9/warmup")
    env["PLUGPAY_ENVIRONMENT"] = "development"
    # not from the build's source tree: the installed packages are what the image runs
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tempfile.gettempdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service")
    parser.add_argument(
        "--site-packages", type=Path, default=Path(sysconfig.get_paths()["purelib"])
    )
    args = parser.parse_args()
    site: Path = args.site_packages
    if any(site.rglob("*.pyc")):
        sys.exit(f"slim_venv: {site} already holds bytecode (install with UV_COMPILE_BYTECODE=0)")
    checked = check_extensions(site)
    freed = prune(site)
    warm_bytecode(args.service)
    compiled = sum(1 for _ in site.rglob("*.pyc"))
    print(
        f"slim_venv: {checked} extension modules import; {freed / 1e6:.1f} MB of unused files "
        f"removed; {compiled} modules compiled",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
