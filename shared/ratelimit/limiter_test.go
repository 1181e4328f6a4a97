package ratelimit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestLocalStoreGCRA drives the local GCRA on a fake clock: a full burst at once,
// then one event per emission interval, and nothing more.
func TestLocalStoreGCRA(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newLocalStore(0, func() time.Time { return now })
	lim := Limit{Rate: 10, Burst: 5} // one event per 100 ms
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		d, _ := s.allow(ctx, "k", lim, 1)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("event %d of the burst: %+v, want allowed with %d remaining", i, d, 4-i)
		}
	}
	d, _ := s.allow(ctx, "k", lim, 1)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("event past the burst: %+v, want refused with RetryAfter 100ms", d)
	}
	now = now.Add(99 * time.Millisecond)
	if d, _ := s.allow(ctx, "k", lim, 1); d.Allowed {
		t.Fatalf("1 ms too early: allowed")
	}
	now = now.Add(time.Millisecond)
	if d, _ := s.allow(ctx, "k", lim, 1); !d.Allowed {
		t.Fatalf("after one emission interval: %+v, want allowed", d)
	}
	// Over a long window the count is Burst + Rate×T, whatever the request size.
	now = now.Add(time.Hour)
	allowed := 0
	for step := 0; step < 1000; step++ { // 10 s in 10 ms steps, 3 events per try
		if d, _ := s.allow(ctx, "w", lim, 3); d.Allowed {
			allowed += 3
		}
		now = now.Add(10 * time.Millisecond)
	}
	if max := 5 + 10*10; allowed > max || allowed < max-3 {
		t.Fatalf("10 s at 10/s burst 5 allowed %d events, want at most %d and at least %d", allowed, max, max-3)
	}
}

func TestLocalStoreBoundedKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newLocalStore(100, func() time.Time { return now })
	for i := 0; i < 1000; i++ {
		s.allow(context.Background(), string(rune('a'+i%26))+time.Duration(i).String(), Limit{Rate: 1, Burst: 10}, 1)
	}
	if n := len(s.tat); n > 100 {
		t.Fatalf("local store holds %d keys, want at most 100", n)
	}
}

func newMiniredis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return m, c
}

// TestLimiterStores runs the same decisions through Redis and through the local
// store: burst, refusal, too large, per-key overrides, and all-or-nothing batches.
func TestLimiterStores(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis bool
	}{{"redis", true}, {"local", false}} {
		t.Run(tc.name, func(t *testing.T) {
			var rdb Client
			if tc.redis {
				_, rdb = newMiniredis(t)
			}
			l := New(rdb, Options{
				Default:   Limit{Rate: 1, Burst: 5},
				Overrides: map[string]Limit{"vip": {Rate: 1, Burst: 50}},
				Prefix:    "t:", Log: quiet,
			})
			ctx := context.Background()
			allow := func(costs ...Cost) Decision {
				t.Helper()
				d, err := l.Allow(ctx, costs)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			if d := allow(Cost{"a", 4}); !d.Allowed || d.Remaining != 1 || d.Key != "a" {
				t.Fatalf("4 of 5: %+v", d)
			}
			d := allow(Cost{"a", 2})
			if d.Allowed || d.RetryAfter < 900*time.Millisecond || d.RetryAfter > time.Second {
				t.Fatalf("2 more with 1 left: %+v, want refused, RetryAfter about 1s", d)
			}
			if d := allow(Cost{"b", 6}); !d.TooLarge || d.Allowed {
				t.Fatalf("6 > burst 5: %+v, want TooLarge", d)
			}
			if d := allow(Cost{"vip", 40}); !d.Allowed || d.Limit.Burst != 50 {
				t.Fatalf("override: %+v", d)
			}
			// All or nothing: "0" has room and is charged first (keys go in order),
			// a has not; "0" must get its events back.
			if d := allow(Cost{"a", 1}, Cost{"0", 3}, Cost{"a", 1}); d.Allowed || d.Key != "a" {
				t.Fatalf("batch over a's budget: %+v, want refused by a", d)
			}
			if d := allow(Cost{"0", 5}); !d.Allowed {
				t.Fatalf("0 after a refused batch: %+v, want its whole burst back", d)
			}
		})
	}
}

// TestLimiterFallback stops Redis: the fallback decides (local, open or closed),
// the gauge says so, and when Redis answers again it decides again.
func TestLimiterFallback(t *testing.T) {
	for _, mode := range []string{FallbackLocal, FallbackOpen, FallbackClosed} {
		t.Run(mode, func(t *testing.T) {
			m, rdb := newMiniredis(t)
			active := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fallback"})
			events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "events"}, []string{"mode"})
			l := New(rdb, Options{
				Default: Limit{Rate: 1, Burst: 4}, Fallback: mode, Replicas: 2,
				Timeout: 200 * time.Millisecond, Retry: 50 * time.Millisecond, Log: quiet,
				FallbackActive: active, FallbackEvents: events,
			})
			ctx := context.Background()
			if d, err := l.Allow(ctx, []Cost{{"k", 4}}); err != nil || !d.Allowed || d.Fallback != "" {
				t.Fatalf("Redis up: %+v %v", d, err)
			}
			m.Close()
			d, err := l.Allow(ctx, []Cost{{"k", 3}})
			switch mode {
			case FallbackLocal:
				// The local limiter has its own (full) burst: Redis's state is out of reach.
				if err != nil || !d.Allowed || d.Fallback != FallbackLocal {
					t.Fatalf("local fallback: %+v %v", d, err)
				}
				if d, _ := l.Allow(ctx, []Cost{{"k", 2}}); d.Allowed {
					t.Fatalf("local fallback past its burst: %+v, want refused", d)
				}
			case FallbackOpen:
				if err != nil || !d.Allowed || d.Fallback != FallbackOpen {
					t.Fatalf("open fallback: %+v %v", d, err)
				}
			case FallbackClosed:
				if !errors.Is(err, ErrUnavailable) || d.Allowed || d.RetryAfter <= 0 {
					t.Fatalf("closed fallback: %+v %v, want ErrUnavailable with RetryAfter", d, err)
				}
			}
			if g := testutil.ToFloat64(active); g != 1 || !l.Degraded() {
				t.Fatalf("fallback gauge %v degraded %v while Redis is down, want 1, true", g, l.Degraded())
			}
			if n := testutil.ToFloat64(events.WithLabelValues(mode)); n < 3 {
				t.Fatalf("fallback events counted %v, want at least 3", n)
			}
			if err := m.Restart(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for l.Degraded() && time.Now().Before(deadline) {
				l.Allow(ctx, []Cost{{"other", 1}})
				time.Sleep(20 * time.Millisecond)
			}
			if g := testutil.ToFloat64(active); g != 0 || l.Degraded() {
				t.Fatalf("fallback gauge %v after Redis came back, want 0", g)
			}
			if d, err := l.Allow(ctx, []Cost{{"k", 4}}); err != nil || d.Fallback != "" {
				t.Fatalf("Redis back: %+v %v, want decided by Redis", d, err)
			}
		})
	}
}

func TestLocalFallbackShare(t *testing.T) {
	l := New(nil, Options{Default: Limit{Rate: 90, Burst: 10}, Replicas: 3})
	if got := l.limitFor(localKey("k")); got != (Limit{Rate: 30, Burst: 10}) {
		t.Fatalf("share of 3 replicas: %v, want 30/s burst 10", got)
	}
	if got := l.limitFor("k"); got != (Limit{Rate: 90, Burst: 10}) {
		t.Fatalf("shared limit: %v", got)
	}
}

func TestHeaders(t *testing.T) {
	h := http.Header{}
	Headers(h, Decision{Limit: Limit{Rate: 100, Burst: 250}, Remaining: 7, ResetAfter: 1200 * time.Millisecond})
	want := map[string]string{
		"RateLimit-Limit": "250", "RateLimit-Remaining": "7", "RateLimit-Reset": "2", "RateLimit-Policy": "250;w=3",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestParseOverrides(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]Limit
		wantErr bool
	}{
		{in: "", want: map[string]Limit{}},
		{in: "key:ab12=10/20", want: map[string]Limit{"key:ab12": {10, 20}}},
		{in: "source:https://x/y?a=b=5/6, remote:10.0.0.1=1/1", want: map[string]Limit{"source:https://x/y?a=b": {5, 6}, "remote:10.0.0.1": {1, 1}}},
		{in: "k=10", wantErr: true},
		{in: "=1/2", wantErr: true},
		{in: "k=0/2", wantErr: true},
		{in: "k=a/2", wantErr: true},
	} {
		got, err := ParseOverrides(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseOverrides(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && len(got) != len(tc.want) {
			t.Errorf("ParseOverrides(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseOverrides(%q)[%q] = %v, want %v", tc.in, k, got[k], v)
			}
		}
	}
}
