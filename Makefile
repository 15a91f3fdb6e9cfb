# Thin targets: each calls a short script in .ci/ that CI calls too.
.PHONY: run test lint bench fuzz e2e

ARGS ?=

run: ## the demo server, built then exec'd so Ctrl-C and SIGTERM reach it (ARGS=-h for flags)
	go build -o .bin/nexio-demo ./example
	exec ./.bin/nexio-demo $(ARGS)

test: ## go vet + go test -race with a total coverage line
	bash .ci/test.sh

lint: ## gofmt, go vet, staticcheck when it installs
	bash .ci/lint.sh

bench: ## micro-benchmarks and the side-by-side peers benchmark
	bash .ci/bench.sh

fuzz: ## every fuzz target for a bounded time (FUZZTIME=10s each)
	bash .ci/fuzz.sh

e2e: ## the browser end-to-end test in headless Chromium
	bash .ci/e2e.sh
