package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"function/shared/kafka"
)

// ServeHTTP reuses request bodies once Publish returns: the records made from a body
// must not change when the buffer is reused, in any content mode.
func TestRecordsOutliveAPooledBody(t *testing.T) {
	batch := `[{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}},` +
		`{"specversion":"1.0","id":"2","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}]`
	for name, build := range map[string]func() *http.Request{
		"batch": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(batch)))
			r.Header.Set("Content-Type", mediaBatch)
			return r
		},
		"binary": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(`{"a":1}`)))
			r.Header.Set("Content-Type", "application/json")
			for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t"} {
				r.Header.Set(k, v)
			}
			return r
		},
	} {
		t.Run(name, func(t *testing.T) {
			var body []byte
			events, p := parseRequest(build(), DefaultLimits(), &body)
			if p != nil {
				t.Fatal(p)
			}
			if cap(body) == 0 {
				t.Fatal("the body was not handed back for pooling")
			}
			var want [][]byte
			var values []func() []byte
			for i := range events {
				m, err := kafka.EncodeRecord(context.Background(), "events", &events[i], "k")
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, bytes.Clone(events[i].Data()))
				values = append(values, func() []byte { b, _ := m.Value.Encode(); return b })
			}
			putBody(body)
			full := body[:cap(body)]
			for i := range full { // what the next request's read does to the buffer
				full[i] = 'X'
			}
			for i, v := range values {
				if !bytes.Equal(v(), want[i]) {
					t.Fatalf("record %d is %q after the body was reused, want %q", i, v(), want[i])
				}
			}
		})
	}
}
