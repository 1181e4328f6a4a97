package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/problem"
)

// fuzzLimits are small so the fuzzer reaches every limit, and bound the memory one
// input can use.
var fuzzLimits = Limits{MaxBodyBytes: 256 << 10, MaxBatchEvents: 64, MaxEventBytes: 32 << 10}

// addCorpusSeeds seeds f with the small malformed cases in the given content type.
func addCorpusSeeds(f *testing.F, contentType string) {
	for _, c := range malformedCorpus {
		if c.contentType == contentType && len(c.body) < 4096 {
			f.Add([]byte(c.body))
		}
	}
}

func FuzzParseStructured(f *testing.F) {
	addCorpusSeeds(f, ceJSON)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, p := ParseRequest(newRequest(mediaStructured, nil, body), fuzzLimits)
		checkOutcome(t, events, p)
		if len(events) > 1 {
			t.Fatalf("structured mode returned %d events", len(events))
		}
		checkJSONVerdict(t, body, p)
	})
}

func FuzzParseBatch(f *testing.F) {
	addCorpusSeeds(f, ceBatch)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, p := ParseRequest(newRequest(mediaBatch, nil, body), fuzzLimits)
		checkOutcome(t, events, p)
		if len(events) > fuzzLimits.MaxBatchEvents {
			t.Fatalf("batch of %d events passed a limit of %d", len(events), fuzzLimits.MaxBatchEvents)
		}
		checkJSONVerdict(t, body, p)
	})
}

// FuzzParseBinary takes the Content-Type, the other headers as "Name: value" lines,
// and the body.
func FuzzParseBinary(f *testing.F) {
	for _, c := range malformedCorpus {
		if c.group == groupBinary || c.group == groupExtension && c.contentType == "" {
			var h strings.Builder
			for _, kv := range c.headers {
				h.WriteString(kv[0] + ": " + kv[1] + "\n")
			}
			f.Add(c.contentType, h.String(), []byte(c.body))
		}
	}
	f.Fuzz(func(t *testing.T, contentType, headers string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		for i, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && i < 64 {
				r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		events, p := ParseRequest(r, fuzzLimits)
		checkOutcome(t, events, p)
		for _, e := range events {
			if !e.DataBase64 && e.DataEncoded != nil && !json.Valid(e.DataEncoded) {
				t.Fatalf("binary data kept as JSON is not JSON: %q", e.DataEncoded)
			}
		}
	})
}

// checkOutcome asserts ParseRequest's contract: events or a problem, never both or
// neither; a problem is a complete 4xx; every event is one ingest may accept.
func checkOutcome(t *testing.T, events []event.Event, p *problem.Problem) {
	t.Helper()
	if (p == nil) == (len(events) == 0) || (p != nil && events != nil) {
		t.Fatalf("got %d events and problem %v: want exactly one of them", len(events), p)
	}
	if p != nil {
		if p.Status < 400 || p.Status > 499 || p.Type == "" || p.Title == "" || p.Detail == "" {
			t.Fatalf("incomplete problem: %+v", p)
		}
		if p.Status == http.StatusRequestEntityTooLarge && p.Limit <= 0 {
			t.Fatalf("413 without its limit: %+v", p)
		}
		if !utf8.ValidString(p.Detail) || !utf8.ValidString(p.Attribute) {
			t.Fatalf("problem text is not UTF-8, so its JSON would be mangled: %q %q", p.Detail, p.Attribute)
		}
		return
	}
	for _, e := range events {
		checkAccepted(t, e)
	}
}

// checkJSONVerdict compares the parser's view of the body with encoding/json's: an
// accepted body is valid JSON, a body called malformed is not, and a body that is
// not valid UTF-8 JSON is refused as malformed or (checked first) too large.
func checkJSONVerdict(t *testing.T, body []byte, p *problem.Problem) {
	t.Helper()
	valid := utf8.Valid(body) && json.Valid(body)
	switch {
	case p == nil && !valid:
		t.Fatalf("accepted a body encoding/json calls invalid: %q", body)
	case p == nil:
	case p.Type == problem.TypeMalformed && valid:
		t.Fatalf("called valid JSON malformed (%s): %q", p.Detail, body)
	case !valid && p.Type != problem.TypeMalformed && p.Type != problem.TypeTooLarge:
		t.Fatalf("invalid JSON reported as %s (%s): %q", p.Type, p.Detail, body)
	}
}
