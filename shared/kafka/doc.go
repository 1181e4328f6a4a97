// Package kafka is tide's Kafka layer over github.com/IBM/sarama: the client
// configuration every function shares (protocol version pinned, idempotent producer,
// read_committed consumers, murmur2 partitioning like Kafka's Java clients), topic
// administration, the CloudEvents Kafka protocol binding, and the batching Publisher
// ingest uses.
//
// Files by concern: config.go (sarama.Config builders), admin.go (topics, partitions,
// topic IDs), binding.go (CloudEvent <-> record), publisher.go (batching,
// acknowledged publishing), txn.go (the transactional publisher for
// TRANSACTIONAL_TYPES), deadletter.go (writing dead letters), dlq.go (reading and
// re-driving them, for `tide dlq`).
package kafka
