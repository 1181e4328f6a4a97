package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"function"
	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/store"
	"function/test/itest"
	"function/test/pipelinetest"
)

// stallableKafka is a kfake broker whose produce requests can be held unanswered:
// a broker that accepts connections and requests and stops answering.
type stallableKafka struct {
	c       *kfake.Cluster
	stalled atomic.Bool
	mu      sync.Mutex
	release chan struct{}
}

func newStallableKafka(t *testing.T) *stallableKafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	k := &stallableKafka{c: c, release: make(chan struct{})}
	t.Cleanup(func() { k.resume(); c.Close() })
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if k.stalled.Load() {
			k.mu.Lock()
			ch := k.release
			k.mu.Unlock()
			c.SleepControl(func() { <-ch })
		}
		return nil, nil, false // then handled as usual
	})
	return k
}

func (k *stallableKafka) stall() { k.stalled.Store(true) }

func (k *stallableKafka) resume() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stalled.Swap(false) {
		close(k.release)
		k.release = make(chan struct{})
	}
}

// TestBackpressure: while Kafka does not answer, ingest answers 503 with
// Retry-After within its ack timeout (at once when its buffer is full), and holds
// no more than PRODUCER_MAX_BUFFERED records or PRODUCER_MAX_BUFFERED_BYTES bytes,
// whichever is reached first. Afterwards every event answered 202 is in the topic,
// and a client that retries its refused requests gets every event counted once by
// analytics, although some of the refused events did land.
func TestBackpressure(t *testing.T) {
	for name, maxBytes := range map[string]int64{"records bound": 0, "bytes bound": bytesBound} {
		t.Run(name, func(t *testing.T) {
			k := newStallableKafka(t)
			runBackpressure(t, k.c.ListenAddrs(), false, maxBytes,
				func(*function.Function) { k.stall() }, func(*function.Function) { k.resume() })
		})
	}
}

// bytesBound is a PRODUCER_MAX_BUFFERED_BYTES that binds before the tests'
// PRODUCER_MAX_BUFFERED of 100 records: about four requests of ten small events.
const bytesBound = 20 << 10

// TestBackpressureRealKafka runs the same scenario on the real broker and Redis. The
// broker cannot be made to stop answering (other tests share it), so ingest's
// publisher is held instead (Publisher.Hold, what the partition manager uses):
// records are accepted into the buffer and not sent, exactly what a silent broker
// causes, and when released they land, also those whose requests were answered 503.
func TestBackpressureRealKafka(t *testing.T) {
	b := itest.Kafka(t)
	runBackpressure(t, strings.Split(b, ","), true, bytesBound,
		func(f *function.Function) {
			go f.Ingest.Publisher().Hold(context.Background()) // returns once the in-flight records are acked
		},
		func(f *function.Function) { f.Ingest.Publisher().Release() })
}

// TestBackpressureFrozenBroker freezes the real broker (SIGSTOP through
// test/infra/kafka.sh pause-node): it keeps accepting connections and answers
// nothing, the outage a client cannot tell from a slow broker. It stops every other
// user of that broker too, so it runs only when TIDE_PAUSE_KAFKA=1 says the broker
// of TIDE_STATE_DIR is yours alone.
func TestBackpressureFrozenBroker(t *testing.T) {
	if os.Getenv("TIDE_PAUSE_KAFKA") != "1" {
		t.Skip("freezes the broker of TIDE_STATE_DIR for everyone: set TIDE_PAUSE_KAFKA=1 on a broker of your own")
	}
	b := itest.Kafka(t)
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "test", "infra", "kafka.sh")
	node := func(cmd string) {
		out, err := exec.Command("bash", script, cmd, "1").CombinedOutput()
		if err != nil {
			t.Fatalf("kafka.sh %s 1: %v: %s", cmd, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("bash", script, "resume-node", "1").Run() }) // never leave it frozen
	runBackpressure(t, strings.Split(b, ","), true, bytesBound,
		func(*function.Function) { node("pause-node") }, func(*function.Function) { node("resume-node") })
}

// runBackpressure runs the scenario with PRODUCER_MAX_BUFFERED 100 and maxBytes as
// PRODUCER_MAX_BUFFERED_BYTES (0: its default, so the record bound binds).
func runBackpressure(t *testing.T, brokers []string, realRedis bool, maxBytes int64, stall, resume func(*function.Function)) {
	const (
		maxBuffered = 100
		clients     = 30
		perBatch    = 10
		ackTimeout  = time.Second
	)
	var rc config.Redis
	if a := os.Getenv("REDIS_ADDR"); a != "" && realRedis {
		rc = config.Redis{Addr: a, Password: itest.RedisPassword()}
	} else {
		r, err := embedded.StartRedis(0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		rc = config.Redis{Addr: r.Addr()}
	}
	opts := pipelinetest.Options(t, itest.UniqueName(t, "bp"), brokers, rc)
	opts.Notification.Consumer.InitialOffset = "earliest"
	opts.Analytics.Consumer.InitialOffset = "earliest"
	opts.Ingest.MaxBuffered = maxBuffered
	if maxBytes > 0 {
		opts.Ingest.MaxBufferedBytes = maxBytes
	}
	opts.Ingest.AckTimeoutMS = int(ackTimeout / time.Millisecond)
	f := function.New()
	if err := f.StartWith(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.Stop(ctx)
	})
	pipelinetest.Eventually(t, 60*time.Second, "pipeline ready", func() (bool, string) {
		ok, err := f.Ready(context.Background())
		return ok, fmt.Sprint(err)
	})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)

	type request struct {
		ids  []string
		body []byte
	}
	newBatch := func(prefix string) request {
		var r request
		var evs [][]byte
		for j := 0; j < perBatch; j++ {
			id := fmt.Sprintf("%s-%d", prefix, j)
			r.ids = append(r.ids, id)
			evs = append(evs, structured(id, "/backpressure"))
		}
		r.body = batch(evs...)
		return r
	}
	send := func(r request) (int, string, string, time.Duration) {
		start := time.Now()
		resp, err := http.Post(srv.URL+"/", ctBatch, strings.NewReader(string(r.body)))
		if err != nil {
			t.Error(err)
			return 0, "", "", 0
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(answer), time.Since(start)
	}

	// Before the stall: accepted.
	accepted := map[string]bool{}
	for i := 0; i < 2; i++ {
		r := newBatch(fmt.Sprintf("before%d", i))
		if code, _, _, _ := send(r); code != http.StatusAccepted {
			t.Fatalf("before the stall: %d", code)
		}
		for _, id := range r.ids {
			accepted[id] = true
		}
	}

	// The stall: many clients at once, the buffer sampled all along.
	stall(f)
	pub := f.Ingest.Publisher()
	var maxSeen, maxSeenBytes atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := pub.Buffered(); n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			if n := pub.BufferedBytes(); n > maxSeenBytes.Load() {
				maxSeenBytes.Store(n)
			}
			select {
			case <-sampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var (
		mu          sync.Mutex
		refused     []request
		slowest     time.Duration
		noRetryHint int
		codes       = map[int]int{}
		unread      int // 503s given before the body was read
		wg          sync.WaitGroup
	)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newBatch(fmt.Sprintf("during%d", i))
			code, retryAfter, detail, took := send(r)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			slowest = max(slowest, took)
			switch code {
			case http.StatusAccepted:
				for _, id := range r.ids {
					accepted[id] = true
				}
			case http.StatusServiceUnavailable:
				refused = append(refused, r)
				if strings.Contains(detail, "not read") {
					unread++
				}
				if retryAfter == "" {
					noRetryHint++
				}
			default:
				t.Errorf("during the stall: status %d", code)
			}
		}()
	}
	wg.Wait()
	close(sampling)
	<-sampled
	t.Logf("during the stall: answers %v (%d refused before reading the body), slowest %s, most buffered %d records (limit %d), %d bytes (limit %d)",
		codes, unread, slowest.Round(time.Millisecond), maxSeen.Load(), maxBuffered, maxSeenBytes.Load(), opts.Ingest.MaxBufferedBytes)
	if len(refused) == 0 {
		t.Fatal("no request was refused: the stall did not happen")
	}
	if noRetryHint > 0 {
		t.Errorf("%d answers 503 without Retry-After", noRetryHint)
	}
	// The buffer stays full while Kafka is silent: one more request is refused before
	// its body is read.
	late := newBatch("late")
	if code, _, detail, _ := send(late); code != http.StatusServiceUnavailable || !strings.Contains(detail, "not read") {
		t.Errorf("a request after the others, Kafka still silent: %d %s; want 503 before reading the body", code, detail)
	} else {
		refused = append(refused, late)
	}
	// A bound, not a speed: without it a request would wait for Kafka for ever.
	if limit := ackTimeout + 5*time.Second; slowest > limit {
		t.Errorf("slowest answer took %s, more than the ack timeout %s plus 5 s", slowest, ackTimeout)
	}
	if maxSeen.Load() > maxBuffered+perBatch {
		t.Errorf("%d records buffered, more than PRODUCER_MAX_BUFFERED=%d (one request may go over by its own size only when nothing else is buffered)", maxSeen.Load(), maxBuffered)
	}
	// A request here is far smaller than the byte bound, so no exception applies.
	if maxSeenBytes.Load() > opts.Ingest.MaxBufferedBytes {
		t.Errorf("%d bytes buffered, more than PRODUCER_MAX_BUFFERED_BYTES=%d", maxSeenBytes.Load(), opts.Ingest.MaxBufferedBytes)
	}

	// Kafka answers again: the held records land, then the client retries every
	// refused request (honouring Retry-After would only slow the test down) until
	// it is accepted.
	resume(f)
	pipelinetest.Eventually(t, 30*time.Second, "publisher drained", func() (bool, string) {
		return pub.Buffered() == 0, fmt.Sprintf("%d buffered", pub.Buffered())
	})
	for i, r := range refused {
		for attempt := 0; ; attempt++ {
			code, _, _, _ := send(r)
			if code == http.StatusAccepted {
				break
			}
			if attempt == 50 {
				t.Fatalf("refused request %d still answered %d after 50 retries", i, code)
			}
		}
		for _, id := range r.ids {
			accepted[id] = true
		}
	}

	// Every accepted event is in the topic; some refused ones landed twice.
	base, err := kafka.NewConfig(opts.Ingest.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	inTopic := readTopicIDs(t, brokers, base, opts.Ingest.Topic)
	records, dups := 0, 0
	for id, n := range inTopic {
		records += n
		dups += n - 1
		if !accepted[id] {
			t.Errorf("event %s is in Kafka but was never accepted", id)
		}
	}
	for id := range accepted {
		if inTopic[id] == 0 {
			t.Errorf("event %s was answered 202 but is not in Kafka", id)
		}
	}
	t.Logf("after the retries: %d events accepted, %d records in the topic (%d duplicates of refused requests that landed)", len(accepted), records, dups)
	if dups == 0 {
		t.Log("no refused event landed before its retry: the dedup half of this test was not exercised")
	}

	// Downstream, each event counts once.
	pipelinetest.Eventually(t, 60*time.Second, "analytics counted every event once", func() (bool, string) {
		resp, err := http.Get(srv.URL + "/v1/stats")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var st store.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, err.Error()
		}
		return st.Events == int64(len(accepted)), fmt.Sprintf("stats count %d events, want %d", st.Events, len(accepted))
	})
}

// readTopicIDs counts the records of topic per ce_id header, from the start to the
// high-water marks.
func readTopicIDs(t *testing.T, brokers []string, base *sarama.Config, topic string) map[string]int {
	t.Helper()
	client, err := sarama.NewClient(brokers, base)
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
	ids := map[string]int{}
	for _, p := range parts {
		// A new topic's partitions get their leaders one by one: ask again, bounded.
		var hwm int64
		pipelinetest.Eventually(t, 30*time.Second, fmt.Sprintf("high-water mark of partition %d", p), func() (bool, string) {
			hwm, err = client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				_ = client.RefreshMetadata(topic)
				return false, err.Error()
			}
			return true, ""
		})
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				for _, h := range m.Headers {
					if string(h.Key) == "ce_id" {
						ids[string(h.Value)]++
					}
				}
				if m.Offset+1 >= hwm {
					break read
				}
			case <-timeout:
				t.Fatalf("partition %d: not read to its high-water mark %d within 30s", p, hwm)
			}
		}
		pc.Close()
	}
	return ids
}
