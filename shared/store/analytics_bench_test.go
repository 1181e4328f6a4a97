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

// mixedBatch is n facts over a few types, sources and minutes, every subject
// distinct, as analytics sees them from a busy topic.
func mixedBatch(first, n int) []Fact {
	facts := make([]Fact, n)
	for i := range facts {
		k := first + i
		facts[i] = Fact{
			Source: fmt.Sprintf("/src/%d", k%3), ID: fmt.Sprint(k), Type: fmt.Sprintf("type.%d", k%4),
			Subject: fmt.Sprintf("sub-%d", k),
			Time:    time.Date(2026, 1, 1, 10, k%2, 0, 0, time.UTC), Offset: int64(k),
		}
	}
	return facts
}

// The script sums counts per type, source and minute before writing them: each
// aggregate must still be exact for a batch mixing them, with an event repeated in
// the same batch, and with more subjects than one SADD chunk.
func TestAnalyticsApplySumsMixedBatchesExactly(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newRedis(t)
	s := NewAnalytics(rdb, "t:", time.Hour)
	facts := mixedBatch(0, 2500)
	again := facts[7]
	again.Offset = 2500 // the same event (source, id) at a later offset in the same batch
	facts = append(facts, again)
	res, err := s.Apply(ctx, "g", "topic-id", 0, 2501, facts)
	if err != nil {
		t.Fatal(err)
	}
	if res != (ApplyResult{Applied: 2500, Duplicates: 1}) {
		t.Fatalf("result %+v, want 2500 applied and 1 duplicate", res)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int64{
		"types":   {"type.0": 625, "type.1": 625, "type.2": 625, "type.3": 625},
		"sources": {"/src/0": 834, "/src/1": 833, "/src/2": 833},
		"minutes": {"2026-01-01T10:00:00Z": 1250, "2026-01-01T10:01:00Z": 1250},
	}
	for name, got := range map[string]map[string]int64{"types": st.Types, "sources": st.Sources, "minutes": st.Minutes} {
		if fmt.Sprint(got) != fmt.Sprint(want[name]) {
			t.Errorf("%s = %v, want %v", name, got, want[name])
		}
	}
	if st.Events != 2500 || st.Subjects != 2500 {
		t.Errorf("events=%d subjects=%d, want 2500 and 2500", st.Events, st.Subjects)
	}
}

// BenchmarkAnalyticsApply is one ANALYTICS_BATCH_SIZE batch (500 events) through the
// Lua script: on miniredis by default, on a real Redis when BENCH_REDIS_ADDR is set.
func BenchmarkAnalyticsApply(b *testing.B) {
	ctx := context.Background()
	var rdb *redis.Client
	if addr := os.Getenv("BENCH_REDIS_ADDR"); addr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: addr})
		b.Cleanup(func() { rdb.Close() })
	} else {
		m := miniredis.RunT(b)
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		b.Cleanup(func() { rdb.Close() })
	}
	s := NewAnalytics(rdb, fmt.Sprintf("bench:%d:", time.Now().UnixNano()), time.Hour)
	const size = 500
	batches := make([][]Fact, 64)
	for i := range batches {
		batches[i] = mixedBatch(i*size, size)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Fresh ids every round so every fact is applied, not skipped.
		facts := batches[i%len(batches)]
		for j := range facts {
			facts[j].ID = fmt.Sprint(i*size + j)
			facts[j].Offset = int64(i*size + j)
		}
		if _, err := s.Apply(ctx, "g", "topic-id", 0, int64((i+1)*size), facts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}
