package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// eventResult is what happened when one event was sent.
type eventResult struct {
	Attempts int
	Acked    bool
	Rejected bool // answered 4xx (not 429): never retried
}

// keyResult is what happened to the events of one key, in sequence order.
type keyResult struct {
	Key    string // the partitionkey extension
	Source string // the events' source, which is also their notification channel
	Events []eventResult
	// Outages are this key's periods of unavailability.
	Outages []interval
}

// failure is one refused attempt, for the unavailability report.
type failure struct {
	At     time.Time
	Reason string
}

// pacer spaces attempts evenly at rate per second across all callers (0: no limit).
// It keeps no credit while callers are blocked, so an outage is not followed by a
// burst.
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller's slot comes, or ctx ends (false).
func (p *pacer) wait(ctx context.Context) bool {
	if p.every == 0 {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.every)
	p.mu.Unlock()
	d := time.Until(slot)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sender posts the events of every key through ingest.
type sender struct {
	cfg      Config
	client   *http.Client
	pace     *pacer
	sent     atomic.Int64
	acked    atomic.Int64
	failMu   sync.Mutex
	failures []failure
}

// Progress is how far the sending has come, for callers that time faults on it.
type Progress struct {
	Sent, Acked int64
}

func (s *sender) progress() Progress { return Progress{Sent: s.sent.Load(), Acked: s.acked.Load()} }

// run sends every key's events and returns the results, in key order.
func (s *sender) run(ctx context.Context) []keyResult {
	keys := make([]keyResult, s.cfg.Keys)
	var wg sync.WaitGroup
	for k := range keys {
		keys[k] = keyResult{Key: s.cfg.partitionKey(k), Source: s.cfg.source(k), Events: make([]eventResult, s.cfg.EventsPerKey)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.sendKey(ctx, &keys[k])
		}()
	}
	wg.Wait()
	return keys
}

// sendKey sends one key's events strictly one after another, so that their send
// order is their sequence order.
func (s *sender) sendKey(ctx context.Context, k *keyResult) {
	var down time.Time // start of the current outage, zero when ingest answered
	for seq := range k.Events {
		ev := &k.Events[seq]
		body := s.cfg.body(k, seq)
		giveUp := time.Now().Add(s.cfg.RetryFor)
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			if !s.pace.wait(ctx) {
				return
			}
			start := time.Now()
			ev.Attempts++
			s.sent.Add(1)
			status, retryAfter, reason := s.post(ctx, body)
			if ctx.Err() != nil {
				return
			}
			switch {
			case status == http.StatusAccepted:
				ev.Acked = true
				s.acked.Add(1)
			case reason == "":
				// Any other answer below 500 but 429 says the request is wrong:
				// retrying cannot help.
				ev.Rejected = true
				s.cfg.Log.Error("event rejected", "key", k.Key, "seq", seq, "status", status)
			}
			if reason == "" {
				if !down.IsZero() {
					k.Outages = append(k.Outages, interval{down, start})
					down = time.Time{}
				}
				break
			}
			if down.IsZero() {
				down = start
			}
			s.failMu.Lock()
			s.failures = append(s.failures, failure{At: start, Reason: reason})
			s.failMu.Unlock()
			if time.Now().After(giveUp) {
				s.cfg.Log.Warn("giving up on an event", "key", k.Key, "seq", seq, "attempts", ev.Attempts, "last", reason)
				break
			}
			// Retry-After is honoured only up to the backoff cap: the verifier must
			// notice quickly when ingest is back, to measure the outage.
			wait := min(max(backoff, retryAfter), time.Second)
			backoff = min(backoff*2, time.Second)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
	if !down.IsZero() {
		k.Outages = append(k.Outages, interval{down, time.Now()})
	}
}

// post sends one attempt. reason is empty when ingest answered and the answer is
// final (202 or a rejection); otherwise it says why the attempt must be retried.
func (s *sender) post(ctx context.Context, body []byte) (status int, retryAfter time.Duration, reason string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, classify(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			retryAfter = time.Duration(secs) * time.Second
		}
		return resp.StatusCode, retryAfter, strconv.Itoa(resp.StatusCode)
	}
	return resp.StatusCode, 0, ""
}

// classify names a transport error for the unavailability report.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "transport error"
	}
}

// body is the structured-mode CloudEvent of event seq of key k.
func (c Config) body(k *keyResult, seq int) []byte {
	b, _ := json.Marshal(map[string]any{
		"specversion":     "1.0",
		"id":              strconv.Itoa(seq),
		"source":          k.Source,
		"type":            EventType,
		"partitionkey":    k.Key,
		"datacontenttype": "application/json",
		"data":            map[string]any{"key": k.Key, "seq": seq},
	})
	return b
}

func (c Config) keyName(k int) string      { return fmt.Sprintf("k%03d", k) }
func (c Config) partitionKey(k int) string { return c.RunID + "-" + c.keyName(k) }
func (c Config) source(k int) string       { return SourcePrefix + c.RunID + "/" + c.keyName(k) }
