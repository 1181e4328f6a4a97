package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func newRedis(t *testing.T) (*redis.Client, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, m
}

func TestNotificationsPutIsOncePerEvent(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newRedis(t)
	s := NewNotifications(rdb, "t:", 100, time.Hour)
	n := Notification{ID: "1", Source: "/s", Type: "x", Title: "hello", Channel: "c"}
	for i, want := range []bool{true, false, false} {
		stored, err := s.Put(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if stored != want {
			t.Fatalf("delivery %d: stored=%v, want %v", i+1, stored, want)
		}
	}
	// Same id from another source is another event.
	other := n
	other.Source = "/other"
	if stored, _ := s.Put(ctx, other); !stored {
		t.Fatal("same id from another source was treated as a duplicate")
	}
	ns, total, err := s.List(ctx, "c", 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(ns) != 2 {
		t.Fatalf("total=%d len=%d, want 2 and 2", total, len(ns))
	}
	if ns[0].Source != "/other" {
		t.Fatalf("list is not newest first: %+v", ns)
	}
}

func TestNotificationsStreamIsCappedButTotalIsNot(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newRedis(t)
	s := NewNotifications(rdb, "t:", 5, time.Hour)
	for i := 0; i < 12; i++ {
		if _, err := s.Put(ctx, Notification{ID: fmt.Sprint(i), Source: "/s", Channel: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	ns, total, err := s.List(ctx, "c", 100)
	if err != nil {
		t.Fatal(err)
	}
	if total != 12 || len(ns) != 5 || ns[0].ID != "11" {
		t.Fatalf("total=%d kept=%d newest=%s, want 12, 5, 11", total, len(ns), ns[0].ID)
	}
}

func TestNotificationsDedupExpires(t *testing.T) {
	ctx := context.Background()
	rdb, m := newRedis(t)
	s := NewNotifications(rdb, "t:", 100, time.Minute)
	n := Notification{ID: "1", Source: "/s", Channel: "c"}
	if stored, _ := s.Put(ctx, n); !stored {
		t.Fatal("first put not stored")
	}
	m.FastForward(2 * time.Minute)
	if stored, _ := s.Put(ctx, n); !stored {
		t.Fatal("after the dedup window the event should be notified again")
	}
}

func TestNotificationsSubscribe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb, _ := newRedis(t)
	s := NewNotifications(rdb, "t:", 100, time.Hour)
	ch, err := s.Subscribe(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, Notification{ID: "live", Source: "/s", Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-ch:
		if n.ID != "live" {
			t.Fatalf("got %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no live notification")
	}
}

func fact(id string, offset int64) Fact {
	return Fact{Source: "/s", ID: id, Type: "t", Subject: "sub-" + id, Time: time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC), Offset: offset}
}

func TestAnalyticsApply(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		batches [][]Fact
		nexts   []int64
		want    []ApplyResult
		events  int64
	}{
		{
			name:    "a batch is counted and its offset stored",
			batches: [][]Fact{{fact("a", 0), fact("b", 1)}},
			nexts:   []int64{2},
			want:    []ApplyResult{{Applied: 2}},
			events:  2,
		},
		{
			name:    "a replayed batch is skipped by offset",
			batches: [][]Fact{{fact("a", 0), fact("b", 1)}, {fact("a", 0), fact("b", 1)}},
			nexts:   []int64{2, 2},
			want:    []ApplyResult{{Applied: 2}, {Replayed: 2}},
			events:  2,
		},
		{
			name:    "a batch overlapping the stored offset applies only the new part",
			batches: [][]Fact{{fact("a", 0), fact("b", 1)}, {fact("b", 1), fact("c", 2)}},
			nexts:   []int64{2, 3},
			want:    []ApplyResult{{Applied: 2}, {Applied: 1, Replayed: 1}},
			events:  3,
		},
		{
			name:    "the same event at a new offset is a duplicate",
			batches: [][]Fact{{fact("a", 0)}, {fact("a", 1)}},
			nexts:   []int64{1, 2},
			want:    []ApplyResult{{Applied: 1}, {Duplicates: 1}},
			events:  1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb, _ := newRedis(t)
			s := NewAnalytics(rdb, "t:", time.Hour)
			for i, b := range tc.batches {
				got, err := s.Apply(ctx, "g", "topic-id", 0, tc.nexts[i], b)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want[i] {
					t.Fatalf("batch %d: %+v, want %+v", i, got, tc.want[i])
				}
			}
			st, err := s.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != tc.events || st.Types["t"] != tc.events || st.Sources["/s"] != tc.events || st.Subjects != tc.events {
				t.Fatalf("stats %+v, want %d events", st, tc.events)
			}
			if st.Minutes["2026-01-01T10:00:00Z"] != tc.events {
				t.Fatalf("minute bucket %v", st.Minutes)
			}
			offs, err := s.Offsets(ctx, "g", "topic-id")
			if err != nil {
				t.Fatal(err)
			}
			if offs[0] != tc.nexts[len(tc.nexts)-1] {
				t.Fatalf("stored offset %d, want %d", offs[0], tc.nexts[len(tc.nexts)-1])
			}
		})
	}
}

func TestAnalyticsOffsetsAreKeyedByTopicID(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newRedis(t)
	s := NewAnalytics(rdb, "t:", time.Hour)
	if _, err := s.Apply(ctx, "g", "old-id", 0, 100, []Fact{fact("a", 99)}); err != nil {
		t.Fatal(err)
	}
	// The recreated topic starts at offset 0 again: nothing may be skipped.
	res, err := s.Apply(ctx, "g", "new-id", 0, 1, []Fact{fact("b", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 1 {
		t.Fatalf("record of the recreated topic not applied: %+v", res)
	}
	offs, _ := s.Offsets(ctx, "g", "new-id")
	if offs[0] != 1 {
		t.Fatalf("new topic offsets %v", offs)
	}
}

func TestAnalyticsPushModeDedupsBySourceAndID(t *testing.T) {
	ctx := context.Background()
	rdb, _ := newRedis(t)
	s := NewAnalytics(rdb, "t:", time.Hour)
	for i := 0; i < 3; i++ {
		if _, err := s.Apply(ctx, "g", "", -1, 0, []Fact{fact("a", -1)}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := s.Stats(ctx)
	if st.Events != 1 {
		t.Fatalf("events=%d after three deliveries of one event, want 1", st.Events)
	}
}

func TestEventKeyDistinguishesSourceAndID(t *testing.T) {
	if EventKey("a", "bc") == EventKey("ab", "c") {
		t.Fatal("(a, bc) and (ab, c) must be different events")
	}
	if EventKey("a", "b") != EventKey("a", "b") {
		t.Fatal("EventKey is not stable")
	}
}
