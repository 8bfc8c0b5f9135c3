# mllpd — the few targets a newcomer needs. `make run` and `make test` work on a fresh clone.
GO        ?= go
FUZZTIME  ?= 2000x
BENCHCOUNT ?= 6

.PHONY: build run test test-deps unit fuzz fuzz-smoke bench bench-load lint vet clean

build:
	$(GO) build -o bin/ ./cmd/...

# The daemon on its embedded default config: MLLP on 127.0.0.1:2575, data under ./data.
run: build
	bin/mllpd serve

# Everything CI runs: third-party test peers, vet, all tests under the race detector, and a
# short smoke run of every fuzz target.
test: test-deps vet unit fuzz-smoke

# Third-party MLLP peers used by the end-to-end tests (Debian's python3-hl7); idempotent.
test-deps:
	@scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

# The fault-injection hook exists only in builds with the faultinject tag
# (never in the release binary); its tests run in a second pass.
unit:
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -race -count=1 -timeout 10m -tags faultinject ./store/ ./internal/e2e/...

fuzz-smoke:
	@FUZZTIME=$(FUZZTIME) scripts/fuzz-smoke.sh

# Longer fuzzing of every target: make fuzz FUZZTIME=2m
fuzz:
	@FUZZTIME=$${FUZZTIME:-60s} scripts/fuzz-smoke.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=$(BENCHCOUNT) ./hl7 ./mllp ./store | tee bench.txt

# The real daemon against baselines (a bare ACK server, a bare bbolt group
# commit server, python3-hl7 and npm simple-hl7 listeners); writes BENCHMARKS.md.
# About 10 minutes; not part of make test. Shorter: make bench-load LOADFLAGS="-runs 1 -duration 2s"
bench-load: build test-deps
	cd bench/node && npm install --no-audit --no-fund --silent
	$(GO) build -o bin/loadgen ./bench/loadgen
	bin/loadgen -mllpd bin/mllpd -out BENCHMARKS.md $(LOADFLAGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin bench.txt
