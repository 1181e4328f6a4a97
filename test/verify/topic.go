package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"function/shared/lag"
)

// topicReader reads the events topic back, read_committed, to learn which events
// landed: the ground truth the outputs are judged against. It speaks the Fetch
// protocol itself rather than through sarama's consumer, because it must know
// exactly where it is: with transactions, the last offsets of a partition may be
// control records that no consumer ever delivers, so "read up to the end" can only
// be told from the batches' own offsets.
type topicReader struct {
	client sarama.Client
	topic  string
	prefix string                 // source prefix of this run's events
	next   map[int32]int64        // next offset to read, per partition
	keyLen map[string]int         // source -> events of the key
	copies map[string]map[int]int // source -> copies per sequence number
}

func newTopicReader(client sarama.Client, topic, prefix string, keys []keyResult) *topicReader {
	r := &topicReader{client: client, topic: topic, prefix: prefix, next: map[int32]int64{}}
	r.setKeys(keys)
	return r
}

// setKeys says which sources and sequence numbers to count.
func (r *topicReader) setKeys(keys []keyResult) {
	r.copies, r.keyLen = map[string]map[int]int{}, map[string]int{}
	for _, k := range keys {
		r.copies[k.Source] = map[int]int{}
		r.keyLen[k.Source] = len(k.Events)
	}
}

// mark remembers the current end of every partition: the run's events come after.
func (r *topicReader) mark() error {
	ends, err := r.ends()
	if err != nil {
		return err
	}
	r.next = ends
	return nil
}

// ends returns the high-water mark of every partition.
func (r *topicReader) ends() (map[int32]int64, error) {
	if err := r.client.RefreshMetadata(r.topic); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", r.topic, err)
	}
	parts, err := r.client.Partitions(r.topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", r.topic, err)
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		off, err := r.client.GetOffset(r.topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("end of %s/%d: %w", r.topic, p, err)
		}
		out[p] = off
	}
	return out, nil
}

// catchUp reads every partition up to its last stable offset as of now.
func (r *topicReader) catchUp(ctx context.Context) error {
	parts, err := r.client.Partitions(r.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", r.topic, err)
	}
	for _, p := range parts {
		if _, ok := r.next[p]; !ok {
			r.next[p] = 0 // a partition added during the run: read it whole
		}
		if err := r.catchUpPartition(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (r *topicReader) catchUpPartition(ctx context.Context, p int32) error {
	for attempt := 0; ctx.Err() == nil; {
		start := r.next[p]
		done, err := r.fetchOnce(p)
		if err == nil {
			if done {
				return nil
			}
			if r.next[p] > start {
				attempt = 0
				continue
			}
			err = errors.New("no progress below the last stable offset")
		}
		// A leader moved or a broker restarted: find the partition again.
		if attempt++; attempt > 20 {
			return fmt.Errorf("read %s/%d at %d: %w", r.topic, p, r.next[p], err)
		}
		_ = r.client.RefreshMetadata(r.topic)
		select {
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// fetchOnce fetches partition p from its next offset and reports whether it has
// reached the partition's last stable offset.
func (r *topicReader) fetchOnce(p int32) (bool, error) {
	broker, err := r.client.Leader(r.topic, p)
	if err != nil {
		return false, err
	}
	req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 0, MinBytes: 1, MaxBytes: 32 << 20, Isolation: sarama.ReadCommitted}
	req.AddBlock(r.topic, p, r.next[p], 16<<20, -1)
	resp, err := broker.Fetch(req)
	if err != nil {
		_ = broker.Close()
		return false, err
	}
	block := resp.GetBlock(r.topic, p)
	if block == nil {
		return false, errors.New("no block in the fetch response")
	}
	if !errors.Is(block.Err, sarama.ErrNoError) {
		return false, block.Err
	}
	aborted := append([]*sarama.AbortedTransaction(nil), block.AbortedTransactions...)
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	abortedProducers := map[int64]bool{}
	start := r.next[p]
	for _, rs := range block.RecordsSet {
		b := rs.RecordBatch
		if b == nil || b.PartialTrailingRecord && len(b.Records) == 0 {
			break
		}
		if b.PartialTrailingRecord {
			break // the rest of this batch comes with the next fetch
		}
		last := b.LastOffset()
		if last < r.next[p] {
			continue // a batch that began before the offset asked for
		}
		for len(aborted) > 0 && aborted[0].FirstOffset <= last {
			abortedProducers[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		switch {
		case b.Control:
			if isAbortMarker(b) {
				delete(abortedProducers, b.ProducerID)
			}
		case b.IsTransactional && abortedProducers[b.ProducerID]:
			// aborted: never visible to a read_committed consumer
		default:
			for _, rec := range b.Records {
				if b.FirstOffset+rec.OffsetDelta >= r.next[p] {
					r.record(rec)
				}
			}
		}
		r.next[p] = last + 1
	}
	if r.next[p] == start {
		// Nothing more below the last stable offset (or a batch too large to fetch,
		// which a verifier event never is).
		return r.next[p] >= block.LastStableOffset || block.LastStableOffset < 0 && r.next[p] >= block.HighWaterMarkOffset, nil
	}
	return false, nil
}

// isAbortMarker reads a control batch's record key: version (int16), type (int16),
// where type 0 is ABORT and 1 is COMMIT.
func isAbortMarker(b *sarama.RecordBatch) bool {
	if len(b.Records) == 0 || len(b.Records[0].Key) < 4 {
		return false
	}
	return binary.BigEndian.Uint16(b.Records[0].Key[2:4]) == 0
}

// record counts one copy of a verifier event.
func (r *topicReader) record(rec *sarama.Record) {
	var id, source string
	for _, h := range rec.Headers {
		switch string(h.Key) {
		case "ce_id":
			id = string(h.Value)
		case "ce_source":
			source = string(h.Value)
		}
	}
	if !strings.HasPrefix(source, r.prefix) {
		return
	}
	seq := seqOf(id)
	c, ok := r.copies[source]
	if !ok || seq < 0 || seq >= r.keyLen[source] {
		return
	}
	c[seq]++
}

// landedOf returns the copies per sequence number of a key's events.
func (r *topicReader) landedOf(source string) map[int]int {
	out := make(map[int]int, len(r.copies[source]))
	for s, n := range r.copies[source] {
		out[s] = n
	}
	return out
}

// groupsLag is the summed lag of the groups on topic.
func groupsLag(client sarama.Client, topic string, groups []string) (int64, error) {
	var sum int64
	for _, g := range groups {
		ps, err := lag.Fetch(client, g, topic)
		if err != nil {
			return 0, err
		}
		sum += lag.Total(ps)
	}
	return sum, nil
}
