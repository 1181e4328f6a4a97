package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantilesAreWithinOnePercent(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.9, 9 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.01 {
			t.Errorf("q%.2f = %s, want %s to +1%%", tc.q, got, tc.want)
		}
	}
	if h.Max() != 10*time.Millisecond || h.Min() != time.Microsecond || h.Count() != 10000 {
		t.Errorf("max %s min %s count %d", h.Max(), h.Min(), h.Count())
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	// Every value must land in a bucket whose upper bound is not below it and is
	// within 1/128 of it: the log-linear layout has no gaps or overlaps.
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1 << 20, 1<<20 + 12345, 1 << 40, 1<<62 + 1, 1<<63 - 1} {
		i := bucketOf(v)
		hi := bucketHigh(i)
		if hi < v || float64(hi-v) > float64(v)/128+1 {
			t.Errorf("value %d: bucket %d tops at %d", v, i, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("value %d: previous bucket %d already tops at %d", v, i-1, bucketHigh(i-1))
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	a.Merge(b)
	if a.Count() != 2 || a.Max() != 3*time.Millisecond || a.Min() != time.Millisecond {
		t.Fatalf("merged: count %d min %s max %s", a.Count(), a.Min(), a.Max())
	}
}

// stallTarget answers at once, except for one stall of a set length at a set time.
type stallTarget struct {
	start   time.Time
	stallAt time.Duration
	stall   time.Duration
	once    sync.Once
	sent    atomic.Int64
}

func (s *stallTarget) Send(ctx context.Context, first int64, n int, at time.Time) (string, error) {
	s.sent.Add(int64(n))
	if time.Since(s.start) >= s.stallAt {
		s.once.Do(func() { time.Sleep(s.stall) })
	}
	return "ok", nil
}

// The open loop's reason to exist: one 300 ms stall with one worker must show up as
// many slow requests (all those due during it), not as one slow request and a gap.
// Measured from the actual send (closed-loop style), the same stall hides behind a
// single sample.
func TestOpenLoopCountsTheRequestsAStallDelays(t *testing.T) {
	tgt := &stallTarget{start: time.Now(), stallAt: 200 * time.Millisecond, stall: 300 * time.Millisecond}
	res, err := Run(context.Background(), Config{Mode: Open, Rate: 200, Concurrency: 1, Duration: time.Second}, tgt)
	if err != nil {
		t.Fatal(err)
	}
	// At 200/s, about 60 requests fall due during the stall; each waited part of it.
	if res.Latency.Count < 150 {
		t.Fatalf("only %d requests measured", res.Latency.Count)
	}
	if res.Latency.P90 < 50*time.Millisecond {
		t.Fatalf("p90 %s: the stall was hidden (coordinated omission)", res.Latency.P90)
	}
	if res.Latency.Max < 250*time.Millisecond {
		t.Fatalf("max %s, want the stall's 300ms", res.Latency.Max)
	}

	closed := &stallTarget{start: time.Now(), stallAt: 200 * time.Millisecond, stall: 300 * time.Millisecond}
	cres, err := Run(context.Background(), Config{Mode: Closed, Concurrency: 1, Duration: time.Second}, closed)
	if err != nil {
		t.Fatal(err)
	}
	if cres.Latency.P90 > 10*time.Millisecond {
		t.Fatalf("closed-loop p90 %s: expected the stall to be one sample", cres.Latency.P90)
	}
}

func TestRunStopsAtCountAndDuration(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int64 // events sent, exactly (0: only bounded by time)
	}{
		{"count in batches", Config{Mode: Closed, Concurrency: 4, Batch: 10, Count: 1000, Duration: time.Minute}, 1000},
		{"count at a rate", Config{Mode: Open, Rate: 2000, Batch: 1, Count: 100, Duration: time.Minute}, 100},
		{"duration", Config{Mode: Closed, Concurrency: 2, Duration: 200 * time.Millisecond}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := &stallTarget{start: time.Now(), stallAt: time.Hour}
			start := time.Now()
			res, err := Run(context.Background(), tc.cfg, tgt)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("run took %s", took)
			}
			if tc.want > 0 && (tgt.sent.Load() != tc.want || res.Acked != tc.want) {
				t.Fatalf("sent %d, acked %d, want %d", tgt.sent.Load(), res.Acked, tc.want)
			}
			if tc.want == 0 && res.Acked == 0 {
				t.Fatal("nothing sent")
			}
		})
	}
}

type failTarget struct{}

func (failTarget) Send(context.Context, int64, int, time.Time) (string, error) {
	return "503", errors.New("unavailable")
}

func TestFailuresAreCountedNotMeasured(t *testing.T) {
	res, err := Run(context.Background(), Config{Mode: Closed, Concurrency: 1, Count: 5, Duration: time.Minute}, failTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Statuses["503"] != 5 || res.Acked != 0 || res.Latency.Count != 0 || res.FirstError == "" {
		t.Fatalf("result %+v", res)
	}
}

func TestHTTPTargetSendsValidCloudEvents(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		headers = append(headers, r.Header.Clone())
		var v any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				got = append(got, e.(map[string]any))
			}
		case map[string]any:
			got = append(got, v)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	ev := Events{RunID: "r", Size: 100, Keys: 3}
	tgt, err := NewHTTPTarget(srv.URL, ev, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if _, err := tgt.Send(context.Background(), 0, 1, at); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Send(context.Background(), 1, 3, at); err != nil {
		t.Fatal(err)
	}
	if h := headers[0]; h.Get("Ce-Id") != "r-0" || h.Get("Ce-Subject") != "key-0" || h.Get("Ce-Time") == "" || h.Get("Authorization") != "" {
		t.Fatalf("binary headers %v", h)
	}
	if headers[1].Get("Content-Type") != "application/cloudevents-batch+json" || len(got) != 4 {
		t.Fatalf("batch: %v, %d bodies", headers[1], len(got))
	}
	for i, e := range got[1:] {
		if e["id"] != ev.ID(int64(i+1)) || e["subject"] != ev.Subject(int64(i+1)) || e["specversion"] != "1.0" {
			t.Fatalf("event %d: %v", i, e)
		}
	}
	if n := len(ev.withDefaults().AppendData(nil, 12345)); n != 100 {
		t.Fatalf("data is %d bytes, want 100", n)
	}
	tgt.APIKey = "tide_k"
	if _, err := tgt.Send(context.Background(), 4, 1, at); err != nil {
		t.Fatal(err)
	}
	if h := headers[2]; h.Get("Authorization") != "Bearer tide_k" {
		t.Fatalf("with an API key: Authorization %q, want Bearer tide_k", h.Get("Authorization"))
	}
}

func TestOnlyLoopbackTargets(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.1:8080", true}, {"localhost:9092", true}, {"[::1]:80", true}, {"10.0.0.1:80", false}, {"192.168.1.5:9092", false}, {"8.8.8.8:53", false}} {
		if err := CheckLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("CheckLoopback(%s) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
	if _, err := NewHTTPTarget("http://10.1.2.3:8080/", Events{}, 1, time.Second); err == nil {
		t.Error("a non-loopback URL was accepted")
	}
}

// A user's `tide loadgen -batch 10 -n 500` ends long before the default 1 s warm-up:
// every event was acknowledged, so the result must say so (and that the warm-up is
// in the figures), not report 0 of 0.
func TestARunThatEndsWithinTheWarmupReportsWhatItDid(t *testing.T) {
	tgt := &stallTarget{start: time.Now(), stallAt: time.Hour}
	res, err := Run(context.Background(), Config{Mode: Closed, Concurrency: 2, Batch: 10, Count: 500, Duration: time.Minute, Warmup: 30 * time.Second}, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 500 || res.Events != 500 || res.Requests != 50 || res.AckedTotal != 500 {
		t.Fatalf("acked %d of %d events in %d requests (total %d), want 500 of 500 in 50", res.Acked, res.Events, res.Requests, res.AckedTotal)
	}
	if !res.WarmupIncluded || res.Latency.Count != 50 || res.Throughput <= 0 || res.Statuses["ok"] != 50 {
		t.Fatalf("warm-up included %v, latency n=%d, throughput %.0f, statuses %v", res.WarmupIncluded, res.Latency.Count, res.Throughput, res.Statuses)
	}
	if s := res.String(); !strings.Contains(s, "acked 500 of 500 events") || !strings.Contains(s, "warm-up not left out") {
		t.Fatalf("report does not say what the run did:\n%s", s)
	}

	// A run that outlasts its warm-up still leaves it out, and says how much it left.
	long, err := Run(context.Background(), Config{Mode: Open, Rate: 200, Concurrency: 4, Duration: 600 * time.Millisecond, Warmup: 300 * time.Millisecond}, &stallTarget{start: time.Now(), stallAt: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if long.WarmupIncluded || long.Acked == 0 || long.AckedTotal <= long.Acked {
		t.Fatalf("warm-up included %v, acked %d of total %d: want the warm-up's events left out", long.WarmupIncluded, long.Acked, long.AckedTotal)
	}
	if s := long.String(); !strings.Contains(s, "left out: the first 300ms") {
		t.Fatalf("report does not say the warm-up was left out:\n%s", s)
	}
}

// A count that is not a multiple of the batch is sent in full: the last request
// carries the rest (and a count below the batch is one short request, not none).
func TestCountNotAMultipleOfTheBatchIsSentInFull(t *testing.T) {
	for _, tc := range []struct{ count, batch, requests int64 }{{25, 10, 3}, {5, 10, 1}} {
		tgt := &stallTarget{start: time.Now(), stallAt: time.Hour}
		res, err := Run(context.Background(), Config{Mode: Closed, Concurrency: 3, Batch: int(tc.batch), Count: tc.count, Duration: time.Minute}, tgt)
		if err != nil {
			t.Fatal(err)
		}
		if tgt.sent.Load() != tc.count || res.Acked != tc.count || res.Requests != tc.requests {
			t.Errorf("-n %d -batch %d: sent %d, acked %d in %d requests; want %d in %d", tc.count, tc.batch, tgt.sent.Load(), res.Acked, res.Requests, tc.count, tc.requests)
		}
	}
}
