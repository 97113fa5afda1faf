# Shell functions shared by scripts/bench.sh and scripts/bench-replication.sh
# (sourced, not run). See BENCHMARKS.md for what they measure and why.

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || true)
CLK_TCK=${CLK_TCK:-100}

# cpu_ticks PID: utime+stime of PID in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() {
	local line rest
	read -r line <"/proc/$1/stat"
	rest=${line##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo $((${12} + ${13}))
}

# cpu_ticks_sum PID...: the sum of cpu_ticks over the PIDs.
cpu_ticks_sum() {
	local pid sum=0
	for pid in "$@"; do
		sum=$((sum + $(cpu_ticks "$pid")))
	done
	echo "$sum"
}

# json_field JSON KEY: the raw value of a top-level scalar field.
json_field() {
	local v
	v=$(grep -o "\"$2\":[^,}]*" <<<"$1" | head -1)
	echo "${v#*:}"
}

# wait_port PID PORT NAME LOG: wait until 127.0.0.1:PORT accepts connections
# (at most 30 s); fails if PID exits first.
wait_port() {
	local pid=$1 port=$2 name=$3 log=$4 i
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $name exited during startup; log:" >&2
			tail -n 30 "$log" >&2
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "bench: $name did not accept connections on port $port within 30s" >&2
	return 1
}

# settle: on a VM whose kernel reports freed pages back to the hypervisor
# (virtio-balloon free page reporting, as on the Firecracker machines these
# figures come from), a page the guest freed and reused costs a fault on the
# host the next time it is written, charged as system time to whoever
# writes it. Deleting the previous run's data dir frees its page cache, and
# the reporting takes seconds, so without this the broker that runs right
# after another one gets cheaper pages than the one that runs first. Wait
# until reporting has gone quiet (no change for 4 s, at most 60 s), so that
# every run starts from the same state. Without the module, a no-op.
settle() {
	local f=/sys/module/page_reporting/parameters/reported_kib prev cur i quiet=0
	[[ -r $f ]] || return 0
	prev=$(<"$f")
	for ((i = 0; i < 120 && quiet < 8; i++)); do
		sleep 0.5
		cur=$(<"$f")
		if [[ $cur == "$prev" ]]; then
			quiet=$((quiet + 1))
		else
			quiet=0
			prev=$cur
		fi
	done
}

# stop_pid PID NAME LOG: SIGTERM, then wait_pid. PID must be a child of this
# shell. (Strata exits at once, without a clean shutdown, on a second signal.)
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait_pid "$@"
}

# wait_pid PID NAME LOG: wait up to 30s for PID to exit, then SIGKILL it;
# reports a non-zero exit status.
wait_pid() {
	local pid=$1 name=$2 log=$3 i rc=0
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "bench: $name did not stop within 30s of SIGTERM; killing it (log: $log)" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if ((rc != 0)); then
		echo "bench: $name exited with status $rc (log: $log)" >&2
	fi
}

# page_cache_floor DIR BYTES LOADGEN [CPUS]: CPU s/GB of writing BYTES to a new
# file in DIR in 1 MiB writes (loadgen --page-cache-floor), printed with 3
# decimals; with CPUS (a taskset -c list) the writer runs on those CPUs.
page_cache_floor() {
	local dir=$1 bytes=$2 loadgen=$3 cpus=${4:-} out
	local -a pin=()
	[[ -n $cpus ]] && pin=(taskset -c "$cpus")
	mkdir -p "$dir"
	out=$("${pin[@]}" "$loadgen" --page-cache-floor "$dir" --bytes "$bytes")
	awk -v t="$(json_field "$out" cpu_ticks)" -v hz="$CLK_TCK" -v n="$bytes" 'BEGIN { printf "%.3f\n", t / hz / (n / 1e9) }'
}
