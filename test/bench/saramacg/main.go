// Command saramacg is the bare consumer a user would write with sarama alone, for the
// benchmark to measure tide's analytics against: a consumer group that reads a topic
// from the earliest offset, marks every record and lets sarama auto-commit, and does
// nothing else with the records. It stops after -n records (or -timeout) and prints
// the rate from the first record to the last, so the group join is left out, as
// kafka-consumer-perf-test's fetch.nMsg.sec leaves it out.
//
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./test/bench/saramacg -topic events -n 100000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

func main() {
	topic := flag.String("topic", "events", "topic to read")
	group := flag.String("group", fmt.Sprintf("bench-sarama-%d", time.Now().UnixNano()), "consumer group (a new one reads from the earliest offset)")
	n := flag.Int64("n", 100000, "records to read")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	brokers := strings.Split(os.Getenv("KAFKA_BROKERS"), ",")
	res, err := consume(brokers, *topic, *group, *n, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "saramacg:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

type result struct {
	Records    int64         `json:"records"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Throughput float64       `json:"throughput"`
}

type handler struct {
	want  int64
	seen  atomic.Int64
	first atomic.Int64 // unix nanos of the first record
	last  atomic.Int64
	done  chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.first.CompareAndSwap(0, time.Now().UnixNano())
			sess.MarkMessage(m, "")
			if h.seen.Add(1) == h.want {
				h.last.Store(time.Now().UnixNano())
				close(h.done)
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

func consume(brokers []string, topic, group string, n int64, timeout time.Duration) (result, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cg, err := sarama.NewConsumerGroup(brokers, group, cfg)
	if err != nil {
		return result{}, fmt.Errorf("consumer group: %w", err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h := &handler{want: n, done: make(chan struct{})}
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				fmt.Fprintln(os.Stderr, "saramacg: consume:", err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		return result{}, fmt.Errorf("read %d of %d records in %s", h.seen.Load(), n, timeout)
	}
	d := time.Duration(h.last.Load() - h.first.Load())
	return result{Records: n, Elapsed: d, Throughput: float64(n) / d.Seconds()}, nil
}
