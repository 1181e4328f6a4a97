package growth

import (
	"fmt"
	"sort"

	"github.com/IBM/sarama"

	"function/shared/kafka"
	"function/shared/lag"
)

// drainFetchBytes bounds one fetch of the scan past markers; a longer run of markers
// and aborted batches takes several fetches (at most maxDrainFetches).
const (
	drainFetchBytes = 256 << 10
	maxDrainFetches = 32
)

// Offsets are per-partition offsets of one topic.
type Offsets map[int32]int64

// Partitions returns the partitions of o, sorted.
func (o Offsets) Partitions() []int32 {
	ps := make([]int32, 0, len(o))
	for p := range o {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// Marks reads every partition's high-water mark and log start offset now.
func Marks(client sarama.Client, topic string) (high, start Offsets, err error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return nil, nil, fmt.Errorf("marks of %s: %w", topic, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, nil, fmt.Errorf("marks of %s: %w", topic, err)
	}
	high, start = Offsets{}, Offsets{}
	for _, p := range parts {
		if high[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			return nil, nil, fmt.Errorf("high-water mark of %s/%d: %w", topic, p, err)
		}
		if start[p], err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
			return nil, nil, fmt.Errorf("log start offset of %s/%d: %w", topic, p, err)
		}
	}
	return high, start, nil
}

// Drained reports whether group has processed every record below high on topic: on
// every partition, no record a read_committed consumer receives lies at or above the
// group's committed offset and below the mark. Transaction markers and aborted
// records there are looked past, not waited for (see the package documentation).
//
// A partition the group has no commit on counts from its log start (start), because
// the consumer runner starts a new partition of a known group at the log start. A
// group with no commit on any partition of the topic is not consuming it: it has
// nothing to keep in order, and Drained answers true with a note. When not drained,
// waiting says what is still waiting.
func Drained(client sarama.Client, group, topic string, high, start Offsets) (ok bool, waiting string, err error) {
	parts := high.Partitions()
	committed, err := lag.Committed(client, group, topic, parts)
	if err != nil {
		return false, "", err
	}
	known := false
	for _, c := range committed {
		known = known || c >= 0
	}
	if !known {
		return true, fmt.Sprintf("group %s has no committed offset on %s (not consuming it)", group, topic), nil
	}
	for _, p := range parts {
		from := max(committed[p], start[p])
		if from >= high[p] {
			continue
		}
		at, why, err := firstDelivered(client, topic, p, from, high[p])
		if err != nil {
			return false, "", err
		}
		if at >= 0 {
			return false, fmt.Sprintf("group %s, partition %d: %s at offset %d (committed %d, mark %d)", group, p, why, at, committed[p], high[p]), nil
		}
	}
	return true, "", nil
}

// firstDelivered returns the offset of the first record in [from, to) of topic/p that
// a read_committed consumer receives, or -1 when there is none. Anything it cannot
// judge (a legacy message set, an open transaction holding back the last stable
// offset) counts as a record, with why saying so, so the answer errs towards waiting.
func firstDelivered(client sarama.Client, topic string, p int32, from, to int64) (at int64, why string, err error) {
	pos := from
	for range maxDrainFetches {
		block, err := fetch(client, topic, p, pos)
		if err != nil {
			return 0, "", err
		}
		next, found, judged := scan(block, pos, to)
		switch {
		case found:
			return next, "a record not yet processed", nil
		case !judged:
			return next, "a batch that cannot be judged", nil
		case next >= to:
			return -1, "", nil
		case next == pos:
			// Nothing returned below the mark: the last stable offset has not passed
			// it yet (a transaction still open), so the records may still come.
			return pos, "the end of an open transaction", nil
		}
		pos = next
	}
	return pos, "more markers than one check reads", nil
}

// scan walks block's batches from pos: found reports a delivered record below to (at
// next); otherwise next is the offset after the batches walked, all of them control
// batches or aborted. judged is false for a batch scan cannot read.
func scan(block *sarama.FetchResponseBlock, pos, to int64) (next int64, found, judged bool) {
	pending := append([]*sarama.AbortedTransaction(nil), block.AbortedTransactions...)
	sort.Slice(pending, func(i, j int) bool { return pending[i].FirstOffset < pending[j].FirstOffset })
	aborted := map[int64]bool{} // producers inside an aborted transaction here
	for _, recs := range block.RecordsSet {
		b := recs.RecordBatch
		if b == nil {
			return pos, false, false
		}
		if b.PartialTrailingRecord {
			return pos, false, true // the rest comes with the next fetch
		}
		last := b.LastOffset()
		for len(pending) > 0 && pending[0].FirstOffset <= last {
			aborted[pending[0].ProducerID] = true
			pending = pending[1:]
		}
		switch {
		case b.Control:
			// A producer has one transaction at a time, so its next marker ends the
			// aborted transaction it was in.
			delete(aborted, b.ProducerID)
		case b.IsTransactional && aborted[b.ProducerID]:
		default:
			for _, rec := range b.Records {
				if o := b.FirstOffset + rec.OffsetDelta; o >= pos {
					if o < to {
						return o, true, true
					}
					return o, false, true
				}
			}
		}
		if last+1 > pos {
			pos = last + 1
		}
	}
	return pos, false, true
}

// fetch reads topic/p from offset, read_committed, without waiting.
func fetch(client sarama.Client, topic string, p int32, offset int64) (*sarama.FetchResponseBlock, error) {
	return kafka.FetchCommitted(client, topic, p, offset, drainFetchBytes)
}
