package kafka

import (
	"fmt"

	"github.com/IBM/sarama"
)

// FetchCommitted reads topic/partition from offset with one read_committed fetch,
// without waiting: the broker answers with what it has up to the last stable offset,
// at most maxBytes. The block keeps the control batches and the aborted-transaction
// list that sarama's consumer hides, which is what code that must look past
// transaction markers needs.
func FetchCommitted(client sarama.Client, topic string, partition int32, offset int64, maxBytes int32) (*sarama.FetchResponseBlock, error) {
	leader, err := client.Leader(topic, partition)
	if err != nil {
		return nil, fmt.Errorf("leader of %s/%d: %w", topic, partition, err)
	}
	req := &sarama.FetchRequest{MaxBytes: maxBytes, Isolation: sarama.ReadCommitted, SessionEpoch: -1}
	// The versions sarama's own consumer uses for the pinned protocol version (tide
	// pins 2.1 or later; Kafka 4 accepts these).
	switch v := client.Config().Version; {
	case v.IsAtLeast(sarama.V2_7_0_0):
		req.Version = 12
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 11
	default:
		req.Version = 10
	}
	req.AddBlock(topic, partition, offset, maxBytes, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s/%d@%d: %w", topic, partition, offset, err)
	}
	block := resp.GetBlock(topic, partition)
	if block == nil {
		return nil, fmt.Errorf("fetch %s/%d@%d: no block in the response", topic, partition, offset)
	}
	if block.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("fetch %s/%d@%d: %w", topic, partition, offset, block.Err)
	}
	return block, nil
}
