package verify

import (
	"testing"
	"time"
)

func events(acked ...bool) []eventResult {
	out := make([]eventResult, len(acked))
	for i, a := range acked {
		out[i] = eventResult{Attempts: 1, Acked: a}
	}
	return out
}

const y, n = true, false

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		events []eventResult
		obs    observation
		want   keyCheck // only the headline fields are compared
		kinds  []string
	}{
		{
			name:   "exactly once in order",
			events: events(y, y, y),
			obs:    observation{Notified: []int{0, 1, 2}, Total: 3, Counted: 3, Landed: map[int]int{0: 1, 1: 1, 2: 1}},
		},
		{
			name:   "acknowledged but never notified nor counted",
			events: events(y, y, y),
			obs:    observation{Notified: []int{0, 2}, Total: 2, Counted: 2, Landed: map[int]int{0: 1, 1: 1, 2: 1}},
			want:   keyCheck{Lost: 1},
			kinds:  []string{NotificationLost, AnalyticsLost},
		},
		{
			name:   "acknowledged but not in Kafka",
			events: events(y, y),
			obs:    observation{Notified: []int{0}, Total: 1, Counted: 1, Landed: map[int]int{0: 1}},
			want:   keyCheck{Lost: 1},
			kinds:  []string{KafkaLost},
		},
		{
			name:   "notified but not counted",
			events: events(y, y),
			obs:    observation{Notified: []int{0, 1}, Total: 2, Counted: 1, Landed: map[int]int{0: 1, 1: 1}},
			want:   keyCheck{Lost: 1},
			kinds:  []string{AnalyticsLost},
		},
		{
			name:   "two losses in different outputs count twice",
			events: events(y, y, y),
			obs:    observation{Notified: []int{0, 1}, Total: 2, Counted: 2, Landed: map[int]int{0: 1, 1: 1, 2: 1}},
			// event 2 lacks its notification, some other event its count: the
			// count shortfall (1) is assumed to be event 2's, so lost=1 (lower bound)
			want:  keyCheck{Lost: 1},
			kinds: []string{NotificationLost, AnalyticsLost},
		},
		{
			name:   "duplicate notification",
			events: events(y, y),
			obs:    observation{Notified: []int{0, 1, 1}, Total: 3, Counted: 2, Landed: map[int]int{0: 1, 1: 1}},
			want:   keyCheck{Duplicated: 1},
			kinds:  []string{NotificationDuplicate},
		},
		{
			name:   "counted twice",
			events: events(y, y),
			obs:    observation{Notified: []int{0, 1}, Total: 2, Counted: 3, Landed: map[int]int{0: 1, 1: 1}},
			want:   keyCheck{Duplicated: 1},
			kinds:  []string{AnalyticsDuplicate},
		},
		{
			name:   "reordered",
			events: events(y, y, y, y),
			obs:    observation{Notified: []int{0, 2, 1, 3}, Total: 4, Counted: 4, Landed: map[int]int{0: 1, 1: 1, 2: 1, 3: 1}},
			want:   keyCheck{Reordered: 1},
			kinds:  []string{Reordered},
		},
		{
			name:   "unacknowledged, landed twice in Kafka, delivered once: fine",
			events: events(y, n, y),
			obs:    observation{Notified: []int{0, 1, 2}, Total: 3, Counted: 3, Landed: map[int]int{0: 1, 1: 2, 2: 1}},
		},
		{
			name:   "unacknowledged and never landed: fine",
			events: events(y, n, y),
			obs:    observation{Notified: []int{0, 2}, Total: 2, Counted: 2, Landed: map[int]int{0: 1, 2: 1}},
		},
		{
			name:   "unacknowledged, landed, not notified: lost",
			events: events(y, n),
			obs:    observation{Notified: []int{0}, Total: 1, Counted: 2, Landed: map[int]int{0: 1, 1: 1}},
			want:   keyCheck{Lost: 1},
			kinds:  []string{NotificationLost},
		},
		{
			name:   "unacknowledged, landed, counted twice",
			events: events(y, n),
			obs:    observation{Notified: []int{0, 1}, Total: 2, Counted: 3, Landed: map[int]int{0: 1, 1: 1}},
			want:   keyCheck{Duplicated: 1},
			kinds:  []string{AnalyticsDuplicate},
		},
		{
			name:   "without Kafka: an unacknowledged event counted but not notified may have landed",
			events: events(y, n),
			obs:    observation{Notified: []int{0}, Total: 1, Counted: 2},
		},
		{
			name:   "without Kafka: more counts than events sent",
			events: events(y, n),
			obs:    observation{Notified: []int{0}, Total: 1, Counted: 3},
			want:   keyCheck{Duplicated: 1},
			kinds:  []string{AnalyticsDuplicate},
		},
		{
			name:   "without Kafka: acknowledged, not notified",
			events: events(y, y),
			obs:    observation{Notified: []int{1}, Total: 1, Counted: 1},
			want:   keyCheck{Lost: 1},
			kinds:  []string{NotificationLost, AnalyticsLost},
		},
		{
			name:   "foreign and trimmed entries are reported",
			events: events(y),
			obs:    observation{Notified: []int{0, -1}, Total: 5, Counted: 1, Landed: map[int]int{0: 1}},
			kinds:  []string{Foreign, TrimmedChannel},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(keyResult{Key: "k", Events: tt.events}, tt.obs)
			if got.Lost != tt.want.Lost || got.Duplicated != tt.want.Duplicated || got.Reordered != tt.want.Reordered {
				t.Errorf("lost=%d duplicated=%d reordered=%d, want %d %d %d (problems %+v)",
					got.Lost, got.Duplicated, got.Reordered, tt.want.Lost, tt.want.Duplicated, tt.want.Reordered, got.Problems)
			}
			kinds := map[string]bool{}
			for _, p := range got.Problems {
				kinds[p.Kind] = true
			}
			for _, k := range tt.kinds {
				if !kinds[k] {
					t.Errorf("no %s problem among %+v", k, got.Problems)
				}
			}
			if len(tt.kinds) == 0 && len(got.Problems) > 0 {
				t.Errorf("unexpected problems %+v", got.Problems)
			}
		})
	}
}

func TestUnion(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	iv := func(a, b int) interval { return interval{at(a), at(b)} }
	tests := []struct {
		name  string
		in    []interval
		want  []interval
		total time.Duration
	}{
		{name: "none"},
		{name: "disjoint, unsorted", in: []interval{iv(50, 60), iv(0, 10)}, want: []interval{iv(0, 10), iv(50, 60)}, total: 20 * time.Millisecond},
		{name: "overlapping keys", in: []interval{iv(0, 10), iv(5, 20), iv(20, 25)}, want: []interval{iv(0, 25)}, total: 25 * time.Millisecond},
		{name: "nested", in: []interval{iv(0, 100), iv(10, 20)}, want: []interval{iv(0, 100)}, total: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := union(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("union = %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].From.Equal(tt.want[i].From) || !got[i].To.Equal(tt.want[i].To) {
					t.Fatalf("union = %v, want %v", got, tt.want)
				}
			}
			if d := total(got); d != tt.total {
				t.Fatalf("total = %s, want %s", d, tt.total)
			}
		})
	}
}

func TestSeqOf(t *testing.T) {
	for id, want := range map[string]int{"0": 0, "17": 17, "017": -1, "-1": -1, "x": -1, "": -1} {
		if got := seqOf(id); got != want {
			t.Errorf("seqOf(%q) = %d, want %d", id, got, want)
		}
	}
}
