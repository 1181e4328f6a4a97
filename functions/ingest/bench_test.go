package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"function/shared/kafka"
	"function/test/bench/loadgen"
)

// BenchmarkParseEncode is ingest's own work per request, without the network: parse
// and validate the CloudEvents of one HTTP request, choose each one's partition key
// and encode it as a Kafka record (what ServeHTTP does before Publish). 1 KiB of data
// per event, as in `make bench`.
func BenchmarkParseEncode(b *testing.B) {
	ev := loadgen.Events{RunID: "bench", Source: "/bench", Sources: 1, Type: "dev.tide.bench", Size: 1024, Keys: 100}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &Function{cfg: Config{PartitionKeyAttribute: "subject"}}
	f.cfg.Topic = "events"
	cases := []struct {
		name   string
		events int
		build  func() *http.Request
	}{
		{"binary-1", 1, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(ev.AppendData(nil, 1)))
			for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": ev.ID(1),
				"Ce-Source": ev.SourceOf(1), "Ce-Type": "dev.tide.bench", "Ce-Subject": ev.Subject(1), "Ce-Time": at.Format(time.RFC3339Nano)} {
				r.Header.Set(k, v)
			}
			return r
		}},
		{"structured-1", 1, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(ev.AppendStructured(nil, 1, at)))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			return r
		}},
		{"batch-100", 100, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(ev.AppendBatch(nil, 0, 100, at)))
			r.Header.Set("Content-Type", "application/cloudevents-batch+json")
			return r
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				r := tc.build()
				b.StartTimer()
				events, p := ParseRequest(r, DefaultLimits())
				if p != nil {
					b.Fatal(p)
				}
				for i := range events {
					if _, err := kafka.EncodeRecord(ctx, f.cfg.Topic, &events[i], f.PartitionKey(&events[i])); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*tc.events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
