package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/consumer"
	"function/shared/kafka"
	"function/shared/lag"
	"function/test/itest"
	"function/test/pipelinetest"
)

// brokers returns the real cluster's bootstrap addresses (skip or fail without one).
func brokers(t *testing.T) []string {
	t.Helper()
	return strings.Split(itest.Kafka(t), ",")
}

// kafkaConfig is the client configuration tide's functions use, so these tests speak
// to the broker exactly as tide does (protocol version pinned, same timeouts).
func kafkaConfig(t *testing.T) *sarama.Config {
	t.Helper()
	c, err := kafka.NewConfig(config.Kafka{ClientID: "tide-itest", Version: "3.9.0", DialTimeoutMS: 5000})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newClient(t *testing.T, bs []string) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(bs, kafkaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newAdmin(t *testing.T, bs []string) sarama.ClusterAdmin {
	t.Helper()
	a, err := sarama.NewClusterAdmin(bs, kafkaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// createTopic creates a fresh topic with n partitions through tide's own admin path.
func createTopic(t *testing.T, bs []string, name string, n int32) {
	t.Helper()
	created, err := kafka.EnsureTopic(newAdmin(t, bs), kafka.TopicSpec{Name: name, Partitions: n, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatalf("topic %s already existed; names must be unique per test", name)
	}
	// A topic just created may not be in every broker's metadata yet.
	c := newClient(t, bs)
	pipelinetest.Eventually(t, 10*time.Second, "topic "+name+" has its partitions", func() (bool, string) {
		got, err := kafka.PartitionCount(c, name)
		return err == nil && got == int(n), fmt.Sprintf("partitions=%d err=%v", got, err)
	})
}

// murmur2 is Kafka's Java client hash (org.apache.kafka.common.utils.Utils.murmur2),
// written here from the Java source rather than taken from sarama, so it is an
// independent reference for where a key must land.
func murmur2(data []byte) int32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the partition Kafka's Java DefaultPartitioner (and librdkafka's
// murmur2 partitioners) choose for a non-empty key: toPositive(murmur2(key)) % n.
func javaPartition(key string, n int) int32 {
	return (murmur2([]byte(key)) & 0x7fffffff) % int32(n)
}

// TestMurmur2Reference pins the reference hash to the values in Kafka's own unit test
// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java), so the other
// tests compare tide and kcat against Kafka, not against a copy of a mistake.
func TestMurmur2Reference(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := murmur2([]byte(tc.in)); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d (Kafka's UtilsTest)", tc.in, got, tc.want)
		}
	}
}

// delivery is one record a handler was given.
type delivery struct {
	partition int32
	offset    int64
	value     string
}

// recorder is a RecordHandler and BatchHandler that remembers every delivery, so a
// test can count how often each record was handled.
type recorder struct {
	mu   sync.Mutex
	seen []delivery
	// slow, when set, is how long each record takes, so a stop lands mid-stream.
	slow time.Duration
}

var (
	_ consumer.RecordHandler = (*recorder)(nil)
	_ consumer.BatchHandler  = (*recorder)(nil)
)

func (r *recorder) HandleRecord(ctx context.Context, m *sarama.ConsumerMessage) error {
	return r.take(ctx, m)
}

// HandleBatch takes a batch as one step, like analytics' single Lua script: an
// interrupted batch leaves no trace, so a delivery counted here was also marked.
func (r *recorder) HandleBatch(ctx context.Context, b consumer.Batch) error {
	if err := r.work(ctx, len(b.Records)); err != nil {
		return err
	}
	return r.record(b.Records...)
}

func (r *recorder) take(ctx context.Context, m *sarama.ConsumerMessage) error {
	if err := r.work(ctx, 1); err != nil {
		return err
	}
	return r.record(m)
}

// work takes n times the slow duration, or returns ctx's error when interrupted:
// then nothing was handled, and the runner must not mark it.
func (r *recorder) work(ctx context.Context, n int) error {
	if r.slow <= 0 {
		return nil
	}
	select {
	case <-time.After(time.Duration(n) * r.slow):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *recorder) record(ms ...*sarama.ConsumerMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		r.seen = append(r.seen, delivery{partition: m.Partition, offset: m.Offset, value: string(m.Value)})
	}
	return nil
}

// deliveries returns a copy of what was handled so far.
func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.seen...)
}

// counts returns how often each value was handled.
func (r *recorder) counts() map[string]int {
	out := map[string]int{}
	for _, d := range r.deliveries() {
		out[d.value]++
	}
	return out
}

// consumerSettings are fast settings for tests: a short commit interval so commits are
// observable within a second, and earliest for a new group unless said otherwise.
func consumerSettings(group, initial string, batch int) config.Consumer {
	return config.Consumer{
		Group: group, InitialOffset: initial, FetchMinBytes: 1, FetchMaxWaitMS: 100,
		BatchSize: batch, BatchWaitMS: 20, CommitIntervalMS: 200, MaxAttempts: 3, RetryBackoffMS: 50,
	}
}

// runner is a started consumer.Runner and the means to stop it.
type runner struct {
	*consumer.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// startRunner starts tide's consumer runner on topic with h (as record handler when
// s.BatchSize is 1, else as batch handler) and waits until it is ready.
func startRunner(t *testing.T, bs []string, topic string, s config.Consumer, h *recorder) *runner {
	t.Helper()
	opts := consumer.Options{
		Brokers: bs, Sarama: kafka.ConsumerConfig(kafkaConfig(t), s), Topics: []string{topic},
		Settings: s, Logger: pipelinetest.Logger(),
	}
	if s.BatchSize == 1 {
		opts.Record = h
	} else {
		opts.Batch = h
	}
	r, err := consumer.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &runner{Runner: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rn.done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("runner %s: %v", s.Group, err)
		}
	}()
	t.Cleanup(rn.stop)
	pipelinetest.Eventually(t, 30*time.Second, "runner "+s.Group+" ready", func() (bool, string) {
		return r.Ready(), "not ready"
	})
	return rn
}

// stop ends the runner (it commits what was handled and leaves the group) and waits.
func (r *runner) stop() {
	r.cancel()
	<-r.done
}

// waitLag waits until group has committed everything on topic (lag 0 on every
// partition, as Kafka's tools compute it) and returns the per-partition view.
func waitLag(t *testing.T, c sarama.Client, group, topic string, timeout time.Duration) []lag.Partition {
	t.Helper()
	var ps []lag.Partition
	pipelinetest.Eventually(t, timeout, "group "+group+" lag 0", func() (bool, string) {
		var err error
		ps, err = lag.Fetch(c, group, topic)
		return err == nil && lag.Total(ps) == 0, fmt.Sprintf("%+v err=%v", ps, err)
	})
	return ps
}

// sortedKeys returns m's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
