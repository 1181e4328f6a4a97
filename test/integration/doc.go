// Package integration checks tide against a real Apache Kafka broker and a real
// redis-server (test/infra starts both), and checks tide's records and offsets with
// clients that share no code with it: kcat (librdkafka) and Kafka's own Java CLI
// tools.
//
// Every test needs KAFKA_BROKERS (and REDIS_ADDR when it runs the pipeline): without
// them it is skipped, or fails under CI=true (test/itest). Each test works on its own
// topics, groups and Redis key prefix (itest.UniqueName), so the tests run in parallel
// on one broker and can be re-run against the same broker.
//
// Files by concern: topics_test.go (creation, growth, the publisher's partition
// count), txn_test.go (read_committed and offsets past control records),
// resume_test.go (a restarted group resumes at its commits), kcat_test.go (the
// CloudEvents Kafka binding and murmur2 partitioning as librdkafka sees them, and
// records kcat produced), groups_test.go (kafka-consumer-groups against tide's lag).
package integration
