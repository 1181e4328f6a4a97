// Package faults proves exactly-once delivery under failure: each scenario runs
// tide as separate OS processes (`tide serve`: ingest, notification, analytics, and
// a read-only process serving the read APIs), drives load through them with the
// verifier (test/verify) and injects one kind of fault while the load runs:
//
//	TestConsumerSIGKILL       consumers SIGKILLed mid-batch at chosen points (TIDE_FAULT), three times each
//	TestConsumerScale         consumer groups scaled 1 -> 3 -> 1 instances (rebalances)
//	TestBrokerRestart         the Kafka broker restarted during produce and consume
//	TestRedisRestart          Redis restarted during consume
//	TestIngestSIGTERM         ingest sent SIGTERM under load (it drains) and started again, twice
//	TestLeaderKilled          three brokers (replication 3, min.insync.replicas 2), the partition leader SIGKILLed during produce
//
// Every scenario requires lost=0 duplicated=0 reordered=0 from the verifier and
// waits only on conditions, each with a bound. They need a real Kafka and Redis that
// they may restart, so they run only when TIDE_VERIFY=1, which `make verify` and
// `make verify-all` set after starting private instances (test/infra, with their
// own TIDE_STATE_DIR): never against the shared instances of `make test`.
// TestLeaderKilled needs KAFKA_NODES=3.
//
// The scenario lines and the totals line are printed at the end of the run and
// written, with each scenario's full report, to TIDE_VERIFY_REPORT (JSON), which
// accumulates over several runs of the package (verify-all runs it twice).
// TIDE_VERIFY_LOAD=N multiplies each scenario's events and rate by N;
// TIDE_VERIFY_LOGS=DIR keeps the processes' logs there.
package faults
