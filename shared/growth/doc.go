// Package growth grows the events topic's partitions at run time without breaking
// any key's order: the partition manager's loop (Manager), the hold-drain-grow-release
// procedure (Grower), the check that a consumer group has processed everything
// (Drained), and the ingest side of the protocol (Replica).
//
// # Why a protocol
//
// Adding partitions remaps keys: a key on partition 2 of 4 may land on partition 5 of
// 8. If a key's new events go to the new partition while its older events still wait
// on the old one, a consumer may handle them out of order. So the manager grows only
// when nothing of any key is still waiting: it holds every publisher, waits until every
// consumer group has processed every record published before the hold, grows, and
// releases the publishers with the new count. Records accepted during the hold wait in
// the publishers (up to PRODUCER_MAX_BUFFERED) and go out under the new count.
//
// # The protocol (Redis)
//
// Every ingest replica (Replica) keeps a lease in a sorted set (member: replica id,
// score: expiry in Redis server time) by a heartbeat script that also returns the
// coordination state {epoch, phase, partitions, deadline}; renewing the lease and
// reading the state is one atomic step. The manager (Grower):
//
//  1. begins a hold: increments the epoch and sets phase=hold with a deadline, in one
//     script, and publishes the epoch on the topic's channel;
//  2. waits (PARTITION_HOLD_TIMEOUT_MS) until every replica with a live lease has
//     held its publishers, waited for every record it had handed to Kafka to be
//     acknowledged, and added itself to the epoch's "held" set;
//  3. takes each partition's high-water mark and waits (PARTITION_DRAIN_TIMEOUT_MS)
//     until each watched consumer group has processed everything below it (Drained);
//  4. adds the partitions, unless the deadline is too close;
//  5. sets phase=release with the partition count now and waits until every live
//     replica refreshed its metadata to at least that count, released, and added
//     itself to the epoch's "released" set. The pause is from 1 to 5.
//
// A timeout in 2 or 3 abandons the growth: the manager releases with the old count.
//
// Why it is safe when parts fail:
//
//   - A replica that registers during a hold reads phase=hold in its first heartbeat
//     and holds before it publishes; one that registered before the hold is in the
//     manager's live set and is waited for. Both follow from the heartbeat and the
//     hold's start being atomic scripts on one Redis.
//   - A replica that cannot renew its lease holds its publishers by itself (it fences)
//     two heartbeats before the lease expires, so by the time the manager stops
//     waiting for it, it publishes nothing. It releases only after a heartbeat
//     succeeds again and its metadata is refreshed.
//   - A manager that dies mid-hold leaves a deadline behind: past it, replicas release
//     by themselves (refreshing first), and the manager never adds partitions when
//     less than the growth budget is left before it.
//
// Residual risk, stated: a replica cut off from Redis whose records were handed to
// Kafka before it fenced but are acknowledged only after its lease expired (Kafka
// retrying for seconds) may land them after the manager's high-water-mark snapshot.
// Their clients were not yet answered, so no acknowledged order is broken, but such
// a record may be processed after a later record of its key that went to a new
// partition.
//
// # Drained
//
// A group has processed every record before the hold when, on every partition, no
// record a read_committed consumer would receive lies at or above its committed
// offset and below the high-water mark taken after the hold. Transaction markers
// and aborted records occupy offsets and are never delivered, so the committed offset
// may stop short of the high-water mark forever; Drained fetches from the committed
// offset (read_committed) and looks past them instead of waiting for them.
package growth
