// Package verify proves tide's delivery guarantees from the outside: it sends
// numbered events through ingest, reads what came out (notifications, analytics
// counts and, when it can reach Kafka, the topic itself) and reports, per partition
// key and per event, what was lost, duplicated or reordered, and when ingest refused
// to take events.
//
// It lives under test/ rather than shared/: it is a client of a running pipeline,
// used by `tide verify` and the fault scenarios in test/faults, and no function
// depends on it. Keeping it out of shared/ keeps the deployed functions' code free
// of test machinery.
//
// # What is sent
//
// Keys partition keys, each with EventsPerKey events numbered 0, 1, 2, ... Every
// event of key k has source "/tide-verify/RUN/k" and the partitionkey extension
// "RUN-k", so each key is its own notification channel (a channel defaults to the
// source) and its own analytics source: the channel's stream order is the order in
// which the key's events were processed, and the source's count is how many of them
// analytics counted. A key's events are sent one after another (event n+1 only once
// event n was answered), so send order is sequence order; the keys run in parallel,
// paced together at Rate attempts per second. An attempt answered 5xx or 429, or not
// answered, is retried (same id) with backoff for up to RetryFor; a 4xx is a
// rejection (a bug in the verifier or a wrong URL).
//
// `sent` counts attempts and `acked` counts 202 answers (one per event at most).
// Unavailability is measured per key from the start of a failed attempt to the start
// of the next successful one; unavailable_ms is the length of the union of those
// periods over all keys.
//
// # What must come out
//
// An acknowledged event must come out exactly once: one notification, counted once
// by analytics, present in Kafka. An event that was never acknowledged may still
// have landed (the broker wrote it, then the answer was lost or timed out), so it
// may come out at most once; but if it landed in Kafka, it must come out like any
// other, since the consumers cannot know it was refused.
//
//   - lost: acknowledged events missing from Kafka, and events that landed (or were
//     acknowledged) without a notification, plus, per key, analytics counts below
//     the number of distinct events that landed. Analytics is observed per key
//     (counts per source), so when an event lacks both its notification and its
//     count it is counted once: lost is a lower bound of the distinct events lost,
//     exact when the losses do not overlap or overlap fully.
//   - duplicated: every notification beyond the first of an event, plus, per key,
//     analytics counts above the number of distinct events that landed.
//   - reordered: per key, notifications of an event whose sequence number is below
//     one notified before it.
//
// Which unacknowledged events landed is read from the topic itself (read_committed,
// from the end offsets at the start of the run) when Kafka is reachable; otherwise
// an unacknowledged event counts as landed when it was notified, and analytics may
// count up to the number of unacknowledged events more without it being a
// duplicate. Kafka-level copies (a retried event written twice) are reported but are
// no fault: the consumers deduplicate by (source, id).
//
// # When the outputs are final
//
// The outputs are read in rounds until every acknowledged and every landed event is
// reflected, the named consumer groups have no lag, and the topic's end offsets did
// not move during the round (so the snapshot is consistent), or until Settle runs
// out; whatever is missing then is reported as lost.
package verify
