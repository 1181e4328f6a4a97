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

## --- Deploying on Knative (README: "Deploying on Knative"). Written for a cluster; CI runs none of it.
## manifests: render knative/ (MODE=push) or knative/overlays/pull (MODE=pull) with the images
##   set, to stdout or to MANIFESTS=file. image / image-cli: build and push the function image
##   (func build) and the tide CLI image for the partition manager (ko). deploy: kubectl apply -k.
REGISTRY   ?= registry.example.com
TAG        ?= latest
IMAGE      ?= $(REGISTRY)/tide:$(TAG)
CLI_IMAGE  ?= $(REGISTRY)/tide-cli:$(TAG)
MODE       ?= push
MANIFESTS  ?=
# An env file of credentials (the keys of knative/base/secrets.env), kept outside git.
SECRETS_ENV ?=
FUNC       ?= func
KO         ?= ko
KUBECTL    ?= kubectl
# The same kustomize the tests render with (knative/render_test.go), run from the module proxy.
KUSTOMIZE  ?= $(GO) run sigs.k8s.io/kustomize/kustomize/v5@v5.8.2

KNATIVE_DIR = knative$(if $(filter pull,$(MODE)),/overlays/pull,)

.PHONY: manifests image image-cli deploy

# knative-tree copies knative/ to a temporary directory ($$tmp, removed on exit) and
# sets the images (and the credentials) there, so the repository keeps its placeholders.
define knative-tree
	case "$(MODE)" in push|pull) ;; *) echo "MODE must be push or pull, not $(MODE)" >&2; exit 2;; esac; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cp -R knative "$$tmp/"; \
	if [ -n "$(SECRETS_ENV)" ]; then cp "$(SECRETS_ENV)" "$$tmp/knative/base/secrets.env"; fi; \
	(cd "$$tmp/$(KNATIVE_DIR)" && $(KUSTOMIZE) edit set image tide=$(IMAGE) tide-cli=$(CLI_IMAGE))
endef

manifests:
	@set -e; $(knative-tree); \
	if [ -n "$(MANIFESTS)" ]; then $(KUSTOMIZE) build "$$tmp/$(KNATIVE_DIR)" > "$(MANIFESTS)"; echo "wrote $(MANIFESTS)" >&2; \
	else $(KUSTOMIZE) build "$$tmp/$(KNATIVE_DIR)"; fi

image:
	$(FUNC) build --image $(IMAGE) --push

image-cli:
	KO_DOCKER_REPO=$(REGISTRY)/tide-cli $(KO) build --bare --tags $(TAG) ./cmd/tide

deploy:
	@set -e; $(knative-tree); \
	$(KUBECTL) apply -k "$$tmp/$(KNATIVE_DIR)"

## test-idempotence: restart, kill and pause a private Kafka (its own TIDE_STATE_DIR) while the
## idempotent producer publishes, and read the topic back: no record may be there twice, and
## the producer must work again once the broker is back. About three minutes; not part of `make test`.
.PHONY: test-idempotence
test-idempotence:
	@set -e; export TIDE_STATE_DIR=$${TMPDIR:-/tmp}/tide-infra-idempotence-$$$$; \
	trap 'test/infra/kafka.sh stop >/dev/null 2>&1 || true; rm -rf "$$TIDE_STATE_DIR"' EXIT; \
	export $$(test/infra/kafka.sh start); \
	TIDE_KAFKA_RESTART=1 $(GO) test -race -count=1 -v -timeout 10m ./test/idempotence/

## bench: tide side by side with what a user would pick instead (kafka-producer-perf-test,
## kafka-consumer-perf-test, a bare sarama group, an sdk-go receiver+sender), in one run on a
## private real Kafka and Redis it starts and stops, then the Go hot-path benchmarks. About
## ten minutes; not part of `make test`. The report lands in bench-out/report.txt.
## BENCH_FLAGS passes flags to test/bench/suite (-d 15s, -warmup 3s, -profile, -batch-timeout-ms N,
## -only ingest|e2e|stall for one part).
.PHONY: bench bench-go
bench:
	@set -e; export TIDE_STATE_DIR=$${TMPDIR:-/tmp}/tide-infra-bench-$$$$; \
	trap 'test/infra/down.sh >/dev/null 2>&1 || true; rm -rf "$$TIDE_STATE_DIR"' EXIT; \
	eval "$$(test/infra/up.sh)"; \
	$(GO) run ./test/bench/suite $(BENCH_FLAGS); \
	$(MAKE) --no-print-directory bench-go

## bench-go: the testing.B benchmarks of the hot paths (ingest parse+encode, Publisher.Publish
## on the embedded broker, the analytics Lua script on miniredis), with -benchmem
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./functions/ingest/ ./shared/kafka/ ./shared/store/

## verify: the fault scenarios of test/faults on a private real Kafka and Redis that it
## starts and stops (they restart them): consumers SIGKILLed mid-batch, consumer groups
## scaled 1 -> 3 -> 1, the broker restarted, Redis restarted, ingest stopped with SIGTERM.
## Each drives load with the verifier (`tide verify`) and must show lost=0 duplicated=0
## reordered=0; the last lines are one per scenario and the totals. About four minutes;
## CI runs it after `make test`. verify-all adds the three-broker cluster with the partition
## leader killed (about two minutes more). VERIFY_LOAD=N multiplies events and rate by N;
## VERIFY_LOGS=DIR keeps the processes' logs; the JSON report lands in VERIFY_REPORT.
VERIFY_QUICK  = TestConsumerSIGKILL|TestConsumerScale|TestBrokerRestart|TestRedisRestart|TestIngestSIGTERM
VERIFY_REPORT ?= $(or $(TMPDIR),/tmp)/tide-verify-report.json
.PHONY: verify verify-all verify-run
verify:
	@rm -f "$(VERIFY_REPORT)"
	@$(MAKE) --no-print-directory verify-run VERIFY_RUN='$(VERIFY_QUICK)' VERIFY_NODES=1

verify-all:
	@rm -f "$(VERIFY_REPORT)"
	@$(MAKE) --no-print-directory verify-run VERIFY_RUN='$(VERIFY_QUICK)' VERIFY_NODES=1
	@$(MAKE) --no-print-directory verify-run VERIFY_RUN='TestLeaderKilled' VERIFY_NODES=3

verify-run:
	@set -e; export TIDE_STATE_DIR=$${TMPDIR:-/tmp}/tide-infra-verify-$$$$; \
	trap 'test/infra/down.sh >/dev/null 2>&1 || true; rm -rf "$$TIDE_STATE_DIR"' EXIT; \
	infra=$$(KAFKA_NODES=$(VERIFY_NODES) test/infra/up.sh); eval "$$infra"; \
	TIDE_VERIFY=1 TIDE_VERIFY_REPORT='$(VERIFY_REPORT)' TIDE_VERIFY_LOAD='$(VERIFY_LOAD)' TIDE_VERIFY_LOGS='$(VERIFY_LOGS)' \
		$(GO) test -count=1 -v -timeout 25m -run '^($(VERIFY_RUN))$$' ./test/faults/

## test-growth-long: grow the events topic 4 → 6 → 8 → 12 → 16 under load through the whole
## pipeline on a private real Kafka and Redis, check that no key's events were reordered, lost
## or duplicated, and print each pause (min/median/max). Without -race, so the pauses are
## realistic. About a minute; not part of `make test` (its one-growth version is).
.PHONY: test-growth-long
test-growth-long:
	@set -e; export TIDE_STATE_DIR=$${TMPDIR:-/tmp}/tide-infra-growth-$$$$; \
	trap 'test/infra/down.sh >/dev/null 2>&1 || true; rm -rf "$$TIDE_STATE_DIR"' EXIT; \
	eval "$$(test/infra/up.sh)"; \
	TIDE_GROWTH_LONG=1 $(GO) test -count=1 -v -timeout 10m -run 'TestGrowthUnderLoad' ./test/growth/
