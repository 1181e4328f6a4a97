package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"function/functions/ingest"
	"function/test/pipelinetest"
)

// countingBody is a request body that counts the bytes read from it.
type countingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return nil }

// holdFull holds s's publisher and parks a request of n events in it, so the buffer
// holds them until the returned release is called; release returns that request's
// status.
func holdFull(t *testing.T, s *server, n int) (release func() int) {
	t.Helper()
	pub := s.f.Publisher()
	if err := pub.Hold(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := make([][]byte, n)
	for i := range evs {
		evs[i] = structured(fmt.Sprintf("held-%d", i), "/admission")
	}
	code := make(chan int, 1)
	go func() { code <- post(t, s.srv.URL, ctBatch, batch(evs...), nil).code }()
	pipelinetest.Eventually(t, 10*time.Second, "the held request buffered", func() (bool, string) {
		return pub.Buffered() == int64(n), fmt.Sprintf("%d buffered", pub.Buffered())
	})
	released := false
	t.Cleanup(func() {
		if !released {
			pub.Release()
		}
	})
	return func() int { released = true; pub.Release(); return <-code }
}

// serveCounted hands s a batch request of body, declared as contentLength bytes,
// straight (no network) and returns the answer and how many body bytes the handler
// read.
func serveCounted(s *server, body []byte, contentLength int64) (*httptest.ResponseRecorder, int64) {
	cb := &countingBody{r: bytes.NewReader(body)}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body, req.ContentLength = cb, contentLength
	req.Header.Set("Content-Type", ctBatch)
	w := httptest.NewRecorder()
	s.f.ServeHTTP(w, req)
	return w, cb.read.Load()
}

// TestFullBufferRefusesBeforeReadingTheBody: once the publisher holds
// PRODUCER_MAX_BUFFERED records, a request is answered 503 with Retry-After without
// a byte of its body read; over the network the client gets that answer promptly,
// whatever the body's size, and a small request's connection stays usable.
func TestFullBufferRefusesBeforeReadingTheBody(t *testing.T) {
	s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) { c.MaxBuffered = 10 })
	release := holdFull(t, s, 10)

	for _, cl := range []int64{100, -1} { // known and unknown length
		w, read := serveCounted(s, batch(structured("x", "/admission")), cl)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("Content-Length %d: %d, Retry-After %q; want 503 with Retry-After", cl, w.Code, w.Header().Get("Retry-After"))
		}
		if read != 0 {
			t.Errorf("Content-Length %d: the handler read %d body bytes before refusing", cl, read)
		}
		if d := w.Body.String(); !strings.Contains(d, "not read") || !strings.Contains(d, "PRODUCER_MAX_BUFFERED") {
			t.Errorf("Content-Length %d: the answer does not say why: %s", cl, d)
		}
	}

	// Over the network: a body far larger than net/http discards for keep-alive
	// (256 KiB) gets its 503 and a closed connection, not a write error; small ones
	// keep theirs.
	big := batch(bytes.Repeat([]byte(`{"specversion":"1.0","id":"b","source":"/s","type":"t","data":"`+strings.Repeat("x", 1000)+`"}`), 4000))
	start := time.Now()
	code, closed, _ := postTraced(t, s.srv.URL, big)
	if code != http.StatusServiceUnavailable || !closed {
		t.Fatalf("a %d-byte body: %d, connection closed %v; want 503 and Connection: close", len(big), code, closed)
	}
	t.Logf("a %d-byte body refused unread in %s", len(big), time.Since(start).Round(time.Millisecond))
	reused := 0
	for i := 0; i < 3; i++ {
		code, closed, wasReused := postTraced(t, s.srv.URL, batch(structured("small", "/s")))
		if code != http.StatusServiceUnavailable || closed {
			t.Fatalf("small request %d: %d, connection closed %v; want 503 on a kept connection", i, code, closed)
		}
		if wasReused {
			reused++
		}
	}
	if reused < 2 {
		t.Errorf("small refused requests reused their connection %d times of 2", reused)
	}

	if code := release(); code != http.StatusAccepted {
		t.Fatalf("the held request: %d, want 202 once released", code)
	}
	if a := post(t, s.srv.URL, ctBatch, batch(structured("after", "/admission")), nil); a.code != http.StatusAccepted {
		t.Fatalf("after the release: %d, want 202: %s", a.code, a.body)
	}
}

// postTraced posts body as a batch and returns the status, whether the server
// closed the connection after it, and whether the request reused a connection.
func postTraced(t *testing.T, url string, body []byte) (code int, closed, reused bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctBatch)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
	}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a %d-byte request: %v (want an answer, not a broken connection)", len(body), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close, reused
}

// TestBodyLargerThanFreeBytesIsRefusedUnread: a Content-Length beyond the bytes left
// in PRODUCER_MAX_BUFFERED_BYTES is refused unread, naming that setting; one that
// fits is read.
func TestBodyLargerThanFreeBytesIsRefusedUnread(t *testing.T) {
	s := startIngest(t, embeddedKafka(t), func(c *ingest.Config) { c.MaxBufferedBytes = 64 << 10 })
	release := holdFull(t, s, 5)
	free := s.cfg.MaxBufferedBytes - s.f.Publisher().BufferedBytes()
	if free <= 0 {
		t.Fatalf("the held request took the whole budget (%d bytes): the test proves nothing", s.f.Publisher().BufferedBytes())
	}
	w, read := serveCounted(s, batch(structured("x", "/admission")), free+1)
	if w.Code != http.StatusServiceUnavailable || read != 0 {
		t.Fatalf("Content-Length %d with %d bytes free: %d after reading %d bytes; want 503 unread", free+1, free, w.Code, read)
	}
	if d := w.Body.String(); !strings.Contains(d, "PRODUCER_MAX_BUFFERED_BYTES") {
		t.Errorf("the answer does not name PRODUCER_MAX_BUFFERED_BYTES: %s", d)
	}
	// One that fits is read (and, being malformed, answered 400 rather than waiting
	// for the held publisher).
	if w, read := serveCounted(s, []byte("[{"), 2); w.Code != http.StatusBadRequest || read == 0 {
		t.Errorf("Content-Length 10 with %d bytes free: %d after reading %d bytes; want it read (400)", free, w.Code, read)
	}
	// A request whose body fits but whose records do not is read and refused; until
	// something is acknowledged, the next one is refused unread although its
	// Content-Length would fit.
	evs := make([][]byte, 200)
	for i := range evs {
		evs[i] = structured(fmt.Sprintf("many-%d", i), "/admission")
	}
	many := batch(evs...)
	if int64(len(many)) >= free {
		t.Fatalf("a %d-byte body does not fit in %d bytes: the test proves nothing", len(many), free)
	}
	if w, read := serveCounted(s, many, int64(len(many))); w.Code != http.StatusServiceUnavailable || read == 0 {
		t.Fatalf("200 events in %d bytes with %d bytes free: %d after reading %d bytes; want it read and refused", len(many), free, w.Code, read)
	}
	w, read = serveCounted(s, batch(structured("x", "/admission")), 100)
	if w.Code != http.StatusServiceUnavailable || read != 0 || !strings.Contains(w.Body.String(), "nothing was acknowledged since") {
		t.Fatalf("after a refusal: %d after reading %d bytes: %s; want 503 unread", w.Code, read, w.Body.String())
	}
	if code := release(); code != http.StatusAccepted {
		t.Fatalf("the held request: %d, want 202 once released", code)
	}
}
