#!/bin/sh
# Entrypoint of the service images (/usr/local/bin/plugpay-entrypoint).
# - NAME_FILE=/run/secrets/x sets NAME to the file's content (Compose and Kubernetes secrets
#   arrive as files; the services read settings from the environment only); an empty file
#   leaves NAME unset (an optional secret not given);
# - <SERVICE>_HOST and <SERVICE>_PORT default to 0.0.0.0 and 8000 (Compose on the host network
#   sets them to a loopback address and a port of its own).
set -eu
for var in $(env | sed -n 's/^\([A-Z][A-Z0-9_]*\)_FILE=.*/\1/p'); do
  eval "file=\${${var}_FILE}"
  [ -r "$file" ] || { echo "plugpay-entrypoint: ${var}_FILE=$file is not readable" >&2; exit 1; }
  value=$(cat "$file")
  unset "${var}_FILE"
  if [ -n "$value" ]; then export "$var=$value"; fi
done
prefix=$(echo "${PLUGPAY_SERVICE:?}" | tr 'a-z-' 'A-Z_')
eval "[ -n \"\${${prefix}_HOST:-}\" ]" || export "${prefix}_HOST=0.0.0.0"
eval "[ -n \"\${${prefix}_PORT:-}\" ]" || export "${prefix}_PORT=8000"
exec "$@"
