package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// analyticsRedis is a real Redis when REDIS_ADDR is set (keys under a prefix of the
// test's own), else miniredis, which is returned so a test can move its clock.
func analyticsRedis(t *testing.T) (*redis.Client, string, *miniredis.Miniredis) {
	t.Helper()
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, Password: os.Getenv("REDIS_PASSWORD")})
		t.Cleanup(func() {
			ctx := context.Background()
			if keys, err := c.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
				c.Del(ctx, keys...)
			}
			c.Close()
		})
		return c, prefix, nil
	}
	c, m := newRedis(t)
	return c, prefix, m
}

// nextEpoch moves past the start of Redis's next dedup epoch of length w: miniredis's
// clock is set there; on a real Redis it waits for Redis's own clock to get there.
func nextEpoch(t *testing.T, rdb *redis.Client, m *miniredis.Miniredis, w time.Duration) {
	t.Helper()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	next := now.Truncate(w).Add(w)
	if m != nil {
		m.SetTime(next.Add(time.Millisecond))
		return
	}
	deadline := time.Now().Add(10 * w)
	for now.Before(next) {
		if time.Now().After(deadline) {
			t.Fatalf("Redis's clock did not reach %v", next)
		}
		time.Sleep(w / 20) // polling Redis's clock for the boundary
		if now, err = rdb.Time(ctx).Result(); err != nil {
			t.Fatal(err)
		}
	}
}

func applyOK(t *testing.T, s *Analytics, partition int32, next int64, facts []Fact, want ApplyResult) {
	t.Helper()
	got, err := s.Apply(context.Background(), "g", "topic-id", partition, next, facts)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("apply: %+v, want %+v", got, want)
	}
}

func events(t *testing.T, s *Analytics) int64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Events
}

// Every way an event can come again is counted once: in the same batch, in a later
// batch (with more events than one SMISMEMBER/SADD chunk), as a replay below the
// stored offset, in push mode, and from a source whose id makes the same string.
func TestAnalyticsCountsEachEventOnce(t *testing.T) {
	t.Run("later batch, across chunks", func(t *testing.T) {
		rdb, prefix, _ := analyticsRedis(t)
		s := NewAnalytics(rdb, prefix, time.Hour)
		facts := mixedBatch(0, 2500)
		applyOK(t, s, 0, 2500, facts, ApplyResult{Applied: 2500})
		again := mixedBatch(0, 2500)
		for i := range again {
			again[i].Offset += 2500
		}
		again = append(again, mixedBatch(2500, 1)...)
		again[len(again)-1].Offset = 5000
		applyOK(t, s, 0, 5001, again, ApplyResult{Applied: 1, Duplicates: 2500})
		if n := events(t, s); n != 2501 {
			t.Fatalf("events=%d, want 2501", n)
		}
	})
	t.Run("same batch", func(t *testing.T) {
		rdb, prefix, _ := analyticsRedis(t)
		s := NewAnalytics(rdb, prefix, time.Hour)
		applyOK(t, s, 0, 3, []Fact{fact("a", 0), fact("a", 1), fact("b", 2)}, ApplyResult{Applied: 2, Duplicates: 1})
		if n := events(t, s); n != 2 {
			t.Fatalf("events=%d, want 2", n)
		}
	})
	t.Run("replay below the stored offset", func(t *testing.T) {
		rdb, prefix, _ := analyticsRedis(t)
		s := NewAnalytics(rdb, prefix, time.Hour)
		applyOK(t, s, 0, 10, []Fact{fact("a", 0), fact("b", 1)}, ApplyResult{Applied: 2})
		// x at offset 5 is below the stored 10: skipped though never seen; a again at
		// a new offset is a duplicate; c is new.
		applyOK(t, s, 0, 13, []Fact{fact("a", 0), fact("x", 5), fact("a", 10), fact("c", 12)},
			ApplyResult{Applied: 1, Duplicates: 1, Replayed: 2})
		if n := events(t, s); n != 3 {
			t.Fatalf("events=%d, want 3", n)
		}
		offs, err := s.Offsets(context.Background(), "g", "topic-id")
		if err != nil || offs[0] != 13 {
			t.Fatalf("offsets %v, %v; want partition 0 at 13", offs, err)
		}
	})
	t.Run("push mode", func(t *testing.T) {
		rdb, prefix, _ := analyticsRedis(t)
		s := NewAnalytics(rdb, prefix, time.Hour)
		applyOK(t, s, -1, 0, []Fact{fact("a", -1)}, ApplyResult{Applied: 1})
		applyOK(t, s, -1, 0, []Fact{fact("a", -1), fact("b", -1)}, ApplyResult{Applied: 1, Duplicates: 1})
		if n := events(t, s); n != 2 {
			t.Fatalf("events=%d, want 2", n)
		}
	})
	t.Run("source and id are not run together", func(t *testing.T) {
		rdb, prefix, _ := analyticsRedis(t)
		s := NewAnalytics(rdb, prefix, time.Hour)
		x, y := fact("bc", 0), fact("c", 1)
		x.Source, y.Source = "a", "ab"
		applyOK(t, s, 0, 2, []Fact{x, y}, ApplyResult{Applied: 2})
	})
}

// An event is remembered for at least the dedup window: across the boundary of the
// epoch sets it is still a duplicate; two epochs later it is forgotten (at most 2W),
// and the set that held it is gone (UNLINKed before it expires). On a real Redis each
// step must fall in the epoch it is meant for: when a busy machine delays one past
// its epoch, the run is repeated (a few times at most) with fresh keys.
func TestAnalyticsDedupSpansTheEpochBoundary(t *testing.T) {
	ctx := context.Background()
	rdb, prefix, m := analyticsRedis(t)
	w := 500 * time.Millisecond
	if m != nil {
		w = time.Hour
	}
	epoch := func() int64 {
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return now.UnixMilli() / w.Milliseconds()
	}
	for attempt := range 5 {
		p := fmt.Sprintf("%s%d:", prefix, attempt)
		s := NewAnalytics(rdb, p, w)
		// apply applies facts in epoch e and reports false when it was not all in e.
		apply := func(e int64, next int64, facts []Fact, want ApplyResult) bool {
			t.Helper()
			if epoch() != e {
				return false
			}
			got, err := s.Apply(ctx, "g", "topic-id", 0, next, facts)
			if err != nil {
				t.Fatal(err)
			}
			if epoch() != e {
				return false
			}
			if got != want {
				t.Fatalf("epoch %d: %+v, want %+v", e, got, want)
			}
			return true
		}
		if m != nil {
			m.SetTime(time.Date(2026, 1, 1, 10, 59, 59, 0, time.UTC)) // a second before a boundary
		} else {
			nextEpoch(t, rdb, nil, w) // a whole epoch ahead for the first steps
		}
		e := epoch()
		if !apply(e, 1, []Fact{fact("a", 0)}, ApplyResult{Applied: 1}) {
			continue
		}
		first, err := rdb.Keys(ctx, p+"analytics:seen:*").Result()
		if err != nil || len(first) != 1 {
			t.Fatalf("epoch sets %v (%v), want one", first, err)
		}
		// It must outlive the next epoch, and is bounded.
		if ttl := rdb.PTTL(ctx, first[0]).Val(); ttl <= w || ttl > 3*w {
			t.Fatalf("epoch set expires in %v, want within (%v, %v]", ttl, w, 3*w)
		}
		nextEpoch(t, rdb, m, w)
		if !apply(e+1, 3, []Fact{fact("a", 1), fact("b", 2)}, ApplyResult{Applied: 1, Duplicates: 1}) {
			continue
		}
		nextEpoch(t, rdb, m, w)
		// b was first counted one epoch ago: still remembered; a two epochs ago: forgotten.
		if !apply(e+2, 5, []Fact{fact("a", 3), fact("b", 4)}, ApplyResult{Applied: 1, Duplicates: 1}) {
			continue
		}
		if n := events(t, s); n != 3 {
			t.Fatalf("events=%d, want 3", n)
		}
		keys, err := rdb.Keys(ctx, p+"analytics:seen:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 {
			t.Fatalf("epoch sets %v, want the current and the previous one only", keys)
		}
		return
	}
	t.Fatal("the machine was too busy: no run kept each step within its epoch")
}
