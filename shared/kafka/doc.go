// Package kafka is tide's Kafka layer over github.com/IBM/sarama: the client
// configuration every function shares (protocol version pinned, idempotent producer,
// read_committed consumers, murmur2 partitioning like Kafka's Java clients), topic
// administration, the CloudEvents Kafka protocol binding, and the batching Publisher
// ingest uses.
//
// Files by concern: config.go (sarama.Config builders), admin.go (topics, partitions,
// topic IDs), binding.go (CloudEvent <-> record), publisher.go (batching,
// acknowledged publishing).
package kafka
