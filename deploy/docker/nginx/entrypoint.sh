#!/bin/sh
# nginx in the foreground with its prefix (pid, logs, temporary files) under /tmp/nginx.
set -eu
mkdir -p /tmp/nginx/logs /tmp/nginx/tmp
exec nginx -p /tmp/nginx -c "$PLUGPAY_NGINX_CONF" -g 'daemon off; error_log stderr notice;' "$@"
