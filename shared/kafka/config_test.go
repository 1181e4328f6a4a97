package kafka

import (
	"testing"

	"function/shared/config"
)

// The consumer's Messages channel holds two batches, so sarama's next fetch of a
// partition need not wait for the handler to finish the batch before (see
// ConsumerConfig); bounded for huge batches, and never below sarama's default.
func TestConsumerConfigBuffersTwoBatches(t *testing.T) {
	base, err := NewConfig(testKafkaConfig([]string{"127.0.0.1:9092"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ batch, want int }{{1, 256}, {100, 256}, {500, 1000}, {1500, 3000}, {100000, 4096}} {
		cc := config.Consumer{Group: "g", InitialOffset: "earliest", FetchMinBytes: 1, FetchMaxWaitMS: 100, BatchSize: tc.batch}
		c := ConsumerConfig(base, cc)
		if c.ChannelBufferSize != tc.want {
			t.Errorf("BATCH_SIZE %d: ChannelBufferSize %d, want %d", tc.batch, c.ChannelBufferSize, tc.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("BATCH_SIZE %d: %v", tc.batch, err)
		}
	}
	if base.ChannelBufferSize != 256 {
		t.Errorf("ConsumerConfig changed the base config's ChannelBufferSize to %d", base.ChannelBufferSize)
	}
}
