package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// PutMany must store in the order given, skip duplicates (also within one call), and
// survive Redis losing its script cache.
func TestNotificationsPutManyKeepsOrderAndDedups(t *testing.T) {
	ctx := context.Background()
	rdb, m := newRedis(t)
	s := NewNotifications(rdb, "t:", 100, time.Hour)
	n := func(id string) Notification { return Notification{ID: id, Source: "/s", Channel: "c", Title: "n" + id} }
	for i, tc := range []struct {
		put   []Notification
		want  []bool
		flush bool // SCRIPT FLUSH first, as after a Redis restart
	}{
		{put: []Notification{n("1"), n("2"), n("1"), n("3")}, want: []bool{true, true, false, true}},
		{put: []Notification{n("3"), n("4")}, want: []bool{false, true}, flush: true},
	} {
		if tc.flush {
			m.FlushAll()
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			// FlushAll dropped the dedup keys too: put 1-3 back as they were.
			if _, err := s.PutMany(ctx, []Notification{n("1"), n("2"), n("3")}); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.PutMany(ctx, tc.put)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("call %d: stored %v, want %v", i, got, tc.want)
		}
	}
	ns, total, err := s.List(ctx, "c", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range ns {
		ids = append(ids, x.ID)
	}
	if fmt.Sprint(ids) != "[4 3 2 1]" || total != 4 {
		t.Fatalf("stream newest first %v (total %d), want [4 3 2 1] and 4", ids, total)
	}
}
