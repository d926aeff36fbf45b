# The Makefile is Gatehouse's interface: the README and .ci/run call these
# targets and nothing else.
GO        ?= go
OPA       := $(GO) tool opa
PKGS      := ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The Dockerfile's go build uses the same flags (test/image checks it).
LDFLAGS   := -s -w -X github.com/gatehouse-pdp/gatehouse/pdp.Version=$(VERSION)
IMAGE     ?= gatehouse:$(VERSION)
BENCH     ?= .
COUNT     ?= 5

.PHONY: all build run test test-go test-rego test-pyre bench load lint tools image screenshots

all: lint test

## tools: download modules and build the pinned opa CLI (go tool opa)
tools:
	$(GO) mod download
	$(OPA) version >/dev/null

## build: the gatehouse binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gatehouse ./cmd/gatehouse

## image: the container image (needs Docker): the binary built as `build` builds it, on distroless, as nonroot
image:
	docker build --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  -t $(IMAGE) .

## run: serve on the embedded SQLite store (./gatehouse.db) with a dev key printed once
run: build
	./bin/gatehouse serve --dev

## test: everything CI runs — vet, the Rego suite with the pinned opa CLI, and all Go tests
test: tools lint test-rego test-go

test-go:
	$(GO) test -count=1 -timeout 20m $(PKGS)

## test-rego: opa check --strict and opa test on the Rego library, with the pinned CLI
test-rego:
	$(OPA) check --strict rego/
	$(OPA) test rego/ -v --fail-on-empty | tail -n 3

## screenshots: the console's browser test (test/browser), copying its screenshots to docs/
screenshots:
	$(GO) test -count=1 -run TestConsole ./test/browser -update-docs

## test-pyre: the full differential test of the regex dialect against CPython's re
## (python3; `make test` runs it at a smaller count)
PYRE_PAIRS ?= 200000
test-pyre:
	$(GO) test -count=1 -timeout 30m -run '^TestPythonDifferential$$' ./adapter/ -v -args -pyre.pairs=$(PYRE_PAIRS)

## bench: engine benchmarks, COUNT runs each, as benchstat input (bench.txt)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./pdp/engine/ | tee bench.txt

## load: loopback load on POST /v1/actions vs a stock opa (servers on CPU 0, load on CPU 1)
LOAD_ARGS ?= -scale M -concurrency 16 -duration 15s
load:
	$(GO) build -o bin/load ./test/load
	taskset -c 1 ./bin/load $(LOAD_ARGS) -server-cpus 0

## lint: gofmt, go vet and opa fmt must have nothing to say
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet $(PKGS)
	@test -z "$$($(OPA) fmt -l rego/)" || { $(OPA) fmt -l rego/; echo 'opa fmt: files above need formatting'; exit 1; }

## bundle: a tenant's OPA bundle from a policy directory (GitOps), e.g.
## make bundle POLICIES=examples/opa-test/policies TENANT=acme OUT=acme.tar.gz [BUNDLE_ARGS='--signing-key k.pem']
POLICIES    ?= examples/opa-test/policies
TENANT      ?= acme
OUT         ?= bundle.tar.gz
BUNDLE_ARGS ?=
.PHONY: bundle
bundle: build
	./bin/gatehouse bundle build --policies $(POLICIES) --tenant $(TENANT) --out $(OUT) $(BUNDLE_ARGS)
