"""deploy/docker/slim_venv.py, which finishes a service image's virtual environment: what it
deletes, what it checks and what it compiles, on a small site-packages made here (the images
themselves are built and run by `make images` and the Compose e2e)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from deploy_support import ROOT
from plugpay_platform.http_security import DOCS_ASSETS


def load_slim() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "slim_venv", ROOT / "deploy" / "docker" / "slim_venv.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slim = load_slim()


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_prune_keeps_what_runs_and_the_served_docs_assets(tmp_path: Path) -> None:
    static = tmp_path / "swagger_ui" / "static"
    served = [touch(static / name, "x") for name in DOCS_ASSETS]
    kept = [
        touch(static / "LICENSE"),
        touch(tmp_path / "pkg" / "__init__.py"),
        touch(tmp_path / "pkg" / "data.json"),
        touch(tmp_path / "pkg" / "py.typed"),
        touch(tmp_path / "pkg" / "_speedups.cpython-311-x86_64-linux-gnu.so"),
    ]
    unused = [
        touch(static / "swagger-editor-bundle.js", "x" * 1000),
        touch(static / "swagger-ui-bundle.js.map", "x"),
        touch(tmp_path / "pkg" / "_speedups.c", "x"),
        touch(tmp_path / "pkg" / "_speedups.pyx"),
        touch(tmp_path / "pkg" / "include" / "speedups.h"),
        touch(tmp_path / "pkg" / "__init__.pyi"),
    ]

    freed = slim.prune(tmp_path)

    assert all(p.exists() for p in served + kept)
    assert not any(p.exists() for p in unused)
    assert freed == 1002


def test_the_docs_page_serves_files_the_swagger_package_has() -> None:
    # the pruning keeps DOCS_ASSETS; they must name files of the installed package
    from plugpay_platform.http_security import swagger_ui_folder

    assert all((swagger_ui_folder() / name).is_file() for name in DOCS_ASSETS)


def test_extension_modules_are_named_as_imported(tmp_path: Path) -> None:
    touch(tmp_path / "uvloop" / "loop.cpython-311-x86_64-linux-gnu.so")
    touch(tmp_path / "cryptography" / "hazmat" / "bindings" / "_rust.abi3.so")
    touch(tmp_path / "_cffi_backend.cpython-311-x86_64-linux-gnu.so")
    touch(tmp_path / "pillow.libs" / "libjpeg-6dc8d115.so.62.4.0")
    touch(tmp_path / "pillow.libs" / "libfoo.so")

    assert slim.extension_modules(tmp_path) == [
        "_cffi_backend",
        "cryptography.hazmat.bindings._rust",
        "uvloop.loop",
    ]


def import_all(site: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-B", "-c", slim._IMPORT_ALL, *names],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site)},
    )


def test_a_broken_extension_module_fails_the_check(tmp_path: Path) -> None:
    touch(tmp_path / "broken" / "__init__.py")
    touch(tmp_path / "broken" / "_speedups.cpython-311-x86_64-linux-gnu.so", "not an ELF file")

    out = import_all(tmp_path, "broken._speedups")

    assert out.returncode != 0 and "ImportError" in out.stderr


def test_a_module_needing_an_absent_optional_dependency_passes(tmp_path: Path) -> None:
    touch(tmp_path / "imaging" / "__init__.py")
    touch(tmp_path / "imaging" / "_tk.py", "import tkinter_not_installed_here\n")

    assert import_all(tmp_path, "imaging._tk").returncode == 0
    missing = import_all(tmp_path, "imaging._gone")
    assert missing.returncode != 0 and "imaging._gone" in missing.stderr


def test_bytecode_only_for_what_the_service_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a service package whose app imports one dependency module and not another
    touch(tmp_path / "demo_svc" / "__init__.py")
    touch(tmp_path / "demo_svc" / "__main__.py")
    touch(tmp_path / "demo_svc" / "extra.py", "import dep.used_lazily\n")
    touch(
        tmp_path / "demo_svc" / "app.py",
        "import os\nimport dep.used\n"
        "def create_app():\n"
        "    assert os.environ['DEMO_SVC_DATABASE_URL']\n"
        "    async def app(scope, receive, send): pass\n"
        "    return app\n",
    )
    touch(tmp_path / "dep" / "__init__.py")
    touch(tmp_path / "dep" / "used.py")
    touch(tmp_path / "dep" / "used_lazily.py")
    touch(tmp_path / "dep" / "unused.py")
    monkeypatch.setattr(slim, "STARTUP_MODULES", ())
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as in the runtime image

    slim.warm_bytecode("demo-svc")

    compiled = {p.name.split(".")[0] for p in tmp_path.rglob("*.pyc")}
    assert {"app", "extra", "used", "used_lazily", "__main__"} <= compiled
    assert "unused" not in compiled
