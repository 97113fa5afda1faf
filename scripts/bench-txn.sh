#!/usr/bin/env bash
# Transactional produce beside idempotent produce (issue 12's benchmark; see
# BENCHMARKS.md, "Transactions"): scripts/bench.sh's matrix (strata and
# franz-go's kfake, fresh data dirs, page-cache floor, broker CPU per GB)
# run twice at 1 KiB records: once idempotent, once with every 10,000
# records in a transaction committed before the next begins (loadgen
# --txn-records). Each half prints its own table; compare the rows.
#
# Environment overrides: those of scripts/bench.sh (BENCH_BYTES defaults to
# 1000000000 here, BENCH_SIZES to 1024, BENCH_REPEAT to 2), and
#   BENCH_TXN_RECORDS  records per transaction (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_SIZES=${BENCH_SIZES:-1024}
export BENCH_BYTES=${BENCH_BYTES:-1000000000}
export BENCH_REPEAT=${BENCH_REPEAT:-2}
txn=${BENCH_TXN_RECORDS:-10000}
base=${BENCH_LOADGEN_ARGS:-}
echo "== bench-txn: idempotent produce"
BENCH_LOADGEN_ARGS="$base" scripts/bench.sh
echo
echo "== bench-txn: transactions of $txn records"
BENCH_LOADGEN_ARGS="$base --txn-records $txn" scripts/bench.sh
