package verify

import (
	"sort"
	"time"
)

// interval is a half-open period of time [From, To).
type interval struct{ From, To time.Time }

// union merges overlapping or touching intervals and returns them in time order.
func union(in []interval) []interval {
	if len(in) == 0 {
		return nil
	}
	s := append([]interval(nil), in...)
	sort.Slice(s, func(i, j int) bool { return s[i].From.Before(s[j].From) })
	out := []interval{s[0]}
	for _, iv := range s[1:] {
		last := &out[len(out)-1]
		if !iv.From.After(last.To) {
			if iv.To.After(last.To) {
				last.To = iv.To
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// total is the summed length of intervals that do not overlap.
func total(ivs []interval) time.Duration {
	var d time.Duration
	for _, iv := range ivs {
		d += iv.To.Sub(iv.From)
	}
	return d
}

// Period is one period in which ingest refused events (for the report).
type Period struct {
	// StartMS is when it began, in milliseconds since the run started.
	StartMS    int64          `json:"start_ms"`
	DurationMS int64          `json:"duration_ms"`
	Failures   int            `json:"failures"`
	Reasons    map[string]int `json:"reasons"`
}

// periods describes the merged outages with the failed attempts that fell in them.
func periods(start time.Time, merged []interval, fails []failure) []Period {
	out := make([]Period, 0, len(merged))
	for _, iv := range merged {
		p := Period{StartMS: iv.From.Sub(start).Milliseconds(), DurationMS: iv.To.Sub(iv.From).Milliseconds(), Reasons: map[string]int{}}
		for _, f := range fails {
			if !f.At.Before(iv.From) && f.At.Before(iv.To) {
				p.Failures++
				p.Reasons[f.Reason]++
			}
		}
		out = append(out, p)
	}
	return out
}
