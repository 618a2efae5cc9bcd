# Elevate: `make run` serves the built-in demo, `make test` runs what CI runs.
# `make help` lists every target.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/elevatepdp/elevate/internal/cli.version=$(VERSION)
ELEVATE := bin/elevate
OPA     := bin/opa

.DEFAULT_GOAL := help
.PHONY: help build opa run test vet fmt-check redis nginx go-test policy-test bundle clean bench fuzz mutate

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/elevate
	$(GO) build -ldflags "$(LDFLAGS)" -o $(ELEVATE) ./cmd/elevate

opa: ## Build upstream opa, the version Elevate embeds, into bin/opa
	$(GO) build -o $(OPA) github.com/open-policy-agent/opa

run: build ## Serve on 127.0.0.1:8181: built-in policies, demo tenant, in-memory store
	$(ELEVATE) serve --demo --demo-credentials bin/demo-credentials.json

test: vet fmt-check go-test policy-test ## Everything CI runs: vet, format, Go tests with -race, Rego tests

vet: ## go vet
	$(GO) vet ./...

fmt-check: opa ## Fail when gofmt or opa fmt would change a file
	@out="$$(gofmt -l cmd internal policies bundles test)"; \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@out="$$($(OPA) fmt --list policies test/testdata/extensions)"; \
	  if [ -n "$$out" ]; then echo "opa fmt would change:"; echo "$$out"; exit 1; fi

redis: ## Install redis-server when it is missing
	.ci/ensure-redis

nginx: ## Install nginx when it is missing
	.ci/ensure-nginx

go-test: redis nginx ## Go unit, integration and upstream-compatibility tests, race detector on
	$(GO) test -race -count=1 ./...

policy-test: build ## Rego unit tests (with the extension example) and strict compile
	$(ELEVATE) test policies test/testdata/extensions
	$(ELEVATE) test --coverage policies | tail -n 1
	$(ELEVATE) check policies test/testdata/extensions

bench: build opa redis ## Run the benchmarks and the load comparison (not part of make test)
	@mkdir -p bin/bench
	$(GO) test -run '^$$' -bench . -benchmem ./internal/policy ./internal/store/redis ./internal/decision ./internal/api \
	  > bin/bench/go-bench.txt || { cat bin/bench/go-bench.txt; exit 1; }
	@cat bin/bench/go-bench.txt
	$(GO) run ./test/bench/cmd/elevate-bench -elevate $(ELEVATE) -opa $(OPA) -out bin/bench -gobench bin/bench/go-bench.txt

FUZZTIME ?= 2m
FUZZ     ?= .

fuzz: ## Run every Go fuzz target (or those FUZZ matches) for FUZZTIME each, default 2m (not part of make test)
	FUZZTIME=$(FUZZTIME) .ci/fuzz '$(FUZZ)'

# Mutation testing: gremlins (pinned) changes one operator at a time in the
# security-critical packages and the Go callers of the Rego policies, and runs
# each package's tests against each change to its code (subpackages
# included); a change no test notices (LIVED) is a missing test. gremlins
# runs the tests of the package it mutates, so the store's backends are
# listed one by one: ./internal/store itself has no tests (its validation is
# tested through memory's and redis's suites), and mutating it that way
# reports every change as LIVED. Slow (minutes per package, Redis's suite
# most): not part of make test.
# Narrow it with MUTATE_PKGS=./internal/identity; MUTATE_FLAGS go to gremlins
# (e.g. --integration runs the whole suite per mutant, far slower).
GREMLINS_VERSION ?= v0.6.0
GREMLINS         := bin/gremlins-$(GREMLINS_VERSION)
MUTATE_PKGS      ?= ./internal/identity ./internal/workflow ./internal/decision ./internal/policy \
                    ./internal/store/memory ./internal/store/redis
MUTATE_FLAGS     ?= --workers 1 --test-cpu 1 --timeout-coefficient 10

$(GREMLINS):
	@mkdir -p bin/gremlins.tmp
	GOBIN=$(CURDIR)/bin/gremlins.tmp $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	mv bin/gremlins.tmp/gremlins $@ && rmdir bin/gremlins.tmp

mutate: $(GREMLINS) redis ## Mutation testing of the security-critical packages (slow; not part of make test)
	@mkdir -p bin/mutate
	@for p in $(MUTATE_PKGS); do \
	  echo "== $$p"; \
	  $(GREMLINS) unleash $(MUTATE_FLAGS) --coverpkg "$$p/..." -o bin/mutate/$$(echo $$p | tr -c 'a-z0-9\n' '-').json $$p || exit 1; \
	done

bundle: build ## Build bundles/demo.tar.gz from the policies and demo data
	$(ELEVATE) bundle build policies bundles/demo -o bundles/demo.tar.gz

clean: ## Remove build output
	rm -rf bin bundles/*.tar.gz
