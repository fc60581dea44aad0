"""Fail when an image holds a secret: `python3 deploy/docker/check_secrets.py IMAGE...`.

Looks at what anyone who can pull the image can read:
- the configuration's environment (a variable named like a password, secret, token or key
  with a value) and the build history (a secret passed as a build argument);
- the filesystem (``docker export``): key and credential files by name, PEM private keys in our
  own trees (/app, /opt, /etc, /usr/local, /srv, /tmp), and any secret this machine's local
  deployments generated (.local/**/secrets/*) appearing in a file anywhere.
Standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|API_KEY|SIGNING_KEY)", re.I)
SECRET_FILES = {"id_rsa", "id_ecdsa", "id_ed25519", ".env", ".netrc", ".pypirc", ".git-credentials"}
KEY_SUFFIXES = (".key", ".p12", ".pfx", ".jks")
# A key itself (base64 body), not a library's parser naming the marker.
PRIVATE_KEY = re.compile(
    rb"-----BEGIN (RSA |EC |OPENSSH |ENCRYPTED )?PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}"
)
OUR_TREES = ("app/", "opt/", "etc/", "usr/local/", "srv/", "tmp/")
# Debian's snakeoil certificate and Java's trust store are public data, not credentials.
ALLOWED = ("etc/ssl/", "usr/share/ca-certificates/", "etc/ca-certificates", "usr/lib/jvm/")


def local_secrets() -> list[bytes]:
    values = []
    for path in (ROOT / ".local").glob("**/secrets/*"):
        if path.is_file():
            value = path.read_bytes().strip()
            if len(value) >= 12:
                values.append(value)
    return values


def check(image: str, known: list[bytes]) -> list[str]:
    problems: list[str] = []
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", image], check=True, capture_output=True
        ).stdout
    )[0]["Config"]
    for entry in config.get("Env") or []:
        name, _, value = entry.partition("=")
        if SECRET_NAME.search(name) and value:
            problems.append(f"environment variable {name} has a value")
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in history.splitlines():
        for match in re.finditer(r"\b([A-Z_]+)=(\S+)", line):
            if SECRET_NAME.search(match.group(1)):
                problems.append(f"build history sets {match.group(1)}")
    container = subprocess.run(
        ["docker", "create", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        assert export.stdout is not None
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                path = member.name.lstrip("./")
                base = path.rsplit("/", 1)[-1]
                if path.startswith(ALLOWED):
                    continue
                if base in SECRET_FILES or base.endswith(KEY_SUFFIXES) or "/secrets/" in f"/{path}":
                    problems.append(f"file {path}")
                scan = path.startswith(OUR_TREES) and member.size < 2_000_000
                if not (scan or known) or member.size > 20_000_000:
                    continue
                data = tar.extractfile(member)
                content = data.read() if data else b""
                if scan and PRIVATE_KEY.search(content):
                    problems.append(f"private key in {path}")
                if any(value in content for value in known):
                    problems.append(f"a local deployment's secret in {path}")
        export.wait()
    finally:
        subprocess.run(["docker", "rm", "-v", container], check=True, capture_output=True)
    return problems


def main(images: list[str]) -> int:
    known = local_secrets()
    failed = False
    for image in images:
        problems = check(image, known)
        for problem in problems:
            print(f"check_secrets: {image}: {problem}", file=sys.stderr)
        failed |= bool(problems)
    if not failed:
        print(f"check_secrets: no secrets in {len(images)} images", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
