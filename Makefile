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

.PHONY: run build test deps lint unit race interop crash cluster fuzz bench bench-replication clean chaos chaos-bin chaos-smoke docs install dist bench-txn bench-partitions

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
	$(GO) test -run='^$$' -fuzz='^FuzzValidate$$' -fuzztime=$(FUZZTIME) ./internal/record
	$(GO) test -run='^$$' -fuzz='^FuzzDecompress$$' -fuzztime=$(FUZZTIME) ./internal/record
	$(GO) test -run='^$$' -fuzz='^FuzzRequest$$' -fuzztime=$(FUZZTIME) ./internal/broker
	$(GO) test -run='^$$' -fuzz='^FuzzFraming$$' -fuzztime=$(FUZZTIME) ./internal/network
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeEntry$$' -fuzztime=$(FUZZTIME) ./internal/metadata
	$(GO) test -run='^$$' -fuzz='^FuzzScramServer$$' -fuzztime=$(FUZZTIME) ./internal/security
	$(GO) test -run='^$$' -fuzz='^FuzzPlain$$' -fuzztime=$(FUZZTIME) ./internal/security
	$(GO) test -run='^$$' -fuzz='^FuzzParseJAAS$$' -fuzztime=$(FUZZTIME) ./internal/security
	$(GO) test -run='^$$' -fuzz='^FuzzOAuthBearer$$' -fuzztime=$(FUZZTIME) ./internal/security

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

## bench-partitions: 100 topics x 100 partitions on one node: create, produce, restarts, fds, RSS (see BENCHMARKS.md "Many partitions"); MANYPARTS_FLAGS adds flags
MANYPARTS_FLAGS ?=
bench-partitions: build
	$(GO) build -o bin/manyparts ./test/bench/manyparts
	./bin/manyparts --bin $(BIN) $(MANYPARTS_FLAGS)

## docs: regenerate docs/configuration.md from the broker's key registry
docs:
	$(GO) run ./cmd/strata config list --markdown > docs/configuration.md

clean:
	rm -rf bin dist
