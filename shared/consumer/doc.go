// Package consumer runs a sarama consumer group for a tide function and owns the
// rules that keep consumption safe:
//
//   - one goroutine per assigned partition, records handed over in offset order, one
//     at a time (RecordHandler) or a partition's batch at a time (BatchHandler);
//   - an offset is marked only after its record was handled (or dead-lettered), and
//     marked offsets are committed every CommitInterval, when partitions are revoked
//     and on shutdown, so nothing is committed past a record still in flight;
//   - failures are retried with exponential backoff: Transient errors (Redis or Kafka
//     down) until they succeed or the partition is revoked, others MaxAttempts times,
//     then the record goes to the dead-letter topic and the partition moves on;
//   - a new group starts at INITIAL_OFFSET, resolved to a concrete offset and
//     committed during Setup, so Ready means "nothing published from now on can be
//     skipped"; Resume lets a handler that stores its offsets elsewhere (analytics,
//     in Redis) choose the starting position instead.
package consumer
