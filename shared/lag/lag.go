// Package lag computes consumer lag the way Kafka's own tools do, from the cluster
// itself: per partition, the high-water mark minus the group's committed offset. When
// the group has no valid commit on a partition (none, or one below the log start
// offset because retention deleted those records), the log start offset stands in
// for it, so records that no longer exist never count as lag.
package lag

import (
	"fmt"
	"sort"
	"time"

	"github.com/IBM/sarama"
)

// Partition is the lag of one partition.
type Partition struct {
	Partition     int32
	HighWaterMark int64
	LogStart      int64
	// Committed is the group's committed offset, -1 when it has none.
	Committed int64
	Lag       int64
}

// Fetch returns the lag of group on every partition of topic, in partition order.
func Fetch(client sarama.Client, group, topic string) ([]Partition, error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return nil, fmt.Errorf("lag of %s on %s: %w", group, topic, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("lag of %s on %s: %w", group, topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	committed, err := Committed(client, group, topic, parts)
	if err != nil {
		return nil, err
	}
	out := make([]Partition, 0, len(parts))
	for _, p := range parts {
		hw, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("high-water mark of %s/%d: %w", topic, p, err)
		}
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("log start offset of %s/%d: %w", topic, p, err)
		}
		out = append(out, Compute(p, hw, start, committed[p]))
	}
	return out, nil
}

// Compute is the lag of one partition from its offsets.
func Compute(partition int32, highWater, logStart, committed int64) Partition {
	base := committed
	if base < logStart {
		base = logStart
	}
	l := highWater - base
	if l < 0 {
		l = 0
	}
	return Partition{Partition: partition, HighWaterMark: highWater, LogStart: logStart, Committed: committed, Lag: l}
}

// Committed fetches group's committed offsets on topic's partitions (-1 where none).
//
// A coordinator that moved, or is still loading the offsets topic, is looked up again
// a few times before the error is returned.
func Committed(client sarama.Client, group, topic string, partitions []int32) (map[int32]int64, error) {
	var resp *sarama.OffsetFetchResponse
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
			_ = client.RefreshCoordinator(group)
		}
		var coord *sarama.Broker
		if coord, err = client.Coordinator(group); err != nil {
			continue
		}
		req := sarama.NewOffsetFetchRequest(client.Config().Version, group, map[string][]int32{topic: partitions})
		if resp, err = coord.FetchOffset(req); err != nil {
			continue
		}
		if kerr := resp.Err; kerr == sarama.ErrNotCoordinatorForConsumer || kerr == sarama.ErrOffsetsLoadInProgress || kerr == sarama.ErrConsumerCoordinatorNotAvailable {
			err = kerr
			continue
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		out[p] = -1
		b := resp.GetBlock(topic, p)
		if b == nil {
			continue
		}
		// A partition the coordinator could not answer for is not a partition
		// without a commit: reading it as -1 would send a consumer to
		// INITIAL_OFFSET (latest) and skip everything after its last commit.
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("committed offset of %s on %s/%d: %w", group, topic, p, b.Err)
		}
		out[p] = b.Offset
	}
	return out, nil
}

// Total sums the lag of ps.
func Total(ps []Partition) int64 {
	var t int64
	for _, p := range ps {
		t += p.Lag
	}
	return t
}
