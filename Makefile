# palyra — build, test and check.
GO        ?= go
BIN       ?= bin/palyra
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/palyra-mesh/palyra/cli.Version=$(VERSION)
FUZZTIME  ?= 10s
BENCHRUNS ?= 5
BENCHTRIALS ?= 10

.PHONY: build run test bench fuzz lint tidy check clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# A single-node mesh on embedded defaults (data in ./palyra-data, API on 127.0.0.1:7421).
run: build
	$(BIN) agent --init --data-dir ./palyra-data

test:
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -count 1 $$($(GO) list ./... | grep -v /e2e)
	PALYRA_BENCH_RUNS=$(BENCHRUNS) PALYRA_BENCH_TRIALS=$(BENCHTRIALS) $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 20m ./e2e/

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

check: lint tidy test

clean:
	rm -rf bin
