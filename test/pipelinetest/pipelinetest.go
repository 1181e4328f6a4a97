// Package pipelinetest starts the whole tide pipeline in-process for tests: the three
// functions behind one httptest server, on the embedded broker and Redis, or on real
// ones when KAFKA_BROKERS / REDIS_ADDR are set (test/infra starts them). Each
// Pipeline gets its own topic, consumer groups and Redis key prefix, so tests can
// share one real broker and one Redis without seeing each other's data.
package pipelinetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function"
	"function/functions/analytics"
	"function/functions/ingest"
	"function/functions/notification"
	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/lag"
	"function/shared/logging"
	"function/shared/metrics"
	"function/shared/scaling"
	"function/shared/store"
	"function/test/itest"
)

// Pipeline is a running tide with its own topic, groups and key prefix.
type Pipeline struct {
	t       testing.TB
	Opts    function.Options
	F       *function.Function
	Server  *httptest.Server
	URL     string
	Brokers []string
	Redis   config.Redis
	Real    bool // real Kafka and Redis (from the environment)
	client  sarama.Client
}

// Option adjusts the options before the pipeline starts.
type Option func(*function.Options)

// Start starts a pipeline and waits until it is ready (consumers assigned, starting
// positions resolved). It is stopped when the test ends.
func Start(t testing.TB, opts ...Option) *Pipeline {
	t.Helper()
	p := &Pipeline{t: t}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		p.Brokers = strings.Split(b, ",")
		p.Real = true
	} else {
		k, err := embedded.StartKafka(0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		p.Brokers = k.Brokers()
	}
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		p.Redis = config.Redis{Addr: a, Password: itest.RedisPassword()}
	} else {
		r, err := embedded.StartRedis(0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		p.Redis = config.Redis{Addr: r.Addr()}
	}
	name := itest.UniqueName(t, "tide")
	p.Opts = Options(t, name, p.Brokers, p.Redis)
	for _, o := range opts {
		o(&p.Opts)
	}
	base, err := kafka.NewConfig(p.Opts.Ingest.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	if p.client, err = sarama.NewClient(p.Brokers, base); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.client.Close() })
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.F.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Server.Close)
	p.URL = p.Server.URL
	p.StartFunctions()
	t.Cleanup(p.StopFunctions)
	return p
}

// Options returns the configuration of a pipeline named name (topic, groups and key
// prefix derive from it), with each function's defaults otherwise.
func Options(t testing.TB, name string, brokers []string, rc config.Redis) function.Options {
	t.Helper()
	k := config.Kafka{
		Brokers: brokers, Topic: name, DeadLetterTopic: name + "-dlq", Partitions: 4, ReplicationFactor: 1,
		ClientID: "tide-test", Version: "3.9.0", DialTimeoutMS: 5000,
	}
	prefix := name + ":"
	in := ingest.Config{Kafka: k, PartitionKeyAttribute: "subject", MaxBodyBytes: 16 << 20, MaxBatchEvents: 5000, MaxEventBytes: 900 << 10,
		Producer: config.Producer{BatchSize: 1000, BatchTimeoutMS: 5, MaxBuffered: 20000, MaxBufferedBytes: 32 << 20, AckTimeoutMS: 15000}}
	nc := notification.Config{Kafka: k, Redis: rc, Config: scaling.DefaultConfig(), Consumer: notification.ConsumerDefaults(), Mode: "pull", KeyPrefix: prefix, StreamMaxLen: 10000, DedupWindow: 168 * time.Hour}
	nc.Consumer.Group = name + "-notifications"
	ac := analytics.Config{Kafka: k, Redis: rc, Config: scaling.DefaultConfig(), Consumer: analytics.ConsumerDefaults(), Mode: "pull", KeyPrefix: prefix, DedupWindow: 168 * time.Hour}
	ac.Consumer.Group = name + "-analytics"
	for _, v := range []interface{ Validate() error }{in, nc, ac} {
		if err := v.Validate(); err != nil {
			t.Fatalf("test configuration: %v", err)
		}
	}
	return function.Options{
		Functions:    []string{function.Ingest, function.Notification, function.Analytics},
		Ingest:       in,
		Notification: nc,
		Analytics:    ac,
		Logger:       Logger(),
	}
}

// Logger is the logger of test pipelines: warnings and errors only, unless
// TIDE_TEST_LOG=debug.
func Logger() *slog.Logger {
	if lv := os.Getenv("TIDE_TEST_LOG"); lv != "" {
		return logging.New(os.Stderr, logging.Options{Format: "text", Level: lv})
	}
	return logging.New(os.Stderr, logging.Options{Format: "text", Level: "warn"})
}

// StartFunctions starts the three functions (again) and waits until they are ready.
func (p *Pipeline) StartFunctions() {
	p.t.Helper()
	p.Opts.Metrics = metrics.New()
	f := function.New()
	if err := f.StartWith(context.Background(), p.Opts); err != nil {
		p.t.Fatal(err)
	}
	p.F = f
	p.Eventually(60*time.Second, "pipeline ready", func() (bool, string) {
		ok, err := f.Ready(context.Background())
		return ok, fmt.Sprint(err)
	})
}

// StopFunctions stops the functions, keeping the broker and Redis.
func (p *Pipeline) StopFunctions() {
	if p.F == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.F.Stop(ctx); err != nil {
		p.t.Errorf("stop pipeline: %v", err)
	}
	p.F = nil
}

// Client is a sarama client of the pipeline's cluster.
func (p *Pipeline) Client() sarama.Client { return p.client }

// Topic is the events topic.
func (p *Pipeline) Topic() string { return p.Opts.Ingest.Topic }

// Eventually polls cond every 50 ms until it holds, failing the test with cond's
// last description after timeout.
func (p *Pipeline) Eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	p.t.Helper()
	Eventually(p.t, timeout, what, cond)
}

// Eventually polls cond every 50 ms until it holds, failing t with cond's last
// description after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
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
		time.Sleep(50 * time.Millisecond)
	}
}

// Post sends body with the content type and returns the status and body.
func (p *Pipeline) Post(contentType string, body []byte, header http.Header) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/", bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Stats reads GET /v1/stats.
func (p *Pipeline) Stats() store.Stats {
	p.t.Helper()
	var st store.Stats
	p.getJSON("/v1/stats", &st)
	return st
}

// NotificationList is the answer of GET /v1/notifications.
type NotificationList struct {
	Notifications []store.Notification `json:"notifications"`
	Total         int64                `json:"total"`
}

// Notifications reads GET /v1/notifications for channel.
func (p *Pipeline) Notifications(channel string, limit int) NotificationList {
	p.t.Helper()
	var l NotificationList
	p.getJSON(fmt.Sprintf("/v1/notifications?channel=%s&limit=%d", url.QueryEscape(channel), limit), &l)
	return l
}

func (p *Pipeline) getJSON(path string, v any) {
	p.t.Helper()
	resp, err := http.Get(p.URL + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
}

// Lag returns the total lag of group on the events topic.
func (p *Pipeline) Lag(group string) (int64, error) {
	ps, err := lag.Fetch(p.client, group, p.Topic())
	if err != nil {
		return 0, err
	}
	return lag.Total(ps), nil
}

// WaitCaughtUp waits until both consumer groups have committed everything on the
// events topic: every record published so far has been handled.
func (p *Pipeline) WaitCaughtUp(timeout time.Duration) {
	p.t.Helper()
	for _, g := range []string{p.Opts.Notification.Consumer.Group, p.Opts.Analytics.Consumer.Group} {
		p.Eventually(timeout, "group "+g+" caught up", func() (bool, string) {
			l, err := p.Lag(g)
			return err == nil && l == 0, fmt.Sprintf("lag=%d err=%v", l, err)
		})
	}
}

// SampleFile returns the path of ../shared/data/github-events.jsonl. When it is
// missing the test is skipped, or failed when CI=true: CI must never pass by testing
// nothing.
func SampleFile(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "..", "shared", "data", "github-events.jsonl")
	if _, err := os.Stat(path); err != nil {
		itest.Missing(t, fmt.Sprintf("sample data %s not found (it lives beside the repository, in ../shared/data)", path))
	}
	return path
}

// SampleLines returns the lines of the sample file.
func SampleLines(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(SampleFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}
