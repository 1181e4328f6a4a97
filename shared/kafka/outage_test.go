package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"function/shared/config"
	"function/shared/kafka"
)

// TestPublisherWorksAfterOutageLongerThanRetries fails every produce request for
// longer than the producer's retries last (sarama then gives the records up, after
// assigning them sequence numbers the broker never saw), with callers publishing
// throughout. Once the broker answers again the same Publisher must publish, and each
// record published after the outage must be in the topic exactly once: sarama's
// idempotent producer used to wedge here on out-of-order sequence numbers.
func TestPublisherWorksAfterOutageLongerThanRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage func(c *kfake.Cluster) (end func())
	}{
		{
			name: "produce answered NOT_LEADER_OR_FOLLOWER",
			outage: func(c *kfake.Cluster) func() {
				h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: -1})
				return h.Remove
			},
		},
		{
			name: "produce connections dropped",
			outage: func(c *kfake.Cluster) func() {
				var mu sync.Mutex
				down := true
				c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
					c.KeepControl()
					mu.Lock()
					defer mu.Unlock()
					if !down {
						c.DropControl()
						return nil, nil, false
					}
					return nil, errors.New("broker unreachable"), true
				})
				return func() { mu.Lock(); down = false; mu.Unlock() }
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			bs := cluster.ListenAddrs()
			topic := newTopic(t, bs, 3, nil)
			pc := kafka.ProducerConfig(base(t), config.Producer{BatchSize: 100, BatchTimeoutMS: 5})
			pc.Producer.Retry.Max, pc.Producer.Retry.Backoff = 3, 50*time.Millisecond // retries spent in well under a second
			p, err := kafka.NewPublisher(bs, pc, kafka.PublisherOptions{AckTimeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_ = p.Close(ctx)
			})
			publish := func(prefix string, n int) []error {
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = p.Publish(context.Background(), []*sarama.ProducerMessage{
							msg(topic, fmt.Sprintf("k%d", i), fmt.Sprintf("%s-%d", prefix, i)),
						})
					}()
				}
				wg.Wait()
				return errs
			}
			if errs := publish("before", 6); errors.Join(errs...) != nil {
				t.Fatalf("publish before the outage: %v", errors.Join(errs...))
			}

			end := tc.outage(cluster)
			failed := 0
			for _, err := range publish("during", 12) {
				if err != nil {
					failed++
				}
			}
			if failed == 0 {
				t.Fatal("no publish failed during the outage: the test proves nothing")
			}
			// Failed records give their share of the buffer back, once.
			if n, b := p.Buffered(), p.BufferedBytes(); n != 0 || b != 0 {
				t.Fatalf("buffered = %d records, %d bytes after every publish was answered", n, b)
			}
			end()

			// Each record published after the outage must be acknowledged; a wedged
			// producer fails them all (or never answers).
			for round := 0; round < 3; round++ {
				if errs := publish(fmt.Sprintf("after%d", round), 12); errors.Join(errs...) != nil {
					t.Fatalf("publish round %d after the outage: %v", round, errors.Join(errs...))
				}
			}
			got := counts(readValues(t, bs, topic, sarama.ReadCommitted))
			for round := 0; round < 3; round++ {
				for i := 0; i < 12; i++ {
					if v := fmt.Sprintf("after%d-%d", round, i); got[v] != 1 {
						t.Errorf("%s is in the topic %d times, want once", v, got[v])
					}
				}
			}
			for v, n := range got {
				if n > 1 {
					t.Errorf("%s is in the topic %d times", v, n)
				}
			}
			t.Logf("%d of 12 publishes failed during the outage; %d records in the topic", failed, len(got))
		})
	}
}
