#!/usr/bin/env bash
# Strata vs franz-go's kfake, side by side, on this machine (see BENCHMARKS.md).
#
# For each record size and each broker, on a fresh data dir: start the broker,
# read its CPU time from /proc/<pid>/stat, run test/bench/loadgen (create a
# topic, produce, then consume everything), read the CPU time again, stop the
# broker. Repeat the matrix BENCH_REPEAT times, then print one table and the
# strata/kfake ratios of the means.
#
# Environment overrides:
#   STRATA_BIN         strata binary (default: bin/strata, as built by `make build`)
#   BENCH_SIZES        record sizes in bytes (default: "1024 100")
#   BENCH_BYTES        value bytes produced per run, for every size (overrides the next two)
#   BENCH_BYTES_1024   value bytes for 1024 B records (default 4000000000)
#   BENCH_BYTES_100    value bytes for 100 B records (default 3000000000)
#                      (other sizes: BENCH_BYTES_<size>, default 2000000000)
#   BENCH_BROKERS      which brokers, in run order (default: "strata kfake")
#   BENCH_PARTITIONS   partitions (default 6); BENCH_ACKS (all); BENCH_COMPRESSION (none)
#   BENCH_LOADGEN_ARGS extra loadgen flags, e.g. "--linger 1ms"
#   BENCH_TIMEOUT      loadgen gives up after this long per run (default 300s)
#   BENCH_REPEAT       repetitions of the whole matrix (default 2; the broker order alternates)
#   BENCH_DIR          scratch dir for binaries, data dirs and logs (default: mktemp -d)
#   BENCH_FLOOR        1 (default): before each run, measure what writing the run's volume
#                      into the page cache costs by itself (loadgen --page-cache-floor)
#   BENCH_BROKER_CPUS  pin the broker (and the floor's writer, which stands in for it) to these
#                      CPUs (taskset -c list, e.g. 0); BENCH_CLIENT_CPUS pins the load generator
#                      (e.g. 1), so that a phase's broker CPU is the broker's and not the client's
#   BENCH_KEEP         1: keep BENCH_DIR (logs, results.tsv) afterwards; it is also kept
#                      when a run failed. Data dirs are always removed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

GO=${GO:-go}
STRATA_BIN=${STRATA_BIN:-$ROOT/bin/strata}
BENCH_SIZES=${BENCH_SIZES:-"1024 100"}
BENCH_BROKERS=${BENCH_BROKERS:-"strata kfake"}
BENCH_PARTITIONS=${BENCH_PARTITIONS:-6}
BENCH_ACKS=${BENCH_ACKS:-all}
BENCH_COMPRESSION=${BENCH_COMPRESSION:-none}
BENCH_LOADGEN_ARGS=${BENCH_LOADGEN_ARGS:-}
BENCH_REPEAT=${BENCH_REPEAT:-2}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300s}
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_FLOOR=${BENCH_FLOOR:-1}
BENCH_BROKER_CPUS=${BENCH_BROKER_CPUS:-}
BENCH_CLIENT_CPUS=${BENCH_CLIENT_CPUS:-}
# pin CPUS: the taskset prefix for a command (taskset execs it: one pid), or nothing.
pin() { [[ -n $1 ]] && printf 'taskset\n-c\n%s\n' "$1"; return 0; }
mapfile -t PIN_BROKER < <(pin "$BENCH_BROKER_CPUS")
mapfile -t PIN_CLIENT < <(pin "$BENCH_CLIENT_CPUS")
BENCH_DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")}
mkdir -p "$BENCH_DIR"
RESULTS=$BENCH_DIR/results.tsv
FLOORS=$BENCH_DIR/floors.tsv
: >"$RESULTS"
: >"$FLOORS"

BROKER_PID=
failures=0
cleanup() {
	if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -KILL "$BROKER_PID" 2>/dev/null || true
	fi
	rm -rf "$BENCH_DIR"/data-*
	if [[ $BENCH_KEEP != 1 && $failures == 0 ]]; then
		rm -rf "$BENCH_DIR"
	else
		echo "bench: logs and results.tsv kept in $BENCH_DIR"
	fi
}
trap cleanup EXIT

bytes_for() {
	local size=$1 var="BENCH_BYTES_$1"
	if [[ -n ${BENCH_BYTES:-} ]]; then
		echo "$BENCH_BYTES"
	elif [[ -n ${!var:-} ]]; then
		echo "${!var}"
	else
		case $size in
		1024) echo 4000000000 ;;
		100) echo 3000000000 ;;
		*) echo 2000000000 ;;
		esac
	fi
}

# start_broker NAME PORT DATADIR LOG: sets BROKER_PID, waits until the port accepts.
start_broker() {
	local name=$1 port=$2 dir=$3 log=$4
	case $name in
	strata) "${PIN_BROKER[@]}" "$STRATA_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" >"$log" 2>&1 & ;;
	kfake) "${PIN_BROKER[@]}" "$BENCH_DIR/kfakeserver" --port "$port" --data-dir "$dir" >"$log" 2>&1 & ;;
	*) echo "bench: unknown broker $name" >&2; return 1 ;;
	esac
	BROKER_PID=$!
	if ! wait_port "$BROKER_PID" "$port" "$name" "$log"; then
		kill -0 "$BROKER_PID" 2>/dev/null || BROKER_PID=
		return 1
	fi
}

# stop_broker NAME LOG: SIGTERM, wait up to 30s, then SIGKILL.
stop_broker() {
	stop_pid "$BROKER_PID" "$1" "$2"
	BROKER_PID=
}

echo "bench: building loadgen and kfakeserver into $BENCH_DIR"
"$GO" build -o "$BENCH_DIR/loadgen" ./test/bench/loadgen
"$GO" build -o "$BENCH_DIR/kfakeserver" ./test/bench/kfakeserver
if [[ " $BENCH_BROKERS " == *" strata "* && ! -x $STRATA_BIN ]]; then
	echo "bench: $STRATA_BIN not found; run 'make build' (or 'make bench') first" >&2
	exit 1
fi

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "bench: $(nproc) CPUs ($cpu_model), $(uname -sr), $("$GO" env GOVERSION), CLK_TCK=$CLK_TCK"
echo "bench: broker CPUs [${BENCH_BROKER_CPUS:-any}], load generator CPUs [${BENCH_CLIENT_CPUS:-any}]"
echo "bench: partitions=$BENCH_PARTITIONS acks=$BENCH_ACKS compression=$BENCH_COMPRESSION sizes=[$BENCH_SIZES] brokers=[$BENCH_BROKERS]"

for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
	# Alternate the broker order between repetitions so that neither broker
	# always runs first (page cache, writeback and neighbours vary over time).
	order=$BENCH_BROKERS
	if ((rep % 2 == 0)); then
		order=$(tr ' ' '\n' <<<"$BENCH_BROKERS" | tac | tr '\n' ' ')
	fi
	for size in $BENCH_SIZES; do
		bytes=$(bytes_for "$size")
		for broker in $order; do
			data=$BENCH_DIR/data-$broker-$size
			log=$BENCH_DIR/$broker-$size-run$rep.log
			rm -rf "$data"
			sync
			settle
			if [[ $BENCH_FLOOR == 1 ]]; then
				# What writing this run's volume into the page cache costs on
				# its own, from the same state: the floor under both brokers.
				printf '%s\t%s\t%s\t%s\n' "$broker" "$size" "$rep" "$(page_cache_floor "$data" "$bytes" "$BENCH_DIR/loadgen" "$BENCH_BROKER_CPUS")" >>"$FLOORS"
				rm -rf "$data"
				sync
				settle
			fi
			port=$("$BENCH_DIR/loadgen" --free-port)
			echo "bench: run $rep: $broker, $size B records, $bytes bytes, port $port"
			if ! start_broker "$broker" "$port" "$data" "$log"; then
				printf '%s\t%s\t%s\tFAIL\n' "$broker" "$size" "$rep" >>"$RESULTS"
				failures=$((failures + 1))
				continue
			fi
			t0=$(cpu_ticks "$BROKER_PID")
			# shellcheck disable=SC2086
			if out=$("${PIN_CLIENT[@]}" "$BENCH_DIR/loadgen" --brokers "127.0.0.1:$port" --topic bench \
				--partitions "$BENCH_PARTITIONS" --record-size "$size" --bytes "$bytes" \
				--acks "$BENCH_ACKS" --compression "$BENCH_COMPRESSION" --timeout "$BENCH_TIMEOUT" --broker-pid "$BROKER_PID" $BENCH_LOADGEN_ARGS) &&
				t1=$(cpu_ticks "$BROKER_PID"); then
				echo "$out"
				moved=$(json_field "$out" bytes_moved)
				awk -v b="$broker" -v s="$size" -v r="$rep" -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v moved="$moved" \
					-v pm="$(json_field "$out" produce_mb_s)" -v cm="$(json_field "$out" consume_mb_s)" \
					-v p50="$(json_field "$out" produce_p50_ms)" -v p99="$(json_field "$out" produce_p99_ms)" \
					-v pt="$(json_field "$out" produce_cpu_ticks)" -v ct="$(json_field "$out" consume_cpu_ticks)" \
					-v cpt="$(json_field "$out" client_produce_cpu_ticks)" \
					-v pb="$(json_field "$out" produce_bytes)" -v cb="$(json_field "$out" consume_bytes)" \
					'BEGIN { cpu = t / hz; printf "%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.3f\t%.0f\t%.3f\t%.3f\t%.3f\n", b, s, r, pm, cm, p50, p99, cpu, cpu / (moved / 1e9), moved, pt / hz / (pb / 1e9), ct / hz / (cb / 1e9), cpt / hz / (pb / 1e9) }' >>"$RESULTS"
			else
				echo "bench: run failed against $broker ($size B) (loadgen error or broker gone); broker log tail ($log):" >&2
				tail -n 30 "$log" >&2
				printf '%s\t%s\t%s\tFAIL\n' "$broker" "$size" "$rep" >>"$RESULTS"
				failures=$((failures + 1))
			fi
			stop_broker "$broker" "$log"
			rm -rf "$data"
		done
	done
done

echo
echo "Results (MB = 10^6 B of record values; CPU = broker utime+stime; CPU s/GB per 10^9 B produced + consumed;"
echo "prod/cons s/GB: broker CPU during each phase per GB of that phase, as sampled by loadgen;"
echo "client s/GB: the load generator's own CPU per GB produced; floor s/GB: writing the same volume to a"
echo "new file in 1 MiB writes, measured just before the run from the same state, see BENCH_FLOOR)"
# Rows grouped by record size, then broker, then run.
awk -F'\t' -v sizes="$BENCH_SIZES" -v brokers="$BENCH_BROKERS" -v floors="$FLOORS" '
	BEGIN { while ((getline line < floors) > 0) { split(line, g, "\t"); floor[g[2] SUBSEP g[1] SUBSEP g[3]] = g[4] } }
	{ row[$2 SUBSEP $1 SUBSEP $3] = $0; if ($3 > maxrep) maxrep = $3 }
	END {
		printf "%-8s %6s %4s %12s %12s %8s %8s %8s %9s %10s %10s %11s %11s %11s\n", "broker", "rec B", "run", "produce MB/s", "consume MB/s", "p50 ms", "p99 ms", "CPU s", "CPU s/GB", "(prod s/GB", "cons s/GB)", "client s/GB", "floor s/GB", "prod-floor"
		ns = split(sizes, S, " "); nb = split(brokers, B, " ")
		for (i = 1; i <= ns; i++) for (j = 1; j <= nb; j++) for (r = 1; r <= maxrep; r++) {
			k = S[i] SUBSEP B[j] SUBSEP r
			if (!(k in row)) continue
			split(row[k], f, "\t")
			if (f[4] == "FAIL") { printf "%-8s %6s %4s %12s\n", f[1], f[2], f[3], "FAILED"; continue }
			fl = (k in floor) ? sprintf("%11.3f %11.3f", floor[k], f[11] - floor[k]) : sprintf("%11s %11s", "-", "-")
			printf "%-8s %6s %4s %12.1f %12.1f %8.1f %8.1f %8.2f %9.3f %10.3f %10.3f %11.3f %s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[11], f[12], f[13], fl
		}
	}
' "$RESULTS"

if [[ " $BENCH_BROKERS " == *" strata "* && " $BENCH_BROKERS " == *" kfake "* ]]; then
	echo
	echo "Ratios strata/kfake of the means over runs (throughput: higher is better; latency and CPU/GB: lower is better;"
	echo "prod>floor: the produce phase's broker s/GB minus the floor measured before the same run; cons: the consume"
	echo "phase's broker s/GB, which writes nothing, so its floor is 0; '-' where kfake's mean is not above 0)"
	awk -F'\t' -v order="$BENCH_SIZES" -v floors="$FLOORS" '
		BEGIN { while ((getline line < floors) > 0) { split(line, g, "\t"); floor[g[1] SUBSEP g[2] SUBSEP g[3]] = g[4] } }
		$4 == "FAIL" { next }
		{
			k = $1 SUBSEP $2; n[k]++; pm[k] += $4; cm[k] += $5; p50[k] += $6; p99[k] += $7; cpg[k] += $9; cons[k] += $12
			fk = $1 SUBSEP $2 SUBSEP $3
			if (fk in floor) { nf[k]++; above[k] += $11 - floor[fk] }
		}
		function ratio(a, b, x) { return x[b] > 0 ? sprintf("%8.2fx", (x[a] / n[a]) / (x[b] / n[b])) : sprintf("%9s", "-") }
		function ratiof(a, b) { return nf[a] > 0 && nf[b] > 0 && above[b] > 0 ? sprintf("%9.2fx", (above[a] / nf[a]) / (above[b] / nf[b])) : sprintf("%10s", "-") }
		END {
			printf "%7s %9s %9s %9s %9s %10s %10s %10s\n", "rec B", "produce", "consume", "p50", "p99", "CPU s/GB", "prod>floor", "cons s/GB"
			m = split(order, list, " ")
			for (i = 1; i <= m; i++) {
				a = "strata" SUBSEP list[i]; b = "kfake" SUBSEP list[i]
				if (!(a in n) || !(b in n)) continue
				printf "%7s %s %s %s %s %s %s %s\n", list[i], ratio(a, b, pm), ratio(a, b, cm),
					ratio(a, b, p50), ratio(a, b, p99), " " ratio(a, b, cpg), ratiof(a, b), " " ratio(a, b, cons)
			}
		}
	' "$RESULTS"
fi
if ((failures > 0)); then
	echo "bench: $failures run(s) failed" >&2
	exit 1
fi
