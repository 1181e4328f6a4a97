// Package idempotence restarts and kills a real Kafka broker while tide's Publisher
// produces, and reads the topic back: the idempotent producer must never write a
// record twice, and must keep working once the broker is back.
//
// The tests stop the broker they use, so they never run against a shared one: they
// run only under `make test-idempotence`, which starts a private broker (its own
// TIDE_STATE_DIR) and sets TIDE_KAFKA_RESTART=1.
package idempotence

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/test/itest"
)

func setup(t *testing.T) []string {
	t.Helper()
	if os.Getenv("TIDE_KAFKA_RESTART") != "1" {
		t.Skip("restarts its broker: run with `make test-idempotence` (a private Kafka, TIDE_KAFKA_RESTART=1)")
	}
	if os.Getenv("TIDE_STATE_DIR") == "" {
		t.Fatal("TIDE_KAFKA_RESTART=1 needs the TIDE_STATE_DIR of the broker it may restart")
	}
	return strings.Split(itest.Kafka(t), ",")
}

// kafkaSh runs test/infra/kafka.sh with args against TIDE_STATE_DIR's cluster.
func kafkaSh(t *testing.T, args ...string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "infra", "kafka.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("kafka.sh %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// readTimeout is how long the producer waits for a produce response before it
// resends (sarama's default is 30 s).
const readTimeout = 3 * time.Second

// pause freezes the broker (SIGSTOP) for d, then resumes it. The broker is the one
// test/infra started in TIDE_STATE_DIR, so this process may signal it.
func pause(t *testing.T, d time.Duration) {
	t.Helper()
	pidFile := filepath.Join(os.Getenv("TIDE_STATE_DIR"), "kafka", "node1", "pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", pidFile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}()
	t.Logf("broker %d paused for %s", pid, d)
	time.Sleep(d) // the outage itself: there is no condition to wait for
}

func baseConfig(t *testing.T) *sarama.Config {
	t.Helper()
	c, err := kafka.NewConfig(config.Kafka{ClientID: "tide-idempotence", Version: "3.9.0", DialTimeoutMS: 2000})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createTopic(t *testing.T, bs []string) string {
	t.Helper()
	name := itest.UniqueName(t, "idem")
	admin, err := sarama.NewClusterAdmin(bs, baseConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kafka.EnsureTopic(admin, kafka.TopicSpec{Name: name, Partitions: 6, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	return name
}

// load publishes batches of records with unique values from workers goroutines
// until stop is closed, and records which values were acknowledged and which failed.
type load struct {
	p        *kafka.Publisher
	topic    string
	seq      atomic.Int64
	mu       sync.Mutex
	acked    map[string]bool
	failed   map[string]bool
	failures atomic.Int64
	firstErr chan error // the first failure, once
}

func newLoad(p *kafka.Publisher, topic string) *load {
	return &load{p: p, topic: topic, acked: map[string]bool{}, failed: map[string]bool{}, firstErr: make(chan error, 1)}
}

func (l *load) run(stop <-chan struct{}, workers, batch int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				msgs := make([]*sarama.ProducerMessage, batch)
				vals := make([]string, batch)
				for i := range msgs {
					n := l.seq.Add(1)
					vals[i] = fmt.Sprintf("r%07d", n)
					msgs[i] = &sarama.ProducerMessage{Topic: l.topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", n%97)), Value: sarama.StringEncoder(vals[i])}
				}
				err := l.p.Publish(context.Background(), msgs)
				l.mu.Lock()
				for _, v := range vals {
					if err == nil {
						l.acked[v] = true
					} else {
						l.failed[v] = true
					}
				}
				l.mu.Unlock()
				if err != nil {
					l.failures.Add(1)
					select {
					case l.firstErr <- err:
					default:
					}
				}
			}
		}()
	}
	return &wg
}

// waitAcked waits until at least n more records than now were acknowledged.
func (l *load) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	l.mu.Lock()
	target := len(l.acked) + n
	l.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		got := len(l.acked)
		l.mu.Unlock()
		if got >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records acknowledged within %s", got, target, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readBack counts every value in topic (read_committed, up to the high-water marks).
func readBack(t *testing.T, bs []string, topic string) map[string]int {
	t.Helper()
	c := baseConfig(t)
	c.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(bs, c)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(60 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out[string(m.Value)]++
				if m.Offset >= end-1 {
					break read
				}
			case <-timeout:
				t.Fatalf("partition %d: offset %d not reached", p, end-1)
			}
		}
		pc.Close()
	}
	return out
}

// check reports the run and fails on any record written twice, or acknowledged
// and missing.
func check(t *testing.T, l *load, got map[string]int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var dups []string
	for v, n := range got {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s x%d", v, n))
		}
	}
	sort.Strings(dups)
	missing := 0
	for v := range l.acked {
		if got[v] != 1 {
			missing++
		}
	}
	landedFailed := 0
	for v := range l.failed {
		if got[v] == 1 {
			landedFailed++
		}
	}
	t.Logf("published %d records: %d acknowledged, %d failed (%d of those landed anyway, once); %d in the topic; %d duplicates",
		l.seq.Load(), len(l.acked), len(l.failed), landedFailed, len(got), len(dups))
	if len(dups) > 0 {
		t.Errorf("%d records are in the topic more than once: %v", len(dups), dups[:min(len(dups), 20)])
	}
	if missing > 0 {
		t.Errorf("%d acknowledged records are not in the topic exactly once", missing)
	}
}

// TestNoDuplicateAcrossBrokerRestart stops the broker while four callers publish,
// gracefully (kafka.sh restart: SIGTERM, then start on the same ports and data) and
// hard (SIGKILL, then start: the responses to requests it had written are lost). The
// producer's retries outlast the outage, so records in flight are resent to the
// restarted broker: it must deduplicate them by producer id and sequence, and every
// acknowledged record must be in the topic once.
func TestNoDuplicateAcrossBrokerRestart(t *testing.T) {
	bs := setup(t)
	for _, tc := range []struct {
		name   string
		outage func(t *testing.T)
	}{
		{"graceful restart", func(t *testing.T) { kafkaSh(t, "restart") }},
		{"killed and started", func(t *testing.T) { kafkaSh(t, "kill-node", "1"); kafkaSh(t, "start-node", "1") }},
		// Frozen past the request timeout, then resumed: the producer gives up
		// waiting and resends, and the broker then writes the first copy too. Only
		// the sequence numbers tell the two apart.
		{"paused past the request timeout", func(t *testing.T) { pause(t, 3*readTimeout) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := createTopic(t, bs)
			pc := kafka.ProducerConfig(baseConfig(t), config.Producer{BatchSize: 200, BatchTimeoutMS: 5})
			// Enough retries to outlast the outage (10-40 s here), so records in flight
			// are resent to the restarted broker rather than failed.
			pc.Producer.Retry.Max, pc.Producer.Retry.Backoff = 90, time.Second
			pc.Net.ReadTimeout = readTimeout
			p, err := kafka.NewPublisher(bs, pc, kafka.PublisherOptions{AckTimeout: 3 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			l := newLoad(p, topic)
			stop := make(chan struct{})
			wg := l.run(stop, 4, 50)
			l.waitAcked(t, 2000, 30*time.Second)
			tc.outage(t)
			l.waitAcked(t, 2000, 2*time.Minute)
			close(stop)
			wg.Wait()
			check(t, l, readBack(t, bs, topic))
		})
	}
}

// TestPublisherWorksAfterBrokerKilledLongerThanRetries kills the broker (SIGKILL:
// responses to requests it wrote are lost) and keeps it down until publishes fail
// (the producer's retries are spent), then starts it again. The same Publisher must
// publish again (sarama's idempotent producer used to wedge on out-of-order
// sequence numbers here), and no record may be in the topic twice.
func TestPublisherWorksAfterBrokerKilledLongerThanRetries(t *testing.T) {
	bs := setup(t)
	topic := createTopic(t, bs)
	// The production settings: ten retries 200 ms apart.
	pc := kafka.ProducerConfig(baseConfig(t), config.Producer{BatchSize: 200, BatchTimeoutMS: 5})
	p, err := kafka.NewPublisher(bs, pc, kafka.PublisherOptions{AckTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	l := newLoad(p, topic)
	stop := make(chan struct{})
	wg := l.run(stop, 4, 50)
	l.waitAcked(t, 2000, 30*time.Second)
	kafkaSh(t, "kill-node", "1")
	select {
	case err := <-l.firstErr:
		t.Logf("publishing fails while the broker is down, as it must: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no publish failed within 2 minutes of killing the broker")
	}
	kafkaSh(t, "start-node", "1")
	l.waitAcked(t, 2000, 2*time.Minute)
	close(stop)
	wg.Wait()
	if err := p.Publish(context.Background(), []*sarama.ProducerMessage{{Topic: topic, Value: sarama.StringEncoder("last")}}); err != nil {
		t.Fatalf("publish after the broker came back: %v", err)
	}
	got := readBack(t, bs, topic)
	delete(got, "last")
	check(t, l, got)
}
