#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/web), from Debian's packages: browser downloads
# (playwright install) do not work here. Idempotent: does nothing when it is already there.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo -n); fi
echo "installing chromium (Debian package)..."
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
