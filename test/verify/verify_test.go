package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"function/shared/store"
)

// fault says what the fake pipeline does with the nth request (0-based) carrying
// event seq of key index key.
type fault func(nth, key, seq int) action

type action struct {
	status     int  // answer (0: 202)
	land       bool // with a non-202 status: the event landed anyway
	skipNotify bool
	dupNotify  bool
	doubleCnt  bool
	skipCount  bool
	hold       bool // notify it after the key's next event (a reordering)
}

// fakePipeline is ingest, notification and analytics in memory, deduplicating by
// (source, id) like the real ones, with faults injected on request.
type fakePipeline struct {
	mu       sync.Mutex
	fault    fault
	posts    int
	seen     map[string]bool
	channels map[string][]store.Notification
	counts   map[string]int64
	held     map[string]*store.Notification
}

func newFake(f fault) *fakePipeline {
	return &fakePipeline{fault: f, seen: map[string]bool{}, channels: map[string][]store.Notification{}, counts: map[string]int64{}, held: map[string]*store.Notification{}}
}

func (p *fakePipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.Method == http.MethodPost:
		var e struct{ ID, Source, Partitionkey string }
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key, _ := strconv.Atoi(e.Source[strings.LastIndex(e.Source, "/k")+2:])
		a := action{}
		if p.fault != nil {
			a = p.fault(p.posts, key, seqOf(e.ID))
		}
		p.posts++
		if a.status == 0 || a.land {
			p.land(e.Source, e.ID, a)
		}
		if a.status != 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(a.status)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path == "/v1/notifications":
		ns := slices.Clone(p.channels[r.URL.Query().Get("channel")])
		slices.Reverse(ns)
		_ = json.NewEncoder(w).Encode(map[string]any{"notifications": ns, "total": len(ns)})
	case r.URL.Path == "/v1/stats":
		_ = json.NewEncoder(w).Encode(store.Stats{Sources: p.counts})
	default:
		http.NotFound(w, r)
	}
}

func (p *fakePipeline) land(source, id string, a action) {
	if p.seen[source+"\x00"+id] && !a.dupNotify && !a.doubleCnt {
		return
	}
	first := !p.seen[source+"\x00"+id]
	p.seen[source+"\x00"+id] = true
	if !a.skipCount && (first || a.doubleCnt) {
		p.counts[source]++
		if a.doubleCnt {
			p.counts[source]++
		}
	}
	n := store.Notification{ID: id, Source: source, Channel: source}
	switch {
	case a.skipNotify:
	case a.hold:
		p.held[source] = &n
	default:
		p.channels[source] = append(p.channels[source], n)
		if a.dupNotify {
			p.channels[source] = append(p.channels[source], n)
		}
		if h := p.held[source]; h != nil {
			p.channels[source] = append(p.channels[source], *h)
			delete(p.held, source)
		}
	}
}

func TestVerifierFindsWhatThePipelineGotWrong(t *testing.T) {
	onEvent := func(key, seq int, a action) fault {
		return func(_, k, s int) action {
			if k == key && s == seq {
				return a
			}
			return action{}
		}
	}
	tests := []struct {
		name          string
		fault         fault
		want          Counts // Sent and UnavailableMS are checked apart
		extraAttempts int64
		unavailable   bool
	}{
		{name: "clean", want: Counts{Acked: 60}},
		{name: "lost notification", fault: onEvent(1, 7, action{skipNotify: true}), want: Counts{Acked: 60, Lost: 1}},
		{name: "lost count", fault: onEvent(2, 0, action{skipCount: true}), want: Counts{Acked: 60, Lost: 1}},
		{name: "duplicate notification", fault: onEvent(0, 3, action{dupNotify: true}), want: Counts{Acked: 60, Duplicated: 1}},
		{name: "counted twice", fault: onEvent(0, 19, action{doubleCnt: true}), want: Counts{Acked: 60, Duplicated: 1}},
		{name: "reordered", fault: onEvent(2, 5, action{hold: true}), want: Counts{Acked: 60, Reordered: 1}},
		{
			name: "refused, then accepted: unavailability, nothing lost",
			fault: func(nth, _, _ int) action {
				if nth >= 10 && nth < 16 {
					return action{status: http.StatusServiceUnavailable}
				}
				return action{}
			},
			want: Counts{Acked: 60}, extraAttempts: 6, unavailable: true,
		},
		{
			name: "refused but landed, retried: delivered once",
			fault: func(nth, _, _ int) action {
				if nth == 20 {
					return action{status: http.StatusServiceUnavailable, land: true}
				}
				return action{}
			},
			want: Counts{Acked: 60}, extraAttempts: 1, unavailable: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(newFake(tt.fault))
			defer srv.Close()
			rep, err := Verify(context.Background(), Config{
				Scenario: "fake", URL: srv.URL, Keys: 3, EventsPerKey: 20, Settle: 300 * time.Millisecond, RetryFor: 10 * time.Second,
			})
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			got := rep.Counts
			if got.Sent != 60+tt.extraAttempts {
				t.Errorf("sent = %d, want %d", got.Sent, 60+tt.extraAttempts)
			}
			if (got.UnavailableMS > 0) != tt.unavailable {
				t.Errorf("unavailable_ms = %d, want unavailability %v", got.UnavailableMS, tt.unavailable)
			}
			got.Sent, got.UnavailableMS = 0, 0
			if got != tt.want {
				t.Errorf("counts %+v, want %+v; problems %+v", got, tt.want, rep.Problems)
			}
			if wantOK := tt.want.Lost+tt.want.Duplicated+tt.want.Reordered == 0; (err == nil) != wantOK || rep.OK() != wantOK {
				t.Errorf("err = %v, OK() = %v, want ok %v", err, rep.OK(), wantOK)
			}
			if tt.unavailable && (len(rep.Unavailable) == 0 || rep.Unavailable[0].Reasons["503"] == 0) {
				t.Errorf("unavailability periods %+v, want 503s", rep.Unavailable)
			}
		})
	}
}

// TestTooFewAcknowledgedFails guards MinAcked: a run that proves nothing fails.
func TestTooFewAcknowledgedFails(t *testing.T) {
	srv := httptest.NewServer(newFake(nil))
	defer srv.Close()
	rep, err := Verify(context.Background(), Config{URL: srv.URL, Keys: 2, EventsPerKey: 5, MinAcked: 11, Settle: time.Second})
	if err == nil || rep.OK() {
		t.Fatalf("10 acknowledged events with MinAcked 11 passed: %+v", rep.Counts)
	}
}

func TestLines(t *testing.T) {
	s := NewSuite(&Report{Scenario: "a", Counts: Counts{Sent: 3, Acked: 2, Lost: 1, UnavailableMS: 5}},
		&Report{Scenario: "b", Counts: Counts{Sent: 1, Acked: 1, Duplicated: 2, Reordered: 1}})
	var b strings.Builder
	s.Lines(&b)
	want := "scenario=a sent=3 acked=2 lost=1 duplicated=0 reordered=0 unavailable_ms=5\n" +
		"scenario=b sent=1 acked=1 lost=0 duplicated=2 reordered=1 unavailable_ms=0\n" +
		"scenario=total sent=4 acked=3 lost=1 duplicated=2 reordered=1 unavailable_ms=5\n"
	if b.String() != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
}
