package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/config"
	"function/shared/embedded"
	"function/shared/logging"
	"function/shared/metrics"
)

func TestPartitionKey(t *testing.T) {
	mk := func(subject, partitionKey string, ext map[string]string) *event.Event {
		e := event.New()
		e.SetID("1")
		e.SetSource("/src")
		e.SetType("t")
		if subject != "" {
			e.SetSubject(subject)
		}
		if partitionKey != "" {
			e.SetExtension("partitionkey", partitionKey)
		}
		for k, v := range ext {
			e.SetExtension(k, v)
		}
		return &e
	}
	tests := []struct {
		name, attr string
		event      *event.Event
		want       string
	}{
		{"partitionkey extension wins", "subject", mk("sub", "pk", nil), "pk"},
		{"configured attribute subject", "subject", mk("sub", "", nil), "sub"},
		{"source when the attribute is absent", "subject", mk("", "", nil), "/src"},
		{"configured extension", "tenant", mk("sub", "", map[string]string{"tenant": "acme"}), "acme"},
		{"configured attribute type", "type", mk("sub", "", nil), "t"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &Function{cfg: Config{PartitionKeyAttribute: tc.attr}}
			if got := f.PartitionKey(tc.event); got != tc.want {
				t.Fatalf("key %q, want %q", got, tc.want)
			}
		})
	}
}

func startIngest(t *testing.T) (*Function, *httptest.Server) {
	t.Helper()
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	cfg := Config{
		Kafka:                 config.Kafka{Brokers: k.Brokers(), Topic: "events", DeadLetterTopic: "events-dlq", Partitions: 3, ReplicationFactor: 1, ClientID: "t", Version: "3.9.0", DialTimeoutMS: 5000},
		Producer:              config.Producer{BatchSize: 100, BatchTimeoutMS: 5, MaxBuffered: 1000, AckTimeoutMS: 5000},
		PartitionKeyAttribute: "subject",
		MaxBodyBytes:          1 << 20, MaxBatchEvents: 100, MaxEventBytes: 64 << 10,
	}
	f := New()
	if err := f.StartWith(context.Background(), cfg, logging.Discard(), metrics.New()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func post(t *testing.T, url, ct, body string, h map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServeHTTP(t *testing.T) {
	_, srv := startIngest(t)
	ce := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
	tests := []struct {
		name, ct, body string
		headers        map[string]string
		status         int
		problem        bool
	}{
		{"binary mode", "application/json", `{"a":1}`, ce, http.StatusAccepted, false},
		{"structured mode", "application/cloudevents+json", `{"specversion":"1.0","id":"2","source":"/s","type":"t"}`, nil, http.StatusAccepted, false},
		{"batch mode", "application/cloudevents-batch+json", `[{"specversion":"1.0","id":"3","source":"/s","type":"t"},{"specversion":"1.0","id":"4","source":"/s","type":"t"}]`, nil, http.StatusAccepted, false},
		{"invalid event is a problem", "application/cloudevents+json", `{"specversion":"1.0","id":"","source":"/s","type":"t"}`, nil, http.StatusBadRequest, true},
		{"unsupported format", "application/cloudevents+xml", `<e/>`, nil, http.StatusUnsupportedMediaType, true},
		{"compressed body", "application/cloudevents+json", "\x1f\x8b\x08", map[string]string{"Content-Encoding": "gzip"}, http.StatusUnsupportedMediaType, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := post(t, srv.URL, tc.ct, tc.body, tc.headers)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.problem != (resp.Header.Get("Content-Type") == "application/problem+json") {
				t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET / = %d, want 405", resp.StatusCode)
	}
}

func TestUnavailableWhenStopped(t *testing.T) {
	f, srv := startIngest(t)
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, _ := post(t, srv.URL, "application/cloudevents+json", `{"specversion":"1.0","id":"2","source":"/s","type":"t"}`, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// The 202 answer is JSON naming how many events were accepted, whatever the count.
func TestWriteAccepted(t *testing.T) {
	for _, n := range []int{1, 100, 5000} {
		w := httptest.NewRecorder()
		writeAccepted(w, n)
		var got struct {
			Accepted int `json:"accepted"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Accepted != n || w.Code != http.StatusAccepted ||
			w.Header().Get("Content-Type") != "application/json" || !strings.HasSuffix(w.Body.String(), "}\n") {
			t.Fatalf("n=%d: %d %q %q (%v)", n, w.Code, w.Header().Get("Content-Type"), w.Body.String(), err)
		}
	}
}
