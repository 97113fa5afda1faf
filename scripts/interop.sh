#!/usr/bin/env bash
# Interop suite: starts a real `strata serve` process on a free loopback port
# with a fresh data dir, then drives it with kcat, kafka-python and
# confluent-kafka-python (test/interop/interop.py). Prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${STRATA_BIN:-$PWD/bin/strata}
PY=/usr/bin/python3   # Debian's kafka modules import only under the system python
exec "$PY" test/interop/interop.py --bin "$BIN" "$@"
