package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/kafka"
	"function/test/itest"
)

// TestTxnPublisherHoldRefreshRelease checks the partition manager's path through the
// transactional publisher: while held no transaction starts (a publish stays
// unanswered), RefreshPartitions sees partitions added meanwhile, and the records
// held back are partitioned over the new count once released.
func TestTxnPublisherHoldRefreshRelease(t *testing.T) {
	bs := brokers(t)
	topic := newTopic(t, bs, 1, nil)
	p := newTxnPublisher(t, bs, itest.UniqueName(t, "tx"), kafka.TxnOptions{})
	key := keyFor(t, 1, 2) // partition 0 of 1 today, partition 1 of 2 after the growth

	first := msg(topic, key, "before")
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{first}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	held := msg(topic, key, "held")
	res := make(chan error, 1)
	go func() { res <- p.Publish(context.Background(), []*sarama.ProducerMessage{held}) }()
	select {
	case err := <-res:
		t.Fatalf("publish answered while held: %v", err)
	case <-time.After(300 * time.Millisecond):
		// Negative check: nothing may be committed while held; the 300 ms bound
		// the observation, it is not a wait for a condition.
	}

	admin, err := sarama.NewClusterAdmin(bs, base(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.AddPartitions(admin, topic, 2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := p.RefreshPartitions(topic)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RefreshPartitions = %d, %v; want 2", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Release()
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if first.Partition != 0 || held.Partition != 1 {
		t.Fatalf("partitions: before the growth %d (want 0), held across it %d (want 1): the held record did not use the refreshed count", first.Partition, held.Partition)
	}
}
