package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/config"
	"function/shared/consumer"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/lag"
	"function/test/itest"
)

// brokers is the embedded broker, or the real one when KAFKA_BROKERS is set (CI).
func brokers(t *testing.T) []string {
	t.Helper()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k.Brokers()
}

func baseConfig(t *testing.T) *sarama.Config {
	t.Helper()
	c, err := kafka.NewConfig(config.Kafka{ClientID: "tide-test", Version: "3.9.0", DialTimeoutMS: 5000})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createTopics(t *testing.T, bs []string, names ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(bs, baseConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, n := range names {
		if _, err := kafka.EnsureTopic(admin, kafka.TopicSpec{Name: n, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// record is a CloudEvent in the Kafka binding's binary mode, keyed by key.
func record(t *testing.T, topic, id, key string) *sarama.ProducerMessage {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetSource("/runner-test")
	e.SetType("test.runner")
	if err := e.SetData(event.ApplicationJSON, map[string]string{"id": id}); err != nil {
		t.Fatal(err)
	}
	m, err := kafka.EncodeRecord(context.Background(), topic, &e, key)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func produce(t *testing.T, bs []string, msgs ...*sarama.ProducerMessage) {
	t.Helper()
	c := kafka.ProducerConfig(baseConfig(t), config.Producer{BatchSize: 100, BatchTimeoutMS: 5})
	p, err := sarama.NewSyncProducer(bs, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

// readTopic reads partition 0 of topic from the start until want records arrived
// (failing after timeout), then checks that no more are there.
func readTopic(t *testing.T, bs []string, topic string, want int) []*sarama.ConsumerMessage {
	t.Helper()
	client, err := sarama.NewClient(bs, baseConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	hwm, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		t.Fatal(err)
	}
	if hwm != int64(want) {
		t.Fatalf("%s holds %d records, want %d", topic, hwm, want)
	}
	if want == 0 {
		return nil
	}
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	timeout := time.After(20 * time.Second)
	for len(out) < want {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case <-timeout:
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
	}
	return out
}

// handlerFunc adapts a function to RecordHandler.
type handlerFunc func(ctx context.Context, r *sarama.ConsumerMessage) error

func (f handlerFunc) HandleRecord(ctx context.Context, r *sarama.ConsumerMessage) error {
	return f(ctx, r)
}

// calls records, per event id, when the handler was called.
type calls struct {
	mu sync.Mutex
	at map[string][]time.Time
	ts map[string]time.Time // the record's timestamp
}

func (c *calls) add(r *sarama.ConsumerMessage) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at == nil {
		c.at, c.ts = map[string][]time.Time{}, map[string]time.Time{}
	}
	id := header(r, "ce_id")
	c.at[id] = append(c.at[id], time.Now())
	c.ts[id] = r.Timestamp
	return len(c.at[id])
}

func (c *calls) timestamp(id string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ts[id]
}

func (c *calls) get(id string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at[id]...)
}

func settings(group string) config.Consumer {
	return config.Consumer{
		Group: group, InitialOffset: "earliest", FetchMinBytes: 1, FetchMaxWaitMS: 50,
		BatchSize: 1, CommitIntervalMS: 100, MaxAttempts: 3, RetryBackoffMS: 10,
	}
}

// run starts a runner and returns a function that stops it and waits for Run.
func run(t *testing.T, opts consumer.Options) (*consumer.Runner, func()) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := consumer.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("runner did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %s", what, timeout, desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func header(r *sarama.ConsumerMessage, key string) string { return string(kafka.Header(r, key)) }

// TestRunnerRetryPolicy drives the record runner with a handler that fails the first
// record in different ways and checks the policy: plain errors are retried with
// doubling delays up to MaxAttempts and then dead-lettered; a Poison error is
// dead-lettered at once; a Transient error is retried past MaxAttempts and never
// dead-lettered. In every case the partition moves on to the next record, and the
// dead letter carries the error, the attempt count, the original coordinates, key,
// value and ce_ headers.
func TestRunnerRetryPolicy(t *testing.T) {
	bs := brokers(t)
	boom := errors.New("handler bug")
	cases := []struct {
		name         string
		fail         func(attempt int) error // the first record's error on attempt n (nil: success)
		wantAttempts int
		wantDLQ      string // "" when the record must not be dead-lettered; else a substring of its error
	}{
		{
			name:         "succeeds after failures below MaxAttempts",
			fail:         func(n int) error { return errorIf(n <= 2, boom) },
			wantAttempts: 3,
		},
		{
			name:         "fails every attempt: dead-lettered after MaxAttempts",
			fail:         func(int) error { return boom },
			wantAttempts: 3,
			wantDLQ:      "handler bug",
		},
		{
			name:         "poison: dead-lettered without retries",
			fail:         func(int) error { return consumer.Poison(errors.New("cannot decode")) },
			wantAttempts: 1,
			wantDLQ:      "poison: cannot decode",
		},
		{
			name:         "transient beyond MaxAttempts: retried, never dead-lettered",
			fail:         func(n int) error { return errorIf(n <= 5, consumer.Transient(errors.New("redis down"))) },
			wantAttempts: 6,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic, dlqTopic, group := itest.UniqueName(t, "runner"), itest.UniqueName(t, "runner-dlq"), itest.UniqueName(t, "g")
			createTopics(t, bs, topic, dlqTopic)
			first, next := record(t, topic, "first", "k1"), record(t, topic, "next", "k1")
			produce(t, bs, first, next)

			var seen calls
			h := handlerFunc(func(_ context.Context, r *sarama.ConsumerMessage) error {
				n := seen.add(r)
				if header(r, "ce_id") == "first" {
					return tc.fail(n)
				}
				return nil
			})
			dl, err := kafka.NewDeadLetters(bs, baseConfig(t), dlqTopic)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dl.Close() })
			s := settings(group)
			r, stop := run(t, consumer.Options{Brokers: bs, Sarama: kafka.ConsumerConfig(baseConfig(t), s), Topics: []string{topic}, Settings: s, Record: h, DeadLetters: dl})

			// The partition keeps moving: the record after the failing one is handled
			// and both are committed.
			eventually(t, 30*time.Second, "both records handled and committed", func() (bool, string) {
				c, err := lag.Committed(r.Client(), group, topic, []int32{0})
				return err == nil && c[0] == 2 && len(seen.get("next")) == 1, fmt.Sprintf("committed=%v err=%v next=%d", c, err, len(seen.get("next")))
			})
			stop()

			at := seen.get("first")
			if len(at) != tc.wantAttempts {
				t.Errorf("first record handled %d times, want %d", len(at), tc.wantAttempts)
			}
			// Backoff doubles from RETRY_BACKOFF_MS: a timer never fires early, so the
			// gaps are at least 10, 20, 40, ... ms.
			for i := 1; i < len(at); i++ {
				if min := time.Duration(10<<(i-1)) * time.Millisecond; at[i].Sub(at[i-1]) < min {
					t.Errorf("retry %d came %s after the previous attempt, want at least %s", i, at[i].Sub(at[i-1]), min)
				}
			}

			if tc.wantDLQ == "" {
				readTopic(t, bs, dlqTopic, 0)
				return
			}
			d := readTopic(t, bs, dlqTopic, 1)[0]
			checkDeadLetter(t, d, first, deadLetterWant{
				err: tc.wantDLQ, attempts: tc.wantAttempts, topic: topic, partition: 0, offset: 0, group: group,
				timestamp: seen.timestamp("first"),
			})
		})
	}
}

type deadLetterWant struct {
	err       string
	attempts  int
	topic     string
	partition int32
	offset    int64
	group     string
	timestamp time.Time // the original record's
}

// checkDeadLetter checks that d is orig, unchanged, with the tide_dlq_* headers of w.
func checkDeadLetter(t *testing.T, d *sarama.ConsumerMessage, orig *sarama.ProducerMessage, w deadLetterWant) {
	t.Helper()
	if got := header(d, kafka.HeaderDLQError); !strings.Contains(got, w.err) {
		t.Errorf("%s = %q, want it to contain %q", kafka.HeaderDLQError, got, w.err)
	}
	for k, want := range map[string]string{
		kafka.HeaderDLQAttempts:  strconv.Itoa(w.attempts),
		kafka.HeaderDLQTopic:     w.topic,
		kafka.HeaderDLQPartition: strconv.Itoa(int(w.partition)),
		kafka.HeaderDLQOffset:    strconv.FormatInt(w.offset, 10),
		kafka.HeaderDLQGroup:     w.group,
	} {
		if got := header(d, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, header(d, kafka.HeaderDLQTime)); err != nil {
		t.Errorf("header %s: %v", kafka.HeaderDLQTime, err)
	}
	if !d.Timestamp.Equal(w.timestamp) {
		t.Errorf("dead letter timestamp %s, want the original record's %s", d.Timestamp, w.timestamp)
	}
	key, _ := orig.Key.Encode()
	value, _ := orig.Value.Encode()
	if string(d.Key) != string(key) || string(d.Value) != string(value) {
		t.Errorf("dead letter key/value = %q/%q, want the original %q/%q", d.Key, d.Value, key, value)
	}
	for _, h := range orig.Headers {
		if got := kafka.Header(d, string(h.Key)); string(got) != string(h.Value) {
			t.Errorf("original header %s = %q in the dead letter, want %q", h.Key, got, h.Value)
		}
	}
	// Still the CloudEvent it was, so it can be re-driven as it is.
	e, err := kafka.DecodeRecord(context.Background(), d)
	if err != nil {
		t.Fatalf("dead letter is no longer a CloudEvent: %v", err)
	}
	for _, h := range orig.Headers {
		if string(h.Key) == "ce_id" && e.ID() != string(h.Value) {
			t.Errorf("decoded dead letter has id %q, want %q", e.ID(), h.Value)
		}
	}
}

// batchFunc adapts a function to BatchHandler.
type batchFunc func(ctx context.Context, b consumer.Batch) error

func (f batchFunc) HandleBatch(ctx context.Context, b consumer.Batch) error { return f(ctx, b) }

// TestBatchRunnerSetsPoisonAside checks the batch path: a handler that dead-letters
// one record of its batch through Batch.DeadLetter (attempts 1) and applies the rest
// keeps the partition moving, and nothing else is dead-lettered.
func TestBatchRunnerSetsPoisonAside(t *testing.T) {
	bs := brokers(t)
	topic, dlqTopic, group := itest.UniqueName(t, "batch"), itest.UniqueName(t, "batch-dlq"), itest.UniqueName(t, "g")
	createTopics(t, bs, topic, dlqTopic)
	msgs := []*sarama.ProducerMessage{record(t, topic, "a", "k"), record(t, topic, "bad", "k"), record(t, topic, "c", "k")}
	produce(t, bs, msgs...)

	var mu sync.Mutex
	applied := map[string]int{}
	var badTime time.Time
	h := batchFunc(func(ctx context.Context, b consumer.Batch) error {
		for _, r := range b.Records {
			if header(r, "ce_id") == "bad" {
				mu.Lock()
				badTime = r.Timestamp
				mu.Unlock()
				if err := b.DeadLetter(ctx, r, consumer.Poison(errors.New("bad aggregate"))); err != nil {
					return consumer.Transient(err)
				}
				continue
			}
			mu.Lock()
			applied[header(r, "ce_id")]++
			mu.Unlock()
		}
		return nil
	})
	dl, err := kafka.NewDeadLetters(bs, baseConfig(t), dlqTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	s := settings(group)
	s.BatchSize, s.BatchWaitMS = 10, 50
	r, stop := run(t, consumer.Options{Brokers: bs, Sarama: kafka.ConsumerConfig(baseConfig(t), s), Topics: []string{topic}, Settings: s, Batch: h, DeadLetters: dl})
	eventually(t, 30*time.Second, "batch committed", func() (bool, string) {
		c, err := lag.Committed(r.Client(), group, topic, []int32{0})
		return err == nil && c[0] == 3, fmt.Sprintf("committed=%v err=%v", c, err)
	})
	stop()
	mu.Lock()
	if applied["a"] != 1 || applied["c"] != 1 || applied["bad"] != 0 {
		t.Errorf("applied %v, want a and c once each and bad never", applied)
	}
	mu.Unlock()
	d := readTopic(t, bs, dlqTopic, 1)[0]
	mu.Lock()
	want := deadLetterWant{err: "poison: bad aggregate", attempts: 1, topic: topic, partition: 0, offset: 1, group: group, timestamp: badTime}
	mu.Unlock()
	checkDeadLetter(t, d, msgs[1], want)
}

func errorIf(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}
