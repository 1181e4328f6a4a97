package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func signalNotify(ch chan<- os.Signal) { signal.Notify(ch, os.Interrupt, syscall.SIGTERM) }

// report collects the suite's figures and prints them as plain text (pasted into
// BENCHMARKS.md as it is).
type report struct {
	header []string
	pairs  []string
	limits []string
	notes  []string
	mem    []string
	footer []string
	failed int
}

func newReport() *report { return &report{} }

func (r *report) machine(s *suite) {
	cores, mem := machineInfo()
	r.header = append(r.header,
		fmt.Sprintf("date:        %s", time.Now().UTC().Format(time.RFC3339)),
		fmt.Sprintf("machine:     %d cores, %.1f GiB memory, %s/%s, %s", cores, mem, runtime.GOOS, runtime.GOARCH, runtime.Version()),
		fmt.Sprintf("load avg:    %s at the start (1, 5, 15 min)", loadAvg()),
		fmt.Sprintf("infra:       Kafka %s single node at %s, Redis at %s (test/infra)", envOr("KAFKA_VERSION", "4.4.0"), s.brokers, s.redis),
		fmt.Sprintf("load runs:   %s each, first %s left out; events of 1 KiB data", s.o.dur, s.o.warmup),
	)
}

func (r *report) machineEnd() {
	r.footer = append(r.footer, fmt.Sprintf("load avg:    %s at the end", loadAvg()))
}

// pair records tide's figure against an anchor's; target > 0 is the ratio to reach.
func (r *report) pair(name string, tide, anchor, target float64) {
	ratio := 0.0
	if anchor > 0 {
		ratio = tide / anchor
	}
	verdict := ""
	if target > 0 {
		verdict = fmt.Sprintf("target >= %.1fx: %s", target, passFail(ratio >= target))
		if ratio < target {
			r.failed++
		}
	}
	r.pairs = append(r.pairs, fmt.Sprintf("%-74s %9.0f vs %9.0f  ratio %5.2fx  %s", name, tide, anchor, ratio, verdict))
}

// limit records a figure that must stay at or below max.
func (r *report) limit(name string, v, limit float64, unit string) {
	ok := v <= limit
	if !ok {
		r.failed++
	}
	r.limits = append(r.limits, fmt.Sprintf("%-74s %9.1f %-3s (target <= %.0f %s): %s", name, v, unit, limit, unit, passFail(ok)))
}

func (r *report) note(line string) { r.notes = append(r.notes, line) }

func (r *report) memory(ps []*proc) {
	for _, p := range ps {
		if hwm := p.memKB("VmHWM"); hwm > 0 {
			r.mem = append(r.mem, fmt.Sprintf("%-18s peak RSS (VmHWM) %6.1f MiB", p.name, float64(hwm)/1024))
		}
	}
}

func passFail(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

func (r *report) print(w io.Writer) {
	fmt.Fprintln(w, "\n================ tide benchmark ================")
	for _, sec := range []struct {
		title string
		lines []string
	}{
		{"", r.header},
		{"pairs (tide vs anchor, same run, same broker)", r.pairs},
		{"limits", r.limits},
		{"peak memory of each process", r.mem},
		{"details", r.notes},
		{"", r.footer},
	} {
		if len(sec.lines) == 0 {
			continue
		}
		if sec.title != "" {
			fmt.Fprintf(w, "\n%s\n%s\n", sec.title, strings.Repeat("-", len(sec.title)))
		}
		for _, l := range sec.lines {
			fmt.Fprintln(w, l)
		}
	}
	fmt.Fprintf(w, "\ntargets not met: %d\n", r.failed)
}

func (r *report) write(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r.print(f)
	return f.Close()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
