package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Counts are the figures of the one-line summary.
type Counts struct {
	Sent          int64 `json:"sent"`  // attempts
	Acked         int64 `json:"acked"` // 202 answers
	Lost          int64 `json:"lost"`
	Duplicated    int64 `json:"duplicated"`
	Reordered     int64 `json:"reordered"`
	UnavailableMS int64 `json:"unavailable_ms"`
}

// Line is the one-line summary of a scenario:
// scenario=NAME sent=N acked=N lost=N duplicated=N reordered=N unavailable_ms=N.
func (c Counts) Line(scenario string) string {
	return fmt.Sprintf("scenario=%s sent=%d acked=%d lost=%d duplicated=%d reordered=%d unavailable_ms=%d",
		scenario, c.Sent, c.Acked, c.Lost, c.Duplicated, c.Reordered, c.UnavailableMS)
}

// Add sums o into c.
func (c *Counts) Add(o Counts) {
	c.Sent += o.Sent
	c.Acked += o.Acked
	c.Lost += o.Lost
	c.Duplicated += o.Duplicated
	c.Reordered += o.Reordered
	c.UnavailableMS += o.UnavailableMS
}

// Report is the outcome of one verification run (the JSON report).
type Report struct {
	Scenario string `json:"scenario"`
	RunID    string `json:"run_id"`
	Counts
	Keys          int       `json:"keys"`
	EventsPerKey  int       `json:"events_per_key"`
	Rate          float64   `json:"rate"`
	Rejected      int64     `json:"rejected"` // answered 4xx
	GaveUp        int64     `json:"gave_up"`  // never acknowledged within the retry budget
	StartedAt     time.Time `json:"started_at"`
	SendSeconds   float64   `json:"send_seconds"`
	SettleSeconds float64   `json:"settle_seconds"`
	// Converged is false when the outputs were still changing when Settle ran out.
	Converged bool `json:"converged"`
	// KafkaRead says whether the topic was read back (Kafka figures are empty
	// otherwise).
	KafkaRead bool `json:"kafka_read"`
	Kafka     struct {
		Landed int64 `json:"landed"` // distinct events in the topic (or proven there)
		Copies int64 `json:"copies"` // records of them, retries included
		Lost   int64 `json:"lost"`   // acknowledged, not in the topic
	} `json:"kafka"`
	Notifications struct {
		Stored           int64 `json:"stored"`
		Lost             int64 `json:"lost"`
		Duplicated       int64 `json:"duplicated"`
		Reordered        int64 `json:"reordered"`
		UnackedDelivered int64 `json:"unacked_delivered"` // not acknowledged, landed anyway, notified once
	} `json:"notifications"`
	Analytics struct {
		Counted    int64 `json:"counted"`
		Expected   int64 `json:"expected"`
		Lost       int64 `json:"lost"`
		Duplicated int64 `json:"duplicated"`
	} `json:"analytics"`
	Unavailable   []Period  `json:"unavailable"`
	Problems      []Problem `json:"problems"`
	ProblemsTotal int       `json:"problems_total"`
	Errors        []string  `json:"errors,omitempty"`
}

// OK reports whether the run proved the guarantees: nothing lost, duplicated or
// reordered, and nothing prevented the check.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 && r.Rejected == 0 && len(r.Errors) == 0
}

// Summary writes the human summary.
func (r *Report) Summary(w io.Writer) {
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "%s  scenario %s (run %s)\n", verdict, r.Scenario, r.RunID)
	fmt.Fprintf(w, "  sent      %d attempts for %d events (%d keys x %d), %.0f/s; %d acknowledged, %d rejected, %d given up; sending took %.1fs\n",
		r.Sent, r.Keys*r.EventsPerKey, r.Keys, r.EventsPerKey, r.Rate, r.Acked, r.Rejected, r.GaveUp, r.SendSeconds)
	if r.KafkaRead {
		fmt.Fprintf(w, "  kafka     %d events landed (%d records), %d acknowledged missing\n", r.Kafka.Landed, r.Kafka.Copies, r.Kafka.Lost)
	} else {
		fmt.Fprintf(w, "  kafka     not read (no brokers given): unacknowledged events count as landed when notified\n")
	}
	n := r.Notifications
	fmt.Fprintf(w, "  notified  %d stored, %d missing, %d duplicates, %d out of order, %d unacknowledged events delivered once\n",
		n.Stored, n.Lost, n.Duplicated, n.Reordered, n.UnackedDelivered)
	a := r.Analytics
	fmt.Fprintf(w, "  counted   %d by analytics, %d expected: %d missing, %d extra\n", a.Counted, a.Expected, a.Lost, a.Duplicated)
	conv := "final"
	if !r.Converged {
		conv = "NOT final (settle time ran out)"
	}
	fmt.Fprintf(w, "  outputs   %s after %.1fs\n", conv, r.SettleSeconds)
	if len(r.Unavailable) == 0 {
		fmt.Fprintf(w, "  ingest    available throughout\n")
	} else {
		fmt.Fprintf(w, "  ingest    unavailable %d ms in %d period(s):\n", r.UnavailableMS, len(r.Unavailable))
		for _, p := range r.Unavailable {
			fmt.Fprintf(w, "              at +%.1fs for %d ms, %d refused attempts (%s)\n", float64(p.StartMS)/1000, p.DurationMS, p.Failures, reasons(p.Reasons))
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error     %s\n", e)
	}
	if r.ProblemsTotal > 0 {
		fmt.Fprintf(w, "  problems  %d, the first:\n", r.ProblemsTotal)
		for i, p := range r.Problems {
			if i == 20 {
				break
			}
			seq := "(key)"
			if p.Seq >= 0 {
				seq = fmt.Sprintf("#%d", p.Seq)
			}
			fmt.Fprintf(w, "              %s %s %s: %s\n", p.Kind, p.Key, seq, p.Detail)
		}
	}
}

func reasons(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// Suite is the reports of several scenarios (the JSON report of a suite).
type Suite struct {
	Scenarios []*Report `json:"scenarios"`
	Total     Counts    `json:"total"`
}

// NewSuite sums the reports.
func NewSuite(reports ...*Report) *Suite {
	s := &Suite{Scenarios: reports}
	for _, r := range reports {
		s.Total.Add(r.Counts)
	}
	return s
}

// Lines writes one line per scenario, then the totals line (scenario=total).
func (s *Suite) Lines(w io.Writer) {
	for _, r := range s.Scenarios {
		fmt.Fprintln(w, r.Counts.Line(r.Scenario))
	}
	fmt.Fprintln(w, s.Total.Line("total"))
}

// WriteJSON writes the suite as indented JSON to path.
func (s *Suite) WriteJSON(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
