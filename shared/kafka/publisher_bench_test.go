package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/embedded"
)

// BenchmarkPublish measures Publisher.Publish on the embedded broker (kfake), with
// ingest's producer settings: many callers at once, each waiting for its own
// acknowledgement, as request handlers do. The broker is in-process, so this is the
// publisher's and sarama's own cost more than a network's; `make bench` measures the
// real broker.
func BenchmarkPublish(b *testing.B) {
	k, err := embedded.StartKafka(0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	kc := config.Kafka{Brokers: k.Brokers(), Topic: "bench", DeadLetterTopic: "bench-dlq", Partitions: 6, ReplicationFactor: 1, ClientID: "bench", Version: "3.9.0", DialTimeoutMS: 5000}
	base, err := NewConfig(kc)
	if err != nil {
		b.Fatal(err)
	}
	if err := EnsureTopics(kc, base); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 1024)
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("records-%d", batch), func(b *testing.B) {
			p, err := NewPublisher(kc.Brokers, ProducerConfig(base, config.Producer{BatchSize: 1000, BatchTimeoutMS: 5}), PublisherOptions{MaxBuffered: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = p.Close(ctx)
			}()
			ctx := context.Background()
			b.SetParallelism(32) // 64 callers on 2 cores, like ingest at concurrency 64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					msgs := make([]*sarama.ProducerMessage, batch)
					for j := range msgs {
						msgs[j] = &sarama.ProducerMessage{Topic: kc.Topic, Key: sarama.StringEncoder(fmt.Sprint("key-", i%100)), Value: sarama.ByteEncoder(value)}
						i++
					}
					if err := p.Publish(ctx, msgs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
