package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"function/functions/ingest"
	"function/shared/auth"
	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/logging"
	"function/shared/metrics"
	"function/test/itest"
	"function/test/pipelinetest"
)

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is one started ingest function behind its own HTTP server.
type server struct {
	f    *ingest.Function
	srv  *httptest.Server
	m    *metrics.Metrics
	logs *lockedBuffer
	cfg  ingest.Config
}

// defaultProtection is Protection with every default of its envconfig tags.
func defaultProtection(t testing.TB) ingest.Protection {
	t.Helper()
	var p ingest.Protection
	if err := config.Load("", &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// embeddedKafka starts kfake for the test.
func embeddedKafka(t testing.TB) []string {
	t.Helper()
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k.Brokers()
}

// embeddedRedis starts miniredis for the test.
func embeddedRedis(t testing.TB) config.Redis {
	t.Helper()
	r, err := embedded.StartRedis(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return config.Redis{Addr: r.Addr()}
}

// startIngest starts ingest on brokers with the test pipeline's settings (its own
// topic), the default protection, and whatever mutate changes.
func startIngest(t testing.TB, brokers []string, mutate func(*ingest.Config)) *server {
	t.Helper()
	cfg := pipelinetest.Options(t, itest.UniqueName(t, "ingest"), brokers, config.Redis{}).Ingest
	cfg.Protection = defaultProtection(t)
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	return startWith(t, cfg)
}

func startWith(t testing.TB, cfg ingest.Config) *server {
	t.Helper()
	s := &server{f: ingest.New(), m: metrics.New(), logs: &lockedBuffer{}, cfg: cfg}
	log := logging.New(s.logs, logging.Options{Format: "text", Level: "debug"})
	if err := s.f.StartWith(context.Background(), cfg, log, s.m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.f.Stop(ctx); err != nil {
			t.Errorf("stop ingest: %v", err)
		}
	})
	s.srv = httptest.NewServer(s.f)
	t.Cleanup(s.srv.Close)
	return s
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

// problemBody is the part of a problem+json answer the tests look at.
type problemBody struct {
	Type      string `json:"type"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Index     *int   `json:"index"`
	Attribute string `json:"attribute"`
	Limit     int64  `json:"limit"`
}

func (a answer) problem(t testing.TB) problemBody {
	t.Helper()
	var p problemBody
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("answer %d is not problem+json: %v: %s", a.code, err, a.body)
	}
	return p
}

func post(t testing.TB, url, contentType string, body []byte, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

func structured(id, source string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":"test.event","data":{"n":1}}`, id, source))
}

func batch(events ...[]byte) []byte {
	return append(append([]byte("["), bytes.Join(events, []byte(","))...), ']')
}

const (
	ctStructured = "application/cloudevents+json"
	ctBatch      = "application/cloudevents-batch+json"
)

func TestAPIKeys(t *testing.T) {
	keyA, hashA, _ := auth.Generate()
	keyB, hashB, _ := auth.Generate()
	s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) {
		c.Auth = ingest.AuthAPIKey
		c.APIKeys = hashA + ":https://github.com/a/*," + hashB + ":/b"
	})
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }
	for _, tc := range []struct {
		name      string
		header    map[string]string
		ct        string
		body      []byte
		code      int
		index     int // for 403: the offending event; -1 none
		published int // records in Kafka after this case, cumulative
	}{
		{"no key", nil, ctStructured, structured("1", "/b"), 401, -1, 0},
		{"unknown key", bearer("tide_not-a-key"), ctStructured, structured("1", "/b"), 401, -1, 0},
		{"the hash is not the key", bearer(hashB), ctStructured, structured("1", "/b"), 401, -1, 0},
		{"key on another's source", bearer(keyB), ctStructured, structured("1", "https://github.com/a/x"), 403, 0, 0},
		{"batch with one forbidden event", map[string]string{"X-API-Key": keyA}, ctBatch,
			batch(structured("1", "https://github.com/a/x"), structured("2", "/b")), 403, 1, 0},
		{"key on its source", bearer(keyB), ctStructured, structured("1", "/b"), 202, -1, 1},
		{"pattern match", map[string]string{"X-API-Key": keyA}, ctBatch,
			batch(structured("1", "https://github.com/a/x"), structured("2", "https://github.com/a/y/z")), 202, -1, 3},
		{"no key, bad body: 401 before parsing", nil, ctStructured, []byte("{"), 401, -1, 3},
		{"basic auth (curl -u)", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+keyB))}, ctStructured, structured("1", "/b"), 401, -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, s.srv.URL, tc.ct, tc.body, tc.header)
			if a.code != tc.code {
				t.Fatalf("status %d, want %d: %s", a.code, tc.code, a.body)
			}
			switch tc.code {
			case 401:
				if a.header.Get("WWW-Authenticate") == "" || a.problem(t).Type != "https://tide.dev/problems/unauthorized" {
					t.Errorf("401 without challenge or problem type: %v %s", a.header, a.body)
				}
				if strings.HasPrefix(tc.header["Authorization"], "Basic ") && !strings.Contains(a.problem(t).Detail, "scheme Basic is not accepted") {
					t.Errorf("Basic credentials answered %q, want it to say the scheme is not accepted", a.problem(t).Detail)
				}
			case 403:
				p := a.problem(t)
				if p.Index == nil || *p.Index != tc.index || p.Attribute != "source" {
					t.Errorf("403 should name event %d's source: %s", tc.index, a.body)
				}
			}
			if n := testutil.ToFloat64(s.m.ProducedRecords.WithLabelValues(s.cfg.Topic)); int(n) != tc.published {
				t.Errorf("%v records published, want %d: a refused request must publish nothing", n, tc.published)
			}
		})
	}
	logs := s.logs.String()
	for _, secret := range []string{keyA, keyB} {
		if strings.Contains(logs, secret) {
			t.Fatalf("an API key appears in the logs:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "API key may not write") || !strings.Contains(logs, hashB[:12]) {
		t.Errorf("the refusal should be logged with the key's ID:\n%s", logs)
	}
	for reason, want := range map[string]float64{"missing": 3, "unknown": 2, "forbidden": 2} {
		if got := testutil.ToFloat64(s.m.AuthFailures.WithLabelValues(reason)); got != want {
			t.Errorf("auth failures %s = %v, want %v", reason, got, want)
		}
	}
}

func TestRateLimitAnswers(t *testing.T) {
	key, hash, _ := auth.Generate()
	for _, tc := range []struct {
		name   string
		mutate func(*ingest.Config)
		header map[string]string
		// client names the budget the first source's events are charged to; other
		// is a source with a budget of its own (or "" when it shares the first's).
		client, other string
	}{
		{"by remote address", nil, nil, "remote:127.0.0.1", ""},
		{"by source attribute", func(c *ingest.Config) { c.RateLimitKeyAttr = "source" }, nil, "source:/s1", "/s2"},
		{"by API key", func(c *ingest.Config) { c.Auth, c.APIKeys = ingest.AuthAPIKey, hash+":*" },
			map[string]string{"X-API-Key": key}, "apikey:" + hash[:12], ""},
		{"by client IP header", func(c *ingest.Config) { c.RateLimitIPHeader = "X-Forwarded-For" },
			map[string]string{"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}, "remote:203.0.113.9", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := embeddedRedis(t)
			s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) {
				c.Redis = rc
				c.RateLimit, c.RateLimitRate, c.RateLimitBurst = true, 1, 5
				c.RateLimitPrefix = itest.UniqueName(t, "rl") + ":"
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			five := batch(structured("1", "/s1"), structured("2", "/s1"), structured("3", "/s1"), structured("4", "/s1"), structured("5", "/s1"))
			a := post(t, s.srv.URL, ctBatch, five, tc.header)
			if a.code != 202 {
				t.Fatalf("a full burst: %d %s", a.code, a.body)
			}
			for h, want := range map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "5", "RateLimit-Policy": "5;w=5"} {
				if got := a.header.Get(h); got != want {
					t.Errorf("202: %s = %q, want %q", h, got, want)
				}
			}
			a = post(t, s.srv.URL, ctStructured, structured("6", "/s1"), tc.header)
			if a.code != 429 {
				t.Fatalf("past the burst: %d %s", a.code, a.body)
			}
			p := a.problem(t)
			if p.Type != "https://tide.dev/problems/rate-limited" || !strings.Contains(p.Detail, tc.client) {
				t.Errorf("429 should be a rate-limited problem naming %s: %s", tc.client, a.body)
			}
			if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 || ra > 1 {
				t.Errorf("Retry-After = %q, want 1 (one event at 1/s)", a.header.Get("Retry-After"))
			}
			if a.header.Get("RateLimit-Remaining") != "0" || a.header.Get("RateLimit-Limit") != "5" {
				t.Errorf("429 without RateLimit fields: %v", a.header)
			}
			six := batch(five[1:len(five)-1], structured("7", "/s1"))
			if a = post(t, s.srv.URL, ctBatch, six, tc.header); a.code != 413 || a.problem(t).Limit != 5 {
				t.Errorf("6 events with a burst of 5: %d %s, want 413 with limit 5", a.code, a.body)
			}
			if tc.other != "" {
				if a = post(t, s.srv.URL, ctStructured, structured("8", tc.other), tc.header); a.code != 202 {
					t.Errorf("another source has its own budget: %d %s", a.code, a.body)
				}
			}
			if got := testutil.ToFloat64(s.m.RateLimited); got != 1 {
				t.Errorf("rate-limited events = %v, want 1", got)
			}
		})
	}
}

// TestRateLimitMixedBatch: a batch whose events belong to two clients is all or
// nothing: when one client is over its limit, the other is not charged either.
func TestRateLimitMixedBatch(t *testing.T) {
	rc := embeddedRedis(t)
	s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) {
		c.Redis = rc
		c.RateLimit, c.RateLimitRate, c.RateLimitBurst, c.RateLimitKeyAttr = true, 1, 3, "source"
		c.RateLimitPrefix = itest.UniqueName(t, "rl") + ":"
	})
	if a := post(t, s.srv.URL, ctBatch, batch(structured("1", "/full"), structured("2", "/full"), structured("3", "/full")), nil); a.code != 202 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	if a := post(t, s.srv.URL, ctBatch, batch(structured("4", "/fresh"), structured("5", "/full")), nil); a.code != 429 {
		t.Fatalf("mixed batch with /full exhausted: %d %s, want 429", a.code, a.body)
	}
	if a := post(t, s.srv.URL, ctBatch, batch(structured("6", "/fresh"), structured("7", "/fresh"), structured("8", "/fresh")), nil); a.code != 202 {
		t.Fatalf("/fresh was charged for a refused batch: %d %s", a.code, a.body)
	}
}

// TestRateLimitFallbackHTTP: with Redis gone, the local fallback answers and the
// metrics say so; with fallback closed the answer is 503 with Retry-After.
func TestRateLimitFallbackHTTP(t *testing.T) {
	for _, tc := range []struct {
		fallback string
		code     int
	}{{"local", 202}, {"open", 202}, {"closed", 503}} {
		t.Run(tc.fallback, func(t *testing.T) {
			r, err := embedded.StartRedis(0)
			if err != nil {
				t.Fatal(err)
			}
			addr := r.Addr()
			r.Close() // nothing answers there any more
			s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) {
				c.Redis = config.Redis{Addr: addr}
				c.RateLimit, c.RateLimitFallback = true, tc.fallback
				c.RateLimitTimeout = 100
			})
			a := post(t, s.srv.URL, ctStructured, structured("1", "/x"), nil)
			if a.code != tc.code {
				t.Fatalf("status %d, want %d: %s", a.code, tc.code, a.body)
			}
			if tc.code == 503 && a.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if g := testutil.ToFloat64(s.m.RateLimitFallback); g != 1 {
				t.Errorf("fallback gauge = %v, want 1", g)
			}
			if n := testutil.ToFloat64(s.m.FallbackEvents.WithLabelValues(tc.fallback)); n != 1 {
				t.Errorf("fallback events = %v, want 1", n)
			}
			if !strings.Contains(s.logs.String(), "Redis does not answer") {
				t.Errorf("the fallback is not logged:\n%s", s.logs)
			}
		})
	}
}

// TestSampleDataDefaults replays the sample file at full speed, one event per
// request and as one batch, through the HTTP handler with the default limits, and
// with the rate limiter on at its default rate: nothing may be refused.
func TestSampleDataDefaults(t *testing.T) {
	lines := pipelinetest.SampleLines(t)
	brokers := embeddedKafka(t)
	var defaults ingest.Config
	if err := config.Load("", &defaults); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		rateLimit bool
	}{{"rate limit off (default)", false}, {"rate limit on at its defaults", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rc := embeddedRedis(t)
			s := startIngest(t, brokers, func(c *ingest.Config) {
				c.MaxBodyBytes, c.MaxBatchEvents, c.MaxEventBytes = defaults.MaxBodyBytes, defaults.MaxBatchEvents, defaults.MaxEventBytes
				c.Producer = defaults.Producer
				c.RateLimit, c.Redis = tc.rateLimit, rc
				c.RateLimitPrefix = itest.UniqueName(t, "rl") + ":"
			})
			// One by one, 8 in flight, as `tide replay` does.
			codes := make(chan int, len(lines))
			sem := make(chan struct{}, 8)
			var wg sync.WaitGroup
			for _, l := range lines {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					codes <- post(t, s.srv.URL, ctStructured, l, nil).code
				}()
			}
			wg.Wait()
			close(codes)
			for c := range codes {
				if c != http.StatusAccepted {
					t.Fatalf("one by one: an event answered %d", c)
				}
			}
			if a := post(t, s.srv.URL, ctBatch, batch(lines...), nil); a.code != http.StatusAccepted {
				t.Fatalf("as one batch: %d %s", a.code, a.body)
			}
			if n := testutil.ToFloat64(s.m.ProducedRecords.WithLabelValues(s.cfg.Topic)); int(n) != 2*len(lines) {
				t.Fatalf("%v records in Kafka, want %d", n, 2*len(lines))
			}
		})
	}
}

// TestRecordLargerThanEvent: an event within INGEST_MAX_EVENT_BYTES whose record is
// too large for Kafka (the partition key repeats a long subject) gets a 413 that
// says so, not a 503 the client would retry for ever.
func TestRecordLargerThanEvent(t *testing.T) {
	s := startIngest(t, embeddedKafka(t), nil)
	subject := strings.Repeat("s", 600<<10)
	body := []byte(fmt.Sprintf(`{"specversion":"1.0","id":"1","source":"/x","type":"t","subject":%q}`, subject))
	a := post(t, s.srv.URL, ctStructured, body, nil)
	if a.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %.300s", a.code, a.body)
	}
	if p := a.problem(t); p.Limit != int64(sarama.NewConfig().Producer.MaxMessageBytes) || p.Index == nil || *p.Index != 0 {
		t.Errorf("413 should give the record limit and the event: %s", a.body)
	}
}

// TestTopicTooSmallForEvents: a topic whose max.message.bytes is below the
// producer's record size stops ingest at start, naming the setting.
func TestTopicTooSmallForEvents(t *testing.T) {
	brokers := embeddedKafka(t)
	name := itest.UniqueName(t, "ingest")
	cfg := pipelinetest.Options(t, name, brokers, config.Redis{}).Ingest
	cfg.Protection = defaultProtection(t)
	base, err := kafka.NewConfig(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(brokers, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	small := "500000"
	if _, err := kafka.EnsureTopic(admin, kafka.TopicSpec{Name: cfg.Topic, Partitions: 1, ReplicationFactor: 1, Config: map[string]*string{"max.message.bytes": &small}}); err != nil {
		t.Fatal(err)
	}
	err = ingest.New().StartWith(context.Background(), cfg, logging.Discard(), metrics.New())
	if err == nil || !strings.Contains(err.Error(), "max.message.bytes=500000") {
		t.Fatalf("start on a topic with max.message.bytes=500000: %v, want an error naming it", err)
	}
	cfg.MaxEventBytes = 1 << 20
	cfg.Topic = name + "-other"
	err = ingest.New().StartWith(context.Background(), cfg, logging.Discard(), metrics.New())
	if err == nil || !strings.Contains(err.Error(), "INGEST_MAX_EVENT_BYTES") {
		t.Fatalf("INGEST_MAX_EVENT_BYTES of 1 MiB: %v, want an error naming it", err)
	}
}

func TestProtectionConfig(t *testing.T) {
	_, hash, _ := auth.Generate()
	for _, tc := range []struct {
		name    string
		mutate  func(*ingest.Protection)
		wantErr string
	}{
		{"defaults", func(*ingest.Protection) {}, ""},
		{"keys without auth", func(p *ingest.Protection) { p.APIKeys = hash + ":*" }, "INGEST_AUTH"},
		{"auth without keys", func(p *ingest.Protection) { p.Auth = ingest.AuthAPIKey }, "INGEST_API_KEYS"},
		{"bad auth mode", func(p *ingest.Protection) { p.Auth = "basic" }, "INGEST_AUTH"},
		{"bad fallback", func(p *ingest.Protection) { p.RateLimit, p.RateLimitFallback = true, "maybe" }, "INGEST_RATE_LIMIT_FALLBACK"},
		{"bad override", func(p *ingest.Protection) { p.RateLimit, p.RateLimitOverride = true, "remote:1.2.3.4=5" }, "INGEST_RATE_LIMIT_OVERRIDES"},
		{"bad fallback, limiter off", func(p *ingest.Protection) { p.RateLimitFallback = "sideways" }, "INGEST_RATE_LIMIT_FALLBACK"},
		{"bad override, limiter off", func(p *ingest.Protection) { p.RateLimitOverride = "garbage" }, "INGEST_RATE_LIMIT_OVERRIDES"},
		{"negative replicas, limiter off", func(p *ingest.Protection) { p.RateLimitReplicas = -1 }, "INGEST_RATE_LIMIT_REPLICAS"},
		{"zero rate", func(p *ingest.Protection) { p.RateLimit, p.RateLimitRate = true, 0 }, "INGEST_RATE_LIMIT_RATE"},
		{"zero rate, limiter off", func(p *ingest.Protection) { p.RateLimitRate = 0 }, ""},
		{"zero value (a Config built in code)", func(p *ingest.Protection) { *p = ingest.Protection{} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := defaultProtection(t)
			tc.mutate(&p)
			err := p.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
	if p := defaultProtection(t); p.RateLimit || p.Auth != ingest.AuthOff {
		t.Fatalf("protection must be off by default for local use: %+v", p)
	}
}

// TestRateLimitNeedsRedis: turning the limiter on without REDIS_ADDR stops start.
func TestRateLimitNeedsRedis(t *testing.T) {
	cfg := pipelinetest.Options(t, itest.UniqueName(t, "ingest"), embeddedKafka(t), config.Redis{}).Ingest
	cfg.Protection = defaultProtection(t)
	cfg.RateLimit = true
	if err := ingest.New().StartWith(context.Background(), cfg, logging.Discard(), metrics.New()); err == nil || !strings.Contains(err.Error(), "REDIS_ADDR") {
		t.Fatalf("rate limit without Redis: %v, want an error naming REDIS_ADDR", err)
	}
}
