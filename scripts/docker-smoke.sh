#!/usr/bin/env bash
# docker-smoke.sh: the Docker image and docker-compose.yml, end to end
# (make docker-smoke; needs a running dockerd, so it is not part of make test).
#
# 1. One container of $DOCKER_IMAGE with a named volume, its ports published
#    on loopback: /readyz answers, the process runs as uid 65532, the host's
#    strata CLI creates a topic, produces and consumes; `docker stop` is a
#    clean shutdown (exit 0) and the records are still there after
#    `docker start`.
# 2. docker-compose.yml's three-node cluster: an rf=3 topic with
#    min.insync.replicas=2, acks=all produce, one container stopped, every
#    record consumed from the other two, produce goes on; the container
#    started again rejoins every ISR.
#
# The CLI runs on the host. The compose nodes advertise strata-N:1909N, so it
# runs in a private mount namespace whose /etc/hosts maps those names to
# 127.0.0.1 (root and unshare(1)); otherwise (or with SMOKE_CLI=exec) it
# runs inside a node's container (docker exec). Prints PASS or exits non-zero
# at the first failed check, with the containers' logs.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
IMAGE=${DOCKER_IMAGE:-strata:local}
BIN=${STRATA_BIN:-$PWD/bin/strata}
KAFKA_PORT=${SMOKE_KAFKA_PORT:-29092}
HTTP_PORT=${SMOKE_HTTP_PORT:-29644}
PROJECT=strata-smoke-$$
SINGLE=$PROJECT-single
RECORDS=${SMOKE_RECORDS:-3000}
WORK=$(mktemp -d)
export STRATA_IMAGE=$IMAGE

step() { printf '\n== %s\n' "$*"; }
fail() {
	echo "FAIL: $*" >&2
	dump_logs
	exit 1
}
dump_logs() {
	for c in $($DOCKER ps -a --filter "name=$PROJECT" --format '{{.Names}}' 2>/dev/null); do
		echo "--- docker logs $c (last 30 lines)" >&2
		$DOCKER logs --tail 30 "$c" >&2 2>&1 || true
	done
}

if $DOCKER compose version >/dev/null 2>&1; then
	COMPOSE=("$DOCKER" compose)
elif command -v docker-compose >/dev/null; then
	COMPOSE=(docker-compose)
else
	COMPOSE=()
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml -f "$WORK/override.yml" "$@"; }

cleanup() {
	set +e
	$DOCKER rm -f "$SINGLE" >/dev/null 2>&1
	$DOCKER volume rm "$SINGLE-data" >/dev/null 2>&1
	if [ ${#COMPOSE[@]} -gt 0 ] && [ -f "$WORK/override.yml" ]; then
		compose down -v --timeout 60 >/dev/null 2>&1
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# await DESCRIPTION SECONDS COMMAND...: run COMMAND until it succeeds.
await() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "$what: not within ${secs}s"
		sleep 0.5
	done
}

$DOCKER info >/dev/null 2>&1 || {
	echo "docker-smoke: no Docker daemon ($DOCKER info failed):" >&2
	$DOCKER info 2>&1 | tail -3 >&2
	exit 1
}
$DOCKER image inspect "$IMAGE" >/dev/null || fail "no image $IMAGE: run make docker"
[ -x "$BIN" ] || fail "no strata binary at $BIN: run make build"

# ---------------------------------------------------------------- 1. one node
step "one container of $IMAGE, ports 127.0.0.1:$KAFKA_PORT (Kafka) and :$HTTP_PORT (HTTP)"
$DOCKER run -d --name "$SINGLE" -v "$SINGLE-data:/data" \
	-p "127.0.0.1:$KAFKA_PORT:9092" -p "127.0.0.1:$HTTP_PORT:9644" \
	-e STRATA_ADVERTISED_ADDRESS="localhost:$KAFKA_PORT" "$IMAGE" >/dev/null
# ready PORT: /readyz on 127.0.0.1:PORT answers "ready".
ready() { [ "$(curl -sf "http://127.0.0.1:$1/readyz")" = ready ]; }
await "/readyz of the container" 60 ready "$HTTP_PORT"
uid=$($DOCKER top "$SINGLE" -o pid,uid,args | awk '/strata serve/ {print $2}')
[ "$uid" = 65532 ] || fail "strata serve runs as uid '$uid', want 65532"
echo "ready; strata serve runs as uid $uid"

export STRATA_BROKERS=localhost:$KAFKA_PORT
"$BIN" topic create smoke -p 3
seq 1 "$RECORDS" >"$WORK/want"
"$BIN" produce smoke <"$WORK/want"
"$BIN" consume smoke -n "$RECORDS" | sort -n >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" || fail "consumed $(wc -l <"$WORK/got") records, not the $RECORDS produced"
echo "consumed the $RECORDS records from the host"
metrics=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics")
n=$(awk '$1 == "strata_messages_in_total" {print $2}' <<<"$metrics")
[ "${n:-0}" -ge "$RECORDS" ] 2>/dev/null || fail "strata_messages_in_total is '$n' after $RECORDS records"
echo "strata_messages_in_total $n"

step "docker stop (SIGTERM: a clean shutdown), docker start: the records are still there"
$DOCKER stop -t 60 "$SINGLE" >/dev/null
code=$($DOCKER inspect -f '{{.State.ExitCode}}' "$SINGLE")
[ "$code" = 0 ] || fail "strata exited $code on docker stop, want 0"
logs=$($DOCKER logs "$SINGLE" 2>&1)
grep -q 'shut down cleanly' <<<"$logs" || fail "no 'shut down cleanly' line in the log"
$DOCKER start "$SINGLE" >/dev/null
await "/readyz after docker start" 60 ready "$HTTP_PORT"
"$BIN" consume smoke -n "$RECORDS" | sort -n >"$WORK/got"
cmp -s "$WORK/want" "$WORK/got" || fail "after a restart: consumed $(wc -l <"$WORK/got") records, not $RECORDS"
logs=$($DOCKER logs "$SINGLE" 2>&1)
[ "$(grep -c 'unclean_shutdown=false' <<<"$logs")" = 2 ] || fail "the restart was not a clean one"
echo "exit code 0 on docker stop; after docker start all $RECORDS records are read back (clean restart)"
$DOCKER rm -f "$SINGLE" >/dev/null
$DOCKER volume rm "$SINGLE-data" >/dev/null
unset STRATA_BROKERS

# ------------------------------------------------------------- 2. three nodes
if [ ${#COMPOSE[@]} -eq 0 ]; then
	echo "docker-smoke: neither 'docker compose' nor docker-compose is installed" >&2
	exit 1
fi
step "docker-compose.yml: three nodes (${COMPOSE[*]} -p $PROJECT)"
# A daemon whose own open-file limit is below the compose file's 1048576
# cannot start the containers: cap the limit at this shell's hard limit.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 1048576 ]; then
	echo "capping the containers' nofile limit at $hard (ulimit -Hn here)"
	cat >"$WORK/override.yml" <<EOF
services:
  strata-1: {ulimits: {nofile: {soft: $hard, hard: $hard}}}
  strata-2: {ulimits: {nofile: {soft: $hard, hard: $hard}}}
  strata-3: {ulimits: {nofile: {soft: $hard, hard: $hard}}}
EOF
else
	echo "services: {}" >"$WORK/override.yml"
fi
compose up -d --no-build
cname() { compose ps -q "strata-$1"; }

if [ "${SMOKE_CLI:-}" != exec ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	echo "127.0.0.1 localhost strata-1 strata-2 strata-3" >"$WORK/hosts"
	CLI_MODE=host
else
	CLI_MODE=exec
fi
echo "the CLI runs: $CLI_MODE"
# cli NODE ARGS...: the strata CLI against the cluster, seeded with the
# nodes that are up (NODE: a node to run in, for exec).
SEEDS=strata-1:19091,strata-2:19092,strata-3:19093
cli() {
	local node=$1
	shift
	if [ "$CLI_MODE" = host ]; then
		STRATA_BROKERS=$SEEDS unshare --mount sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
			"$WORK/hosts" "$BIN" "$@"
	else
		$DOCKER exec -i -e STRATA_BROKERS="$SEEDS" "$(cname "$node")" /strata "$@"
	fi
}
for i in 1 2 3; do
	await "/readyz of strata-$i" 90 ready "1964$i"
done
three_online() { [ "$(cli 1 cluster brokers | grep -c ' online ')" = 3 ]; }
await "three brokers online" 60 three_online
cli 1 cluster brokers
# describe: the topic's partition table (not its configs).
describe() { cli 1 topic describe orders | sed '/^CONFIG/,$d'; }
cli 1 topic create orders -p 3 -r 3 -c min.insync.replicas=2
keyed() { awk '{print $1 "," $1}' "$1"; } # key = value: spread over the partitions
keyed "$WORK/want" | cli 1 produce orders -k ,
describe | tee "$WORK/describe"
grep -q '^UNDER-REPLICATED  none' "$WORK/describe" || fail "under-replicated partitions before any node stopped"
victim=$(awk '$1 == "0" {print $2}' "$WORK/describe")
[ -n "$victim" ] || fail "no leader for partition 0"

step "docker stop strata-$victim (the leader of partition 0; a controlled shutdown), then produce and consume on the other two"
$DOCKER stop -t 120 "$(cname "$victim")" >/dev/null
code=$($DOCKER inspect -f '{{.State.ExitCode}}' "$(cname "$victim")")
[ "$code" = 0 ] || fail "strata-$victim exited $code on docker stop, want 0"
SEEDS=$(for i in 1 2 3; do [ "$i" = "$victim" ] || printf 'strata-%s:1909%s,' "$i" "$i"; done)
SEEDS=${SEEDS%,}
live=${SEEDS%%:*}; live=${live#strata-}
seq $((RECORDS + 1)) $((2 * RECORDS)) >"$WORK/more"
keyed "$WORK/more" | cli "$live" produce orders -k , --timeout 30s
cat "$WORK/want" "$WORK/more" >"$WORK/all"
cli "$live" consume orders -n $((2 * RECORDS)) | sort -n >"$WORK/got"
cmp -s "$WORK/all" "$WORK/got" || fail "with strata-$victim stopped: consumed $(wc -l <"$WORK/got") records, want each of the $((2 * RECORDS)) produced"
echo "consumed all $((2 * RECORDS)) records, each once, with strata-$victim stopped"
describe | tee "$WORK/describe"
grep -q '^UNDER-REPLICATED  3 of 3' "$WORK/describe" || fail "want every partition under-replicated with strata-$victim stopped"
if awk -v v="$victim" '$1 ~ /^[0-9]+$/ && $2 == v {found=1} END {exit !found}' "$WORK/describe"; then
	fail "strata-$victim still leads a partition after its controlled shutdown"
fi

step "docker start strata-$victim: it catches up and rejoins every ISR"
$DOCKER start "$(cname "$victim")" >/dev/null
SEEDS=strata-1:19091,strata-2:19092,strata-3:19093
in_sync() { describe | grep -q '^UNDER-REPLICATED  none'; }
await "strata-$victim back in every ISR" 90 in_sync
describe
compose down -v --timeout 60
echo
echo "PASS: docker image and three-node compose cluster"
