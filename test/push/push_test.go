// Package push checks push-mode delivery (Knative KafkaSource → HTTP → notification
// and analytics) against pull mode. The test plays the KafkaSource dispatcher: it
// reads the records ingest wrote to the events topic and POSTs each as a binary-mode
// CloudEvent, the record forwarded unchanged, with the redeliveries and reordering
// at-least-once, unordered delivery brings, and retries by the status codes the
// dispatcher acts on. With KAFKA_BROKERS and REDIS_ADDR set it runs on the real ones.
package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"function"
	"function/shared/config"
	"function/shared/embedded"
	"function/shared/metrics"
	"function/shared/store"
	"function/test/pipelinetest"
)

// TestPushModeMatchesPullMode replays the sample file through the whole pipeline in
// pull mode, then delivers the records ingest wrote to the topic to notification and
// analytics in push mode, as a KafkaSource would, and requires the same statistics
// and the same notifications per channel, in the same order per partition key.
func TestPushModeMatchesPullMode(t *testing.T) {
	lines := pipelinetest.SampleLines(t)
	p := pipelinetest.Start(t)
	start := time.Now()
	batch := append(append([]byte("["), bytes.Join(lines, []byte(","))...), ']')
	if code, body := p.Post("application/cloudevents-batch+json", batch, nil); code != http.StatusAccepted {
		t.Fatalf("replay: status %d: %s", code, body)
	}
	p.WaitCaughtUp(60 * time.Second)
	t.Logf("pull mode: %d events replayed and consumed in %s", len(lines), time.Since(start).Round(time.Millisecond))

	records := readTopic(t, p.Client(), p.Topic())
	if n := countRecords(records); n != len(lines) {
		t.Fatalf("topic holds %d records, want %d (one per sample event)", n, len(lines))
	}
	pushPrefix := strings.TrimSuffix(p.Opts.Notification.KeyPrefix, ":") + "-push:"
	notifier := startPush(t, p.Opts, function.Notification, pushPrefix)
	counter := startPush(t, p.Opts, function.Analytics, pushPrefix)

	src := &source{t: t, rng: rand.New(rand.NewPCG(1, 2))}
	start = time.Now()
	src.deliverOrdered(notifier.URL, records)
	src.deliverUnordered(counter.URL, records)
	t.Logf("push mode: %d deliveries in %s", src.deliveries, time.Since(start).Round(time.Millisecond))
	if src.deliveries <= len(lines)*2 {
		t.Fatalf("%d deliveries for %d records to two sinks: no redeliveries were played", src.deliveries, len(lines))
	}
	if len(src.deadLetters) > 0 {
		t.Fatalf("%d records dead-lettered, e.g. %s", len(src.deadLetters), src.deadLetters[0])
	}

	pullStats, pushStats := p.Stats(), getStats(t, counter.URL)
	if pullStats.Events != int64(len(lines)) {
		t.Fatalf("pull mode counted %d events, want %d", pullStats.Events, len(lines))
	}
	if pushStats.Events != pullStats.Events || pushStats.Subjects != pullStats.Subjects {
		t.Errorf("push counted %d events and %d subjects, pull %d and %d", pushStats.Events, pushStats.Subjects, pullStats.Events, pullStats.Subjects)
	}
	for name, pair := range map[string][2]map[string]int64{
		"types": {pushStats.Types, pullStats.Types}, "sources": {pushStats.Sources, pullStats.Sources}, "minutes": {pushStats.Minutes, pullStats.Minutes},
	} {
		if !maps.Equal(pair[0], pair[1]) {
			t.Errorf("counts per %s differ:\npush %v\npull %v", name, pair[0], pair[1])
		}
	}

	channels := map[string]bool{}
	for _, l := range lines {
		var e struct{ Source string }
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatal(err)
		}
		channels[e.Source] = true
	}
	for ch := range channels {
		pull := p.Notifications(ch, 1000)
		push := getNotifications(t, notifier.URL, ch)
		if push.Total != pull.Total || len(push.Notifications) != len(pull.Notifications) {
			t.Errorf("channel %s: push has %d notifications (total %d), pull %d (total %d)", ch, len(push.Notifications), push.Total, len(pull.Notifications), pull.Total)
			continue
		}
		if onlyPush, onlyPull := difference(normalize(push.Notifications), normalize(pull.Notifications)); len(onlyPush)+len(onlyPull) > 0 {
			t.Errorf("channel %s: %d notifications only in push mode, %d only in pull mode; the first of each:\npush %v\npull %v",
				ch, len(onlyPush), len(onlyPull), onlyPush[:min(1, len(onlyPush))], onlyPull[:min(1, len(onlyPull))])
			continue
		}
		if got, want := orderPerKey(push.Notifications), orderPerKey(pull.Notifications); !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("channel %s: order per key differs\npush %v\npull %v", ch, got, want)
		}
	}
}

// TestPushStatusCodes checks the answers a KafkaSource acts on: 2xx commits (a
// duplicate too), an invalid event is 400 (dead-lettered at once, never retried),
// and Redis being down is 503 with Retry-After (retried with backoff).
func TestPushStatusCodes(t *testing.T) {
	for _, which := range []string{function.Notification, function.Analytics} {
		t.Run(which, func(t *testing.T) {
			r, err := embedded.StartRedis(0)
			if err != nil {
				t.Fatal(err)
			}
			var closeOnce sync.Once
			closeRedis := func() { closeOnce.Do(r.Close) }
			t.Cleanup(closeRedis)
			opts := pipelinetest.Options(t, "status-"+which, []string{"127.0.0.1:1"}, config.Redis{Addr: r.Addr()})
			srv := startPush(t, opts, which, "status:")

			valid := func(id string) *http.Request { return binaryEvent(t, srv.URL, id) }
			cases := []struct {
				name string
				req  *http.Request
				want int
			}{
				{"valid event", valid("e-1"), http.StatusAccepted},
				{"redelivery of the same event", valid("e-1"), http.StatusAccepted},
				{"JSON without CloudEvents headers", request(t, srv.URL, "application/json", `{"id":"x"}`, nil), http.StatusBadRequest},
				{"binary event without an id", request(t, srv.URL, "application/json", `{}`, map[string]string{
					"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}), http.StatusBadRequest},
				{"binary event of an unknown spec version", request(t, srv.URL, "application/json", `{}`, map[string]string{
					"ce-specversion": "0.1", "ce-id": "x", "ce-source": "/s", "ce-type": "t"}), http.StatusBadRequest},
				{"structured event that is not JSON", request(t, srv.URL, "application/cloudevents+json", `{"specversion":`, nil), http.StatusBadRequest},
				{"binary event with an invalid time", request(t, srv.URL, "application/json", `{}`, map[string]string{
					"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t", "ce-time": "yesterday"}), http.StatusBadRequest},
			}
			for _, c := range cases {
				code, h, body := do(t, c.req)
				if code != c.want {
					t.Errorf("%s: status %d, want %d: %s", c.name, code, c.want, body)
				}
				if code == http.StatusBadRequest && !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
					t.Errorf("%s: content type %q, want a problem+json body saying what is wrong", c.name, h.Get("Content-Type"))
				}
			}

			closeRedis() // Redis goes away: the event must be retried, not dead-lettered
			code, h, body := do(t, valid("e-2"))
			if code != http.StatusServiceUnavailable {
				t.Fatalf("with Redis down: status %d, want 503: %s", code, body)
			}
			if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("with Redis down: Retry-After %q, want whole seconds", h.Get("Retry-After"))
			}
		})
	}
}

// startPush runs one function alone in push mode (as its Knative Service does, so
// POST / is push delivery) on the Redis of opts, under its own key prefix.
func startPush(t *testing.T, opts function.Options, which, prefix string) *httptest.Server {
	t.Helper()
	opts.Functions = []string{which}
	opts.Metrics = metrics.New()
	opts.Notification.Mode, opts.Notification.KeyPrefix = "push", prefix
	opts.Analytics.Mode, opts.Analytics.KeyPrefix = "push", prefix
	f := function.New()
	if err := f.StartWith(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", which, err)
		}
	})
	pipelinetest.Eventually(t, 10*time.Second, which+" ready", func() (bool, string) {
		ok, err := f.Ready(context.Background())
		return ok, fmt.Sprint(err)
	})
	return srv
}

// readTopic returns every record of topic, per partition in offset order. The
// pipeline writes no transactions, so offsets are contiguous up to the high-water
// mark.
func readTopic(t *testing.T, client sarama.Client, topic string) [][]*sarama.ConsumerMessage {
	t.Helper()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := make([][]*sarama.ConsumerMessage, len(parts))
	for i, part := range parts {
		hwm, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
		for len(out[i]) == 0 || out[i][len(out[i])-1].Offset+1 < hwm {
			select {
			case m := <-pc.Messages():
				out[i] = append(out[i], m)
			case <-timeout:
				t.Fatalf("partition %d: read %d records, high-water mark %d", part, len(out[i]), hwm)
			}
		}
		pc.Close()
	}
	return out
}

func countRecords(parts [][]*sarama.ConsumerMessage) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// source plays a KafkaSource dispatcher: each delivery is the record as a
// binary-mode CloudEvent over HTTP; 5xx and 429 are retried with exponential
// backoff, any other 4xx sends the record to the dead-letter sink.
type source struct {
	t   *testing.T
	rng *rand.Rand

	mu          sync.Mutex
	deliveries  int
	deadLetters []string
}

const (
	maxAttempts  = 8
	firstBackoff = 10 * time.Millisecond
)

// deliverOrdered is ordering: ordered. Partitions are delivered concurrently, the
// records of one partition one at a time in offset order, each only after the
// previous one succeeded. After every fifth record the dispatcher "restarts" and
// redelivers the last three (it had not committed them yet), as after a rebalance.
func (s *source) deliverOrdered(url string, parts [][]*sarama.ConsumerMessage) {
	var wg sync.WaitGroup
	for _, recs := range parts {
		wg.Go(func() {
			for i, r := range recs {
				s.deliver(url, r)
				if i%5 == 4 {
					for _, again := range recs[max(0, i-2) : i+1] {
						s.deliver(url, again)
					}
				}
			}
		})
	}
	wg.Wait()
}

// deliverUnordered is ordering: unordered. Records of all partitions are delivered in
// a random order by several workers at once; a third of them are delivered again
// later, and some twice at the same moment.
func (s *source) deliverUnordered(url string, parts [][]*sarama.ConsumerMessage) {
	var queue []*sarama.ConsumerMessage
	for _, recs := range parts {
		queue = append(queue, recs...)
	}
	for _, r := range slices.Clone(queue) {
		if s.rng.IntN(3) == 0 {
			queue = append(queue, r)
		}
	}
	s.rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
	work := make(chan *sarama.ConsumerMessage)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for r := range work {
				s.deliver(url, r)
			}
		})
	}
	for i, r := range queue {
		work <- r
		if i%10 == 0 {
			work <- r // the same record in flight twice
		}
	}
	close(work)
	wg.Wait()
}

// deliver sends one record until it is accepted or dead-lettered.
func (s *source) deliver(url string, r *sarama.ConsumerMessage) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(http.MethodPost, url, nil)
		if err != nil {
			s.t.Error(err)
			return
		}
		// The record is already a CloudEvent: it is forwarded unchanged, binary mode.
		msg := kafka_sarama.NewMessageFromConsumerMessage(r)
		if err := cehttp.WriteRequest(binding.WithForceBinary(context.Background()), msg, req); err != nil {
			s.t.Errorf("record %d/%d: %v", r.Partition, r.Offset, err)
			return
		}
		code, _, body := do(s.t, req)
		s.mu.Lock()
		s.deliveries++
		s.mu.Unlock()
		switch {
		case code >= 200 && code < 300:
			return
		case (code >= 500 || code == http.StatusTooManyRequests) && attempt < maxAttempts:
			time.Sleep(backoff) // the dispatcher's exponential backoff
			backoff *= 2
		default:
			s.mu.Lock()
			s.deadLetters = append(s.deadLetters, fmt.Sprintf("record %d/%d: %d %s", r.Partition, r.Offset, code, body))
			s.mu.Unlock()
			return
		}
	}
}

func binaryEvent(t *testing.T, url, id string) *http.Request {
	return request(t, url, "application/json", `{"n":1}`, map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-source": "https://github.com/o/r", "ce-type": "dev.knative.source.github.push",
		"ce-subject": "main", "ce-time": "2026-11-02T09:00:00Z", "ce-partitionkey": "main",
	})
}

func request(t *testing.T, url, contentType, body string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

var client = &http.Client{Timeout: 10 * time.Second} // the KafkaSource's delivery timeout

func do(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := do(t, req)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, code, body)
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func getStats(t *testing.T, base string) store.Stats {
	var st store.Stats
	getJSON(t, base+"/v1/stats", &st)
	return st
}

func getNotifications(t *testing.T, base, channel string) pipelinetest.NotificationList {
	var l pipelinetest.NotificationList
	getJSON(t, fmt.Sprintf("%s/v1/notifications?channel=%s&limit=1000", base, url.QueryEscape(channel)), &l)
	return l
}

// normalize renders notifications without what differs between runs (when they
// were made), sorted, for comparison as sets.
func normalize(ns []store.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		n.CreatedAt = time.Time{}
		b, _ := json.Marshal(n)
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// difference returns what only a has and what only b has.
func difference(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// orderPerKey returns the event ids of each partition key in stream order: ordered
// delivery must keep it.
func orderPerKey(ns []store.Notification) map[string][]string {
	out := map[string][]string{}
	for _, n := range ns {
		out[n.Key] = append(out[n.Key], n.ID)
	}
	return out
}
