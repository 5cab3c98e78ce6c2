#!/usr/bin/env bash
# Starts the example under uWSGI in the foreground (Ctrl-C stops it).
# Port: $MEMTAP_EXAMPLE_PORT, or a free one on loopback.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${MEMTAP_EXAMPLE_PORT:-}" ]; then
  MEMTAP_EXAMPLE_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export MEMTAP_EXAMPLE_PORT
echo "serving on http://127.0.0.1:$MEMTAP_EXAMPLE_PORT" >&2
exec uwsgi --ini uwsgi.ini "$@"
