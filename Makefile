# tide: the two commands a new user needs are `make run` and `make test`.
# Everything else is for development, CI and benchmarks.

GO        ?= go
PKGS      ?= ./...
TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: run test test-integration check fmt vet infra-up infra-down build clean

## run: the whole pipeline on 127.0.0.1:8080 (embedded Kafka and Redis unless KAFKA_BROKERS / REDIS_ADDR are set)
run:
	$(GO) run ./cmd/tide run

## test: gofmt, go vet and every test with the race detector. Real Kafka/Redis tests
## run when KAFKA_BROKERS / REDIS_ADDR are set (see test-integration); CI sets them.
test: check
	$(GO) test $(TEST_FLAGS) $(PKGS)

## test-integration: start a real Kafka (KRaft, from Maven Central) and redis-server, run `make test` against them, stop them
test-integration:
	@set -e; eval "$$(test/infra/up.sh)"; trap 'test/infra/down.sh' EXIT; $(MAKE) test

## check: formatting and vet
check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## infra-up / infra-down: real Kafka and Redis on loopback for manual work (eval the output of test/infra/up.sh)
infra-up:
	test/infra/up.sh
infra-down:
	test/infra/down.sh

build:
	$(GO) build -o bin/tide ./cmd/tide

clean:
	rm -rf bin
