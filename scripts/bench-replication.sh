#!/usr/bin/env bash
# Replication cost on this machine (see BENCHMARKS.md, "Replication"): the
# same load against one broker with rf=1, three brokers with rf=1 and three
# brokers with rf=3 and acks=all, all processes on loopback, with franz-go's
# kfake beside them (one process; its rf is metadata only, see
# test/bench/kfakeserver/doc.go).
#
# For each configuration, from a fresh data dir and a settled page cache:
#   1. start the brokers (strata: one `serve` process per broker; three-broker
#      clusters are combined broker+controller nodes with a 3-voter quorum),
#   2. throughput: test/bench/loadgen creates topic `bench` (BENCH_PARTITIONS
#      partitions, the configuration's rf; it first waits until the cluster
#      offers all its brokers), produces one warm-up record per partition and
#      waits for their acks (reported as "warm-up", not measured), produces
#      BENCH_BYTES closed loop with acks=all, then consumes everything; broker
#      CPU is the sum over the brokers' PIDs, per phase, per GB of that phase,
#   3. latency: on the same cluster, loadgen creates topic `bench-rate`, warms
#      it up the same way, and produces at a fixed rate (open loop,
#      BENCH_RATE records/s for BENCH_RATE_SECONDS), latency per record from
#      its due time to its acknowledgement,
#   4. stop the brokers, remove the data.
# The matrix runs BENCH_REPEAT times, the configuration order reversed on
# even runs, then one table of every run and one of the means.
#
# Environment overrides:
#   STRATA_BIN          strata binary (default: bin/strata, as built by `make build`)
#   BENCH_CONFIGS       configurations, in run order (default:
#                       "strata-b1-rf1 strata-b3-rf1 strata-b3-rf3 kfake-b1-rf1 kfake-b3-rf3");
#                       NAME-bBROKERS-rfRF with NAME strata or kfake
#   BENCH_BYTES         value bytes produced in the throughput run (default 1000000000)
#   BENCH_RECORD_SIZE   record value bytes (default 1024)
#   BENCH_PARTITIONS    partitions (default 6); BENCH_ACKS (all)
#   BENCH_RATE          records/s of the fixed-rate run (default 50000: 51.2 MB/s at 1 KiB)
#   BENCH_RATE_SECONDS  length of the fixed-rate run (default 15)
#   BENCH_RATE_ARGS     extra loadgen flags for the fixed-rate run (default "--linger 0s")
#   BENCH_LOADGEN_ARGS  extra loadgen flags for the throughput run
#   BENCH_STRATA_ARGS   extra `strata serve` flags for every strata node, e.g.
#                       "--set replica.fetch.wait.max.ms=100"
#   BENCH_TIMEOUT       loadgen gives up after this long per run (default 300s)
#   BENCH_REPEAT        repetitions of the matrix (default 2)
#   BENCH_FLOOR         1 (default): at the start of each repetition, measure what
#                       writing BENCH_BYTES into the page cache costs (loadgen --page-cache-floor)
#   BENCH_DIR, BENCH_KEEP  as in scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

GO=${GO:-go}
STRATA_BIN=${STRATA_BIN:-$ROOT/bin/strata}
BENCH_CONFIGS=${BENCH_CONFIGS:-"strata-b1-rf1 strata-b3-rf1 strata-b3-rf3 kfake-b1-rf1 kfake-b3-rf3"}
BENCH_BYTES=${BENCH_BYTES:-1000000000}
BENCH_RECORD_SIZE=${BENCH_RECORD_SIZE:-1024}
BENCH_PARTITIONS=${BENCH_PARTITIONS:-6}
BENCH_ACKS=${BENCH_ACKS:-all}
BENCH_RATE=${BENCH_RATE:-50000}
BENCH_RATE_SECONDS=${BENCH_RATE_SECONDS:-15}
BENCH_RATE_ARGS=${BENCH_RATE_ARGS:-"--linger 0s"}
BENCH_LOADGEN_ARGS=${BENCH_LOADGEN_ARGS:-}
BENCH_STRATA_ARGS=${BENCH_STRATA_ARGS:-}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300s}
BENCH_REPEAT=${BENCH_REPEAT:-2}
BENCH_FLOOR=${BENCH_FLOOR:-1}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/strata-bench-repl.XXXXXX")}
mkdir -p "$BENCH_DIR"
RESULTS=$BENCH_DIR/results.tsv
: >"$RESULTS"

PIDS=()
failures=0
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$BENCH_DIR"/data-*
	if [[ $BENCH_KEEP != 1 && $failures == 0 ]]; then
		rm -rf "$BENCH_DIR"
	else
		echo "bench: logs and results.tsv kept in $BENCH_DIR"
	fi
}
trap cleanup EXIT

# start_cluster NAME BROKERS DATA LOGPREFIX: starts the brokers, sets PIDS and
# SEEDS (comma-separated Kafka addresses), waits until every port accepts.
start_cluster() {
	local name=$1 n=$2 data=$3 logp=$4 i all ports ctrls quorum=""
	PIDS=()
	SEEDS=""
	# Kafka and controller ports, distinct (picked with all listeners open).
	read -ra all <<<"$("$BENCH_DIR/loadgen" --free-ports $((2 * n)))"
	ports=("${all[@]:0:n}")
	ctrls=("${all[@]:n:n}")
	for ((i = 1; i <= n; i++)); do
		SEEDS+="${SEEDS:+,}127.0.0.1:${ports[i - 1]}"
	done
	case $name in
	strata)
		if ((n == 1)); then
			# shellcheck disable=SC2086
			"$STRATA_BIN" serve --listen "127.0.0.1:${ports[0]}" --data-dir "$data/node1" $BENCH_STRATA_ARGS >"$logp-node1.log" 2>&1 &
			PIDS+=($!)
		else
			for ((i = 1; i <= n; i++)); do
				quorum+="${quorum:+,}$i@127.0.0.1:${ctrls[i - 1]}"
			done
			for ((i = 1; i <= n; i++)); do
				# shellcheck disable=SC2086
				"$STRATA_BIN" serve --node-id "$i" --listen "127.0.0.1:${ports[i - 1]}" --data-dir "$data/node$i" \
					--controller-quorum "$quorum" --controller-listen "127.0.0.1:${ctrls[i - 1]}" \
					$BENCH_STRATA_ARGS >"$logp-node$i.log" 2>&1 &
				PIDS+=($!)
			done
		fi
		;;
	kfake)
		local list
		list=$(tr ' ' ',' <<<"${ports[*]}")
		"$BENCH_DIR/kfakeserver" --ports "$list" --data-dir "$data" >"$logp-node1.log" 2>&1 &
		PIDS+=($!)
		;;
	*) echo "bench: unknown broker $name" >&2; return 1 ;;
	esac
	for ((i = 1; i <= n; i++)); do
		local pid=${PIDS[0]} log=$logp-node1.log
		if [[ $name == strata ]]; then
			pid=${PIDS[i - 1]} log=$logp-node$i.log
		fi
		wait_port "$pid" "${ports[i - 1]}" "$name node $i" "$log" || return 1
	done
}

stop_cluster() {
	local name=$1 logp=$2 i
	for ((i = 0; i < ${#PIDS[@]}; i++)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null || true
	done
	for ((i = 0; i < ${#PIDS[@]}; i++)); do
		wait_pid "${PIDS[i]}" "$name node $((i + 1))" "$logp-node$((i + 1)).log"
	done
	PIDS=()
}

echo "bench: building loadgen and kfakeserver into $BENCH_DIR"
"$GO" build -o "$BENCH_DIR/loadgen" ./test/bench/loadgen
"$GO" build -o "$BENCH_DIR/kfakeserver" ./test/bench/kfakeserver
if [[ " $BENCH_CONFIGS " == *" strata-"* && ! -x $STRATA_BIN ]]; then
	echo "bench: $STRATA_BIN not found; run 'make build' (or 'make bench-replication') first" >&2
	exit 1
fi

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "bench: $(nproc) CPUs ($cpu_model), $(uname -sr), $("$GO" env GOVERSION), CLK_TCK=$CLK_TCK"
echo "bench: configs=[$BENCH_CONFIGS] bytes=$BENCH_BYTES record=$BENCH_RECORD_SIZE partitions=$BENCH_PARTITIONS acks=$BENCH_ACKS rate=$BENCH_RATE/s for ${BENCH_RATE_SECONDS}s"
echo "bench: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rate_records=$(awk -v r="$BENCH_RATE" -v s="$BENCH_RATE_SECONDS" 'BEGIN { printf "%d", r * s }')

for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
	order=$BENCH_CONFIGS
	if ((rep % 2 == 0)); then
		order=$(tr ' ' '\n' <<<"$BENCH_CONFIGS" | tac | tr '\n' ' ')
	fi
	floor=-
	if [[ $BENCH_FLOOR == 1 ]]; then
		rm -rf "$BENCH_DIR/data-floor"
		sync
		settle
		floor=$(page_cache_floor "$BENCH_DIR/data-floor" "$BENCH_BYTES" "$BENCH_DIR/loadgen")
		rm -rf "$BENCH_DIR/data-floor"
		echo "bench: run $rep: page-cache floor $floor s/GB"
	fi
	for cfg in $order; do
		if [[ ! $cfg =~ ^(strata|kfake)-b([0-9]+)-rf([0-9]+)$ ]]; then
			echo "bench: bad configuration $cfg (want NAME-bN-rfN)" >&2
			exit 1
		fi
		name=${BASH_REMATCH[1]} nb=${BASH_REMATCH[2]} rf=${BASH_REMATCH[3]}
		data=$BENCH_DIR/data-$cfg
		logp=$BENCH_DIR/$cfg-run$rep
		rm -rf "$data"
		mkdir -p "$data"
		sync
		settle
		echo "bench: run $rep: $cfg ($(cut -d' ' -f1-3 /proc/loadavg))"
		if ! start_cluster "$name" "$nb" "$data" "$logp"; then
			printf '%s\t%s\tFAIL\n' "$cfg" "$rep" >>"$RESULTS"
			failures=$((failures + 1))
			stop_cluster "$name" "$logp"
			continue
		fi
		pids=$(tr ' ' ',' <<<"${PIDS[*]}")
		common=(--brokers "$SEEDS" --wait-brokers "$nb" --rf "$rf" --partitions "$BENCH_PARTITIONS"
			--record-size "$BENCH_RECORD_SIZE" --acks "$BENCH_ACKS" --timeout "$BENCH_TIMEOUT" --broker-pid "$pids")
		# shellcheck disable=SC2086
		if out=$("$BENCH_DIR/loadgen" "${common[@]}" --topic bench --bytes "$BENCH_BYTES" $BENCH_LOADGEN_ARGS 2> >(tee -a "$logp-loadgen.log" >&2)) &&
			echo "$out" &&
			rout=$("$BENCH_DIR/loadgen" "${common[@]}" --topic bench-rate --records "$rate_records" --rate "$BENCH_RATE" --consume=false $BENCH_RATE_ARGS 2> >(tee -a "$logp-loadgen.log" >&2)); then
			echo "$rout"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$rep" \
				"$(json_field "$out" produce_mb_s)" "$(json_field "$out" consume_mb_s)" \
				"$(json_field "$out" produce_cpu_ticks)" "$(json_field "$out" consume_cpu_ticks)" "$(json_field "$out" client_produce_cpu_ticks)" \
				"$(json_field "$out" produce_bytes)" "$(json_field "$out" consume_bytes)" \
				"$(json_field "$rout" produce_mb_s)" "$(json_field "$rout" produce_p50_ms)" "$(json_field "$rout" produce_p90_ms)" \
				"$(json_field "$rout" produce_p99_ms)" "$(json_field "$rout" produce_p999_ms)" "$(json_field "$rout" produce_max_ms)" \
				"$(json_field "$rout" produce_cpu_ticks)" "$(json_field "$rout" produce_bytes)" "$floor" \
				"$(json_field "$out" warmup_ms)" "$(json_field "$rout" warmup_ms)" >>"$RESULTS"
		else
			echo "bench: run failed against $cfg (loadgen error or broker gone); log tails:" >&2
			for f in "$logp"-loadgen.log "$logp"-node*.log; do
				echo "== $f" >&2
				tail -n 20 "$f" >&2
			done
			printf '%s\t%s\tFAIL\n' "$cfg" "$rep" >>"$RESULTS"
			failures=$((failures + 1))
		fi
		stop_cluster "$name" "$logp"
		rm -rf "$data"
	done
done
echo "bench: load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "Results (MB = 10^6 B of record values; broker CPU = utime+stime summed over the brokers' processes, per GB"
echo "(10^9 B of values) of that phase; client s/GB: loadgen's own CPU per GB produced; at-rate columns: the"
echo "fixed-rate run, open loop at $BENCH_RATE records/s, latency from each record's due time to its ack;"
echo "warm-up 1st/2nd: time for one acks=$BENCH_ACKS record per partition right after creating the topic of the"
echo "throughput run (fresh cluster) and of the fixed-rate run (second topic on the same cluster), before measuring)"
awk -F'\t' -v cfgs="$BENCH_CONFIGS" -v hz="$CLK_TCK" '
	{ row[$1 SUBSEP $2] = $0; if ($2 > maxrep) maxrep = $2 }
	END {
		hdr = "%-14s %3s %8s %8s %8s %8s %8s | %8s %7s %7s %7s %7s %7s %8s | %6s | %7s %7s\n"
		printf hdr, "config", "run", "prod", "cons", "prod", "cons", "client", "at-rate", "p50", "p90", "p99", "p99.9", "max", "prod", "floor", "warm-up", "warm-up"
		printf hdr, "", "", "MB/s", "MB/s", "s/GB", "s/GB", "s/GB", "MB/s", "ms", "ms", "ms", "ms", "ms", "s/GB", "s/GB", "1st ms", "2nd ms"
		n = split(cfgs, C, " ")
		for (i = 1; i <= n; i++) for (r = 1; r <= maxrep; r++) {
			k = C[i] SUBSEP r
			if (!(k in row)) continue
			split(row[k], f, "\t")
			if (f[3] == "FAIL") { printf "%-14s %3s FAILED\n", f[1], f[2]; continue }
			line(f, f[1], f[2])
			c = f[1]; cnt[c]++
			for (j = 3; j <= 20; j++) sum[c, j] += f[j]
		}
		print ""
		print "Means over runs"
		printf hdr, "config", "n", "prod", "cons", "prod", "cons", "client", "at-rate", "p50", "p90", "p99", "p99.9", "max", "prod", "floor", "warm-up", "warm-up"
		printf hdr, "", "", "MB/s", "MB/s", "s/GB", "s/GB", "s/GB", "MB/s", "ms", "ms", "ms", "ms", "ms", "s/GB", "s/GB", "1st ms", "2nd ms"
		for (i = 1; i <= n; i++) {
			c = C[i]
			if (!(c in cnt)) continue
			for (j = 3; j <= 20; j++) m[j] = sum[c, j] / cnt[c]
			line(m, c, cnt[c])
		}
	}
	function line(f, c, r) {
		printf "%-14s %3s %8.1f %8.1f %8.3f %8.3f %8.3f | %8.1f %7.2f %7.2f %7.2f %7.2f %7.2f %8.3f | %6s | %7.1f %7.1f\n", c, r,
			f[3], f[4], f[5] / hz / (f[8] / 1e9), (f[9] > 0 ? f[6] / hz / (f[9] / 1e9) : 0), f[7] / hz / (f[8] / 1e9),
			f[10], f[11], f[12], f[13], f[14], f[15], f[16] / hz / (f[17] / 1e9), (f[18] == "-" ? "-" : sprintf("%.3f", f[18])), f[19], f[20]
	}
' "$RESULTS"
if ((failures > 0)); then
	echo "bench: $failures run(s) failed" >&2
	exit 1
fi
