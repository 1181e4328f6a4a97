package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/test/itest"
)

// brokers is the embedded broker, or the real one when KAFKA_BROKERS is set (CI), so
// the transaction tests run on both.
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

func base(t *testing.T) *sarama.Config {
	t.Helper()
	c, err := kafka.NewConfig(config.Kafka{ClientID: "tide-test", Version: "3.9.0", DialTimeoutMS: 5000})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTopic(t *testing.T, bs []string, partitions int32, cfg map[string]*string) string {
	t.Helper()
	name := itest.UniqueName(t, "txn")
	admin, err := sarama.NewClusterAdmin(bs, base(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kafka.EnsureTopic(admin, kafka.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: 1, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newTxnPublisher(t *testing.T, bs []string, id string, opts kafka.TxnOptions) *kafka.TxnPublisher {
	t.Helper()
	opts.Logger = quiet
	p, err := kafka.NewTxnPublisher(bs, kafka.TxnProducerConfig(base(t), config.Producer{BatchSize: 1000, BatchTimeoutMS: 5}, id), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return p
}

func msg(topic, key, value string) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)}
}

// keyFor returns a key that tide's partitioner puts on partition p of n.
func keyFor(t *testing.T, p, n int32) string {
	t.Helper()
	part := kafka.ProducerConfig(base(t), config.Producer{BatchSize: 1, BatchTimeoutMS: 1}).Producer.Partitioner("any")
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("key-%d", i)
		got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(k)}, n)
		if err != nil {
			t.Fatal(err)
		}
		if got == p {
			return k
		}
	}
	t.Fatalf("no key for partition %d of %d", p, n)
	return ""
}

// readValues reads every partition of topic from the start with the isolation level
// and returns the values seen, in order per partition. It first appends a
// non-transactional sentinel to each partition and reads up to it, so "everything"
// is well defined: a read_committed reader gets past an aborted transaction only
// through its abort marker.
func readValues(t *testing.T, bs []string, topic string, isolation sarama.IsolationLevel) []string {
	t.Helper()
	c := base(t)
	c.Consumer.IsolationLevel = isolation
	client, err := sarama.NewClient(bs, c)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	pc := kafka.ProducerConfig(base(t), config.Producer{BatchSize: 1, BatchTimeoutMS: 1})
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	sp, err := sarama.NewSyncProducer(bs, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	sentinel := "sentinel-" + itest.UniqueName(t, "")
	for _, p := range parts {
		if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(sentinel)}); err != nil {
			t.Fatal(err)
		}
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var out []string
	for _, p := range parts {
		pcon, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case m := <-pcon.Messages():
				if string(m.Value) == sentinel {
					break read
				}
				if !strings.HasPrefix(string(m.Value), "sentinel-") { // an earlier read's
					out = append(out, string(m.Value))
				}
			case <-timeout:
				pcon.Close()
				t.Fatalf("partition %d of %s: sentinel not reached (%s) within 30s; read %v", p, topic, isolationName(isolation), out)
			}
		}
		pcon.Close()
	}
	return out
}

func isolationName(l sarama.IsolationLevel) string {
	if l == sarama.ReadCommitted {
		return "read_committed"
	}
	return "read_uncommitted"
}

func counts(values []string) map[string]int {
	m := map[string]int{}
	for _, v := range values {
		m[v]++
	}
	return m
}

// TestTxnPublisherGroupsConcurrentCallers checks that the records of concurrent
// callers share transactions (fewer commits than callers), that every caller is
// answered only after its transaction committed, and that each record is in the
// topic exactly once for a read_committed reader.
func TestTxnPublisherGroupsConcurrentCallers(t *testing.T) {
	bs := brokers(t)
	topic := newTopic(t, bs, 3, nil)
	p := newTxnPublisher(t, bs, itest.UniqueName(t, "tx"), kafka.TxnOptions{Window: 100 * time.Millisecond})

	const callers, each = 20, 3
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msgs []*sarama.ProducerMessage
			for i := 0; i < each; i++ {
				msgs = append(msgs, msg(topic, fmt.Sprintf("k%d", c), fmt.Sprintf("c%d-%d", c, i)))
			}
			errs[c] = p.Publish(context.Background(), msgs)
		}()
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", c, err)
		}
	}
	st := p.Stats()
	if st.Commits == 0 || st.Commits > callers/2 {
		t.Errorf("%d transactions for %d concurrent callers, want them grouped (1..%d)", st.Commits, callers, callers/2)
	}
	got := counts(readValues(t, bs, topic, sarama.ReadCommitted))
	if len(got) != callers*each {
		t.Errorf("read_committed sees %d distinct records, want %d", len(got), callers*each)
	}
	for v, n := range got {
		if n != 1 {
			t.Errorf("record %s seen %d times", v, n)
		}
	}
}

// TestTxnPublisherAbortsAndRecovers makes the broker reject one record of a
// transaction (larger than the topic's max.message.bytes: an abortable error). Every
// caller of that transaction must fail, the records of it that reached the log must
// stay invisible to read_committed readers, and the same producer must commit the
// next transaction.
func TestTxnPublisherAbortsAndRecovers(t *testing.T) {
	bs := brokers(t)
	maxBytes := "4096"
	topic := newTopic(t, bs, 3, map[string]*string{"max.message.bytes": &maxBytes})
	// MaxRecords 4 closes the window as soon as both callers are in: one transaction.
	p := newTxnPublisher(t, bs, itest.UniqueName(t, "tx"), kafka.TxnOptions{Window: 5 * time.Second, MaxRecords: 4})
	small, big := keyFor(t, 0, 3), keyFor(t, 1, 3)

	var wg sync.WaitGroup
	var errSmall, errBig error
	start := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		errSmall = p.Publish(context.Background(), []*sarama.ProducerMessage{
			msg(topic, small, "aborted-1"), msg(topic, small, "aborted-2"), msg(topic, small, "aborted-3"),
		})
	}()
	go func() {
		defer wg.Done()
		errBig = p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, big, strings.Repeat("x", 8192))})
	}()
	wg.Wait()
	t.Logf("aborted transaction answered after %s", time.Since(start))
	for name, err := range map[string]error{"caller with valid records": errSmall, "caller with the oversized record": errBig} {
		if !errors.Is(err, kafka.ErrTxnAborted) {
			t.Errorf("%s: err = %v, want ErrTxnAborted", name, err)
		}
	}
	// Four records again, so the window closes at once.
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{
		msg(topic, small, "committed-1"), msg(topic, big, "committed-2"), msg(topic, small, "committed-3"), msg(topic, big, "committed-4"),
	}); err != nil {
		t.Fatalf("publish after the abort: %v", err)
	}
	t.Logf("next transaction committed %s after the start", time.Since(start))
	if n, b := p.Buffered(), p.BufferedBytes(); n != 0 || b != 0 {
		t.Errorf("buffered = %d records, %d bytes after every publish was answered", n, b)
	}
	if st := p.Stats(); st.Aborts != 1 || st.Resets != 0 || st.Commits != 1 {
		t.Errorf("stats %+v, want 1 abort, 0 resets, 1 commit (the producer recovers without being replaced)", st)
	}

	uncommitted := counts(readValues(t, bs, topic, sarama.ReadUncommitted))
	if uncommitted["aborted-1"] != 1 {
		t.Fatalf("the aborted transaction's records never reached the log (%v): the test proves nothing", uncommitted)
	}
	committed := counts(readValues(t, bs, topic, sarama.ReadCommitted))
	want := map[string]int{"committed-1": 1, "committed-2": 1, "committed-3": 1, "committed-4": 1}
	if fmt.Sprint(committed) != fmt.Sprint(want) {
		t.Errorf("read_committed sees %v, want %v", committed, want)
	}
}

// TestTxnPublisherReinitialisesWhenFenced starts a second producer with the same
// transactional.id, which fences the publisher's (a fatal error for it). The
// publisher's next transaction fails; the one after must succeed on a new producer.
func TestTxnPublisherReinitialisesWhenFenced(t *testing.T) {
	bs := brokers(t)
	topic := newTopic(t, bs, 1, nil)
	id := itest.UniqueName(t, "tx")
	p := newTxnPublisher(t, bs, id, kafka.TxnOptions{})
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, "k", "before")}); err != nil {
		t.Fatal(err)
	}

	zombie, err := sarama.NewAsyncProducer(bs, kafka.TxnProducerConfig(base(t), config.Producer{BatchSize: 1, BatchTimeoutMS: 1}, id))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()

	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, "k", "fenced")}); !errors.Is(err, kafka.ErrTxnAborted) {
		t.Fatalf("publish while fenced: err = %v, want ErrTxnAborted", err)
	}
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, "k", "after")}); err != nil {
		t.Fatalf("publish after re-initialising: %v", err)
	}
	if st := p.Stats(); st.Resets != 1 {
		t.Errorf("stats %+v, want exactly 1 reset", st)
	}
	got := readValues(t, bs, topic, sarama.ReadCommitted)
	if fmt.Sprint(got) != "[before after]" {
		t.Errorf("read_committed sees %v, want [before after]", got)
	}
}

// TestTxnPublisherFailsCallersWhenCommitFails makes the coordinator refuse EndTxn
// once (INVALID_TXN_STATE, fatal for sarama). Callers are answered only after the
// commit, so they must get an error, nothing of theirs may become visible, and the
// next transaction must commit on a re-initialised producer. Fault injection needs
// the embedded broker, so this test always runs on it.
func TestTxnPublisherFailsCallersWhenCommitFails(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	bs := cluster.ListenAddrs()
	topic := newTopic(t, bs, 1, nil)
	p := newTxnPublisher(t, bs, itest.UniqueName(t, "tx"), kafka.TxnOptions{})

	cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.InvalidTxnState, Count: 1})
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, "k", "lost")}); !errors.Is(err, kafka.ErrTxnAborted) {
		t.Fatalf("publish whose commit failed: err = %v, want ErrTxnAborted", err)
	}
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{msg(topic, "k", "kept")}); err != nil {
		t.Fatalf("publish after the failed commit: %v", err)
	}
	if st := p.Stats(); st.Resets != 1 || st.Commits != 1 {
		t.Errorf("stats %+v, want 1 reset and 1 commit", st)
	}
	if got := readValues(t, bs, topic, sarama.ReadCommitted); fmt.Sprint(got) != "[kept]" {
		t.Errorf("read_committed sees %v, want [kept]", got)
	}
}
