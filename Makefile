# Strata: the two commands are `make run` and `make test` (see README.md).

GO        ?= go
BIN       := bin/strata
PY        := /usr/bin/python3
# Packages with concurrency, tested under the race detector.
RACE_PKGS := ./internal/network/... ./internal/fetchsession/... ./internal/kclient/... ./internal/storage/... ./internal/replication/... ./internal/broker/... ./internal/server/... ./internal/controller/... ./internal/record/... ./internal/coordinator/... ./internal/quorum/... ./internal/metadata/... ./internal/brokerlink/...
# Fuzz smoke length in executions, not seconds: a duration ends in a context
# deadline that go test can report as a failure ("context deadline
# exceeded") when it lands while a worker minimises an input.
FUZZTIME  ?= 60000x
# Every fuzz target, package:Target: the decoders a client or a peer can
# reach (issue 16). make fuzz runs each FUZZTIME, make fuzz-long FUZZ_EXECS.
FUZZ_TARGETS := ./internal/record:FuzzValidate ./internal/record:FuzzDecompress \
	./internal/broker:FuzzRequest ./internal/network:FuzzFraming \
	./internal/metadata:FuzzDecodeEntry ./internal/quorum:FuzzReadFrame \
	./internal/security:FuzzScramServer ./internal/security:FuzzPlain \
	./internal/security:FuzzParseJAAS ./internal/security:FuzzOAuthBearer \
	./internal/security:FuzzJWS ./internal/security:FuzzJWKS \
	./internal/storage:FuzzParseFrame
FUZZ_EXECS    ?= 10000000
FUZZ_PARALLEL ?= 1
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# What `strata version` reports: set at link time (internal/version). The
# date is the commit's, so the same commit builds the same binary.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
VPKG      := github.com/stratalog/strata/internal/version
LDFLAGS   := -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT) -X $(VPKG).date=$(DATE)
PREFIX    ?= /usr/local
DESTDIR   ?=
DIST_PLATFORMS ?= linux/amd64 linux/arm64

.PHONY: run build test deps lint unit race interop crash cluster fuzz bench bench-replication clean chaos chaos-bin chaos-smoke docs install dist bench-txn bench-coldread bench-cache eos docker docker-bin docker-smoke fuzz-long fuzz-corpus bench-partitions

## run: build and start a single-node broker on localhost:9092 with data in ./data
run: build
	./$(BIN) serve --listen localhost:9092 --data-dir ./data

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/strata

## install: build and copy strata to $(DESTDIR)$(PREFIX)/bin (PREFIX=/usr/local)
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/strata

## dist: static release archives dist/strata-VERSION-OS-ARCH.tar.gz (binary, LICENSE, README, deploy files) and SHA256SUMS
dist:
	rm -rf dist
	mkdir -p dist
	set -e; for p in $(DIST_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=strata-$(VERSION)-$$os-$$arch; \
	  mkdir -p dist/$$name/deploy; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o dist/$$name/strata ./cmd/strata; \
	  cp LICENSE README.md dist/$$name/; \
	  cp -R deploy/systemd deploy/grafana dist/$$name/deploy/; \
	  tar -C dist --sort=name --owner=0 --group=0 --numeric-owner --mtime='$(DATE)' -czf dist/$$name.tar.gz $$name; \
	  rm -rf dist/$$name; \
	done
	cd dist && sha256sum *.tar.gz > SHA256SUMS
	@ls -l dist

## docker: build the image $(DOCKER_IMAGE) FROM scratch around a static binary built here (no base image to pull)
DOCKER        ?= docker
DOCKER_IMAGE  ?= strata:local
DOCKER_ARCH   ?= $(shell $(GO) env GOARCH)
docker: docker-bin
	$(DOCKER) build -t $(DOCKER_IMAGE) --build-arg VERSION=$(VERSION) .

docker-bin:
	mkdir -p bin/docker/data
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DOCKER_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o bin/docker/strata ./cmd/strata

## docker-smoke: build the image, run one container and the compose cluster, produce and consume from the host (needs dockerd; not part of make test)
docker-smoke: build docker
	STRATA_BIN=$(CURDIR)/$(BIN) DOCKER=$(DOCKER) DOCKER_IMAGE=$(DOCKER_IMAGE) scripts/docker-smoke.sh

## test: install what the tests need, then lint, unit, race, interop, crash, cluster, chaos smoke and fuzz smoke
test: deps lint unit race interop crash cluster chaos-smoke fuzz
	@echo "make test: all suites passed"

deps:
	scripts/install-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /test/crash -e /test/cluster)

race:
	$(GO) test -count=1 -race -short $(RACE_PKGS)

interop: build
	scripts/interop.sh

crash: build
	STRATA_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run TestCrash ./test/crash/

cluster: build
	STRATA_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v ./test/cluster/

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$${t#*:}\$$" -fuzztime=$(FUZZTIME) $${t%%:*}; \
	done

## fuzz-long: every fuzz target to FUZZ_EXECS executions (default 10^7, issue 16), one worker each (FUZZ_PARALLEL); by hand, for hours: nice -n 15 make fuzz-long
fuzz-long:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_EXECS) executions, $(FUZZ_PARALLEL) worker(s)) $$(date -u +%FT%TZ)"; \
	  $(GO) test -run='^$$' -fuzz="^$${t#*:}\$$" -fuzztime=$(FUZZ_EXECS)x -parallel $(FUZZ_PARALLEL) -timeout 0 $${t%%:*}; \
	done

## fuzz-corpus: copy what fuzzing found interesting (go's cache) into each target's testdata/fuzz, where go test replays it
fuzz-corpus:
	@set -e; cache=$$($(GO) env GOCACHE)/fuzz; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t#*:}; src=$$cache/$$($(GO) list $$pkg)/$$name; \
	  [ -d $$src ] || continue; mkdir -p $$pkg/testdata/fuzz/$$name; cp -n $$src/* $$pkg/testdata/fuzz/$$name/; \
	  echo "$$pkg/testdata/fuzz/$$name: $$(ls $$pkg/testdata/fuzz/$$name | wc -l) inputs"; \
	done

## eos: the exactly-once proof at full size (not in make test; make cluster runs it with 50,000): EOS_RECORDS input records through franz-go GroupTransactSession members joining and leaving, with EOS_KILLS rounds of kill -9 (see RELIABILITY.md)
EOS_RECORDS ?= 1000000
EOS_KILLS   ?= 1
eos: build
	STRATA_BIN=$(CURDIR)/$(BIN) STRATA_EOS_RECORDS=$(EOS_RECORDS) STRATA_EOS_KILLS=$(EOS_KILLS) $(GO) test -count=1 -v -timeout 60m -run '^TestEOSSessionChurn$$' ./test/cluster/

## chaos: fault-injection runs (see RELIABILITY.md); override CHAOS_* or add CHAOS_FLAGS
CHAOS_SCHEDULES ?= 20
CHAOS_SEED      ?= 0
CHAOS_NODES     ?= 3
CHAOS_DURATION  ?= 20s
CHAOS_FLAGS     ?=
chaos: build chaos-bin
	./bin/strata-chaos --bin $(BIN) --schedules $(CHAOS_SCHEDULES) --seed $(CHAOS_SEED) --nodes $(CHAOS_NODES) --duration $(CHAOS_DURATION) $(CHAOS_FLAGS)

chaos-bin:
	$(GO) build -o bin/strata-chaos ./test/chaos

## chaos-smoke: a few short fixed-seed schedules (part of make test)
chaos-smoke: build chaos-bin
	./bin/strata-chaos --bin $(BIN) --schedules 3 --seed 1 --nodes 3 --duration 12s --rf 3 --min-insync 2 --txn 1
	./bin/strata-chaos --bin $(BIN) --schedules 1 --seed 101 --nodes 5 --duration 12s --rf 3 --min-insync 2

## bench: Strata vs kfake, side by side (see BENCHMARKS.md)
bench: build
	scripts/bench.sh

## bench-replication: rf=1 vs rf=3 acks=all on 3 local brokers, kfake beside (see BENCHMARKS.md)
bench-replication: build
	scripts/bench-replication.sh

## bench-txn: transactional produce (10k records per transaction) beside idempotent, strata and kfake (see BENCHMARKS.md)
bench-txn: build
	scripts/bench-txn.sh

## bench-coldread: a tail consumer's latency while another reads cold data, broker memory capped (root: cgroup v1); COLDREAD_FLAGS
bench-coldread: build
	$(GO) build -o bin/coldread ./test/bench/coldread
	./bin/coldread --bin $(BIN) $(COLDREAD_FLAGS)

## bench-cache: the cache-pollution figures of issue 14: bench-coldread's tail latency, then its lagging-reader probe (--lag: how much of the unread tail a cold reader evicts)
bench-cache: bench-coldread
	./bin/coldread --bin $(BIN) --lag --tail-rate 10000 --settings 0,67108864,67108864,0 $(COLDREAD_FLAGS)

## bench-partitions: 100 topics x 100 partitions on one node: create, produce, restarts, fds, RSS, then the same (no restarts) for kfake and, with KLITE_BIN set, klite (see BENCHMARKS.md "Many partitions"); MANYPARTS_FLAGS adds flags (e.g. --broker-cpus 1 --client-cpus 0); MANYPARTS_GEN=raw uses the raw load generator (pre-built ProduceRequests, cheap enough that the broker is the bottleneck) instead of franz-go's producer
MANYPARTS_FLAGS ?=
MANYPARTS_GEN ?= kgo
KLITE_BIN ?=
bench-partitions: build
	$(GO) build -o bin/manyparts ./test/bench/manyparts
	$(GO) build -o bin/kfakeserver ./test/bench/kfakeserver
	./bin/manyparts --gen $(MANYPARTS_GEN) --bin $(BIN) $(MANYPARTS_FLAGS)
	./bin/manyparts --gen $(MANYPARTS_GEN) --kind kfake --bin bin/kfakeserver --broker-args=--in-memory $(MANYPARTS_FLAGS)
	if [ -n "$(KLITE_BIN)" ]; then ./bin/manyparts --gen $(MANYPARTS_GEN) --kind klite --bin "$(KLITE_BIN)" $(MANYPARTS_FLAGS); fi

## docs: regenerate docs/configuration.md from the broker's key registry
docs:
	$(GO) run ./cmd/strata config list --markdown > docs/configuration.md

clean:
	rm -rf bin dist
