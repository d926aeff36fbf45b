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

# The packages where goroutines meet: `make test` runs their tests with the
# race detector (test-race) and every other package's without (test-go).
RACE_PKGS := ./pdp/engine/... ./pdp/registry/... ./pdp/store/... ./pdp/api/... ./bundles/... ./pdp/decisionlog/...

.PHONY: all build install install-opa run test test-go test-race test-rego bench load lint tools image screenshots test-pyre test-hints

all: lint test

## tools: download modules and build the pinned opa CLI (go tool opa)
tools:
	@echo "==> [$$(date -u +%T)]" 'tools: go mod download, then build the pinned opa CLI (the first time: a few minutes, compiling OPA)'
	$(GO) mod download
	$(OPA) version >/dev/null

## build: the gatehouse binary in bin/
build:
	@echo '==> compiling bin/gatehouse; -v lists each package as it compiles (the first time: a few minutes, OPA is big)'
	CGO_ENABLED=0 $(GO) build -trimpath -v -ldflags '$(LDFLAGS)' -o bin/gatehouse ./cmd/gatehouse

## image: the container image (needs Docker): the binary built as `build` builds it, on distroless, as nonroot
image:
	docker build --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  -t $(IMAGE) .

## install: gatehouse into $(go env GOBIN), else $(go env GOPATH)/bin, built as `build` builds it
install:
	@echo '==> installing gatehouse with go install (the first time: a few minutes, compiling OPA)'
	CGO_ENABLED=0 $(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/gatehouse
	@dir="$$($(GO) env GOBIN)"; [ -n "$$dir" ] || dir="$$($(GO) env GOPATH)/bin"; \
	  echo "installed $$dir/gatehouse"; \
	  case ":$$PATH:" in *":$$dir:"*) ;; *) echo "$$dir is not on your PATH; add it: export PATH=\"$$dir:\$$PATH\"";; esac

## install-opa: the opa CLI pinned in go.mod (the one the tests compare with), into the same place
install-opa:
	@echo '==> installing the pinned opa CLI with go install (the first time: a few minutes)'
	$(GO) install github.com/open-policy-agent/opa
	@dir="$$($(GO) env GOBIN)"; [ -n "$$dir" ] || dir="$$($(GO) env GOPATH)/bin"; echo "installed $$dir/opa ($$("$$dir/opa" version | head -n 1))"

## run: serve on the embedded SQLite store (./gatehouse.db) with a dev key printed once
run: build
	@echo '==> starting ./bin/gatehouse serve --dev on 127.0.0.1:8181 (Ctrl-C stops it)'
	./bin/gatehouse serve --dev

## test: everything CI runs — vet, the Rego suite with the pinned opa CLI, and all Go tests
## (the quick loop while developing: go test -short ./...)
test: tools lint test-rego test-go test-race

## test-go: every package's tests but RACE_PKGS'; the tests that run the
## binary share one build of it (test/e2e's TestMain cache, keyed by the source)
test-go:
	@echo "==> [$$(date -u +%T)]" 'test-go: go test on every package but the race-tested ones (end-to-end, parity, replicas, image, CLI, ...)'
	$(GO) test -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v -F $(patsubst ./%/...,-e /%,$(RACE_PKGS)))

## test-race: RACE_PKGS' tests with the race detector
test-race:
	@echo "==> [$$(date -u +%T)]" 'test-race: go test -race on $(RACE_PKGS)'
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

## test-rego: opa check --strict and opa test on the Rego library, with the
## pinned CLI. No pipe after opa test: its exit status is make's (a failing
## Rego test fails the target; TestRegoTargetFails proves it). Each test may
## take 60 s, not the default 5 s: a loaded CI machine is not a failing test.
test-rego:
	@echo "==> [$$(date -u +%T)]" 'test-rego: opa check --strict and opa test on rego/'
	$(OPA) check --strict rego/
	$(OPA) test rego/ --fail-on-empty --timeout 60s

## screenshots: the console's browser test (test/browser), copying its screenshots to docs/
screenshots:
	$(GO) test -count=1 -run TestConsole ./test/browser -update-docs

## test-hints: the full differential test of hinted against unhinted decisions
## (the engine's hints, the plain query as stock OPA runs it, and the library's
## own views; `make test` runs it at a smaller count)
HINT_ACTIONS ?= 200000
test-hints:
	$(GO) test -count=1 -timeout 60m -run '^TestHintsDifferential$$' ./pdp/engine/ -v -args -hints.actions=$(HINT_ACTIONS)

## test-pyre: the full differential test of the regex dialect against CPython's re
## (python3; `make test` runs it at a smaller count)
PYRE_PAIRS ?= 200000
test-pyre:
	$(GO) test -count=1 -timeout 30m -run '^TestPythonDifferential$$' ./adapter/ -v -args -pyre.pairs=$(PYRE_PAIRS)

## bench: engine benchmarks, COUNT runs each, as benchstat input (bench.txt)
bench:
	bash -o pipefail -c "$(GO) test -run '^\$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./pdp/engine/ | tee bench.txt"

## load: loopback load on POST /v1/actions vs a stock opa (servers on CPU 0, load on CPU 1)
LOAD_ARGS ?= -scale M -concurrency 16 -duration 15s
load:
	$(GO) build -o bin/load ./test/load
	taskset -c 1 ./bin/load $(LOAD_ARGS) -server-cpus 0

## lint: gofmt, go vet and opa fmt must have nothing to say
lint:
	@echo "==> [$$(date -u +%T)]" 'lint: gofmt, go vet (compiles every package: minutes on empty caches), opa fmt'
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
