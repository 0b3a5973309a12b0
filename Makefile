# tokend: `make run` and `make test` set everything up on a fresh machine.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...
# Postgres for the test suite; unset, the Postgres half skips (CI sets it).
TOKEND_TEST_POSTGRES_URL ?=
export TOKEND_TEST_POSTGRES_URL
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run build test test-serializable bench lint fuzz load clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

run: ## serve in dev mode on sqlite:data/tokend.db (prints demo credentials and reset links)
	TOKEND_DEV=$${TOKEND_DEV:-true} TOKEND_DATABASE_URL=$${TOKEND_DATABASE_URL:-sqlite:data/tokend.db} \
		$(GO) run -ldflags '$(LDFLAGS)' ./cmd/tokend serve

build: ## build bin/tokend, bin/example-resource-server and bin/tokend-load (static, no cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

test: ## run every test with the race detector (Postgres half when TOKEND_TEST_POSTGRES_URL is set)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

test-serializable: ## the Postgres half again, on TOKEND_TEST_POSTGRES_URL's database run SERIALIZABLE (CI)
	TOKEND_TEST_ONLY_POSTGRES=1 TOKEND_TEST_POSTGRES_ISOLATION=serializable \
		$(GO) test -race -count=1 -timeout 8m $$($(GO) list -test -f '{{.ImportPath}} {{join .Deps " "}}' $(PKGS) \
		| awk '/\.test / && / github.com\/tokend\/tokend\/internal\/dbtest( |$$)/ {sub(/\.test$$/, "", $$1); print $$1}')

bench: ## run the go test benchmarks (hashing, signing, JWKS, refresh)
	$(GO) test -run '^$$' -bench . -benchmem -count $${COUNT:-5} ./internal/...

lint: ## go mod tidy check, gofmt, go vet and staticcheck
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy (the diff above): run 'go mod tidy'"; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s); make test runs their seed corpora
	FUZZTIME=$${FUZZTIME:-30s} bash .ci/fuzz

load: build ## run the load suite (SQLite and Postgres, both algorithms) and print a Markdown table
	$(GO) run ./cmd/tokend-load suite --tokend bin/tokend \
		--postgres "$${TOKEND_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"

clean: ## remove build output and dev data
	rm -rf bin data
