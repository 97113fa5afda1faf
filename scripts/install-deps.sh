#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine with Go: the
# interop clients (kcat, kafka-python, confluent-kafka-python, KafkaJS on
# Node.js) and iproute2
# (`ip`: the chaos harness builds its network namespaces with it; without
# root or `ip` it falls back to loopback proxies). Idempotent: does nothing
# when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
/usr/bin/python3 -c 'import kafka' >/dev/null 2>&1 || need+=(python3-kafka)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need+=(python3-confluent-kafka)
# kafka-python's codecs: snappy, lz4 and zstd come from these modules.
/usr/bin/python3 -c 'import snappy' >/dev/null 2>&1 || need+=(python3-snappy)
/usr/bin/python3 -c 'import lz4.frame' >/dev/null 2>&1 || need+=(python3-lz4)
/usr/bin/python3 -c 'import zstandard' >/dev/null 2>&1 || need+=(python3-zstandard)
# KafkaJS runs on Debian's Node.js; the package itself comes from the npm
# registry, pinned by test/interop/js/package-lock.json.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
kafkajs() {
  if [ ! -d test/interop/js/node_modules/kafkajs ]; then
    echo "deps: installing kafkajs (npm ci in test/interop/js)"
    (cd test/interop/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: kcat, python3-kafka (with codecs), python3-confluent-kafka, iproute2, node present"
  kafkajs
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
kafkajs
