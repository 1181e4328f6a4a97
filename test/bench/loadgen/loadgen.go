// Package loadgen drives load at tide (or anything that takes CloudEvents, or at a
// Kafka publisher directly) and measures acknowledged throughput and latency.
//
// Two modes:
//   - closed loop: Concurrency workers each send, wait for the answer, send again.
//     It finds the most a target sustains at that concurrency; its latency is from
//     the real send time.
//   - open loop: requests are due at a fixed rate whatever the answers do, and each
//     latency runs from the request's intended send time, not from when a worker got
//     round to it. A stalled target therefore shows as the long latencies its users
//     would see, instead of as fewer samples (coordinated omission).
//
// Every run is bounded: it stops at Duration or after Count events, whichever comes
// first, and the package only ever targets loopback addresses.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target sends one request carrying events [first, first+n). It returns nil only
// when all n were acknowledged; status names the outcome for the report ("202",
// "503", "timeout", ...). at is the intended send time (also the events' time).
type Target interface {
	Send(ctx context.Context, first int64, n int, at time.Time) (status string, err error)
}

// Mode is how requests are paced.
type Mode string

// The two pacing modes.
const (
	Closed Mode = "closed" // fixed concurrency, as fast as answers come
	Open   Mode = "open"   // fixed rate, latency from the intended send time
)

// Config bounds and paces a run.
type Config struct {
	Mode Mode
	// Rate is events per second in open mode (requests per second = Rate/Batch).
	Rate float64
	// Concurrency is the number of workers: in closed mode the requests in flight, in
	// open mode the most in flight before requests start queueing (still measured
	// from their intended times).
	Concurrency int
	Batch       int           // events per request (default 1)
	Duration    time.Duration // stop sending after this long (default 10 s)
	// Count stops the run after this many events (0: no count bound); when it is not
	// a multiple of Batch the last request carries the rest.
	Count int64
	// Warmup is left out of the figures: requests due in the first Warmup are sent
	// but not measured (connections, metadata, JIT of the broker). When no request
	// was due after it (Count reached within the warm-up), nothing is left out and
	// the Result says so (WarmupIncluded), rather than reporting an empty run.
	Warmup   time.Duration
	Progress io.Writer // a one-line progress report every second; nil: none
}

func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = Closed
	}
	c.Batch = max(c.Batch, 1)
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	switch c.Mode {
	case Closed:
		c.Concurrency = max(c.Concurrency, 1)
	case Open:
		if c.Rate <= 0 {
			return c, errors.New("open mode needs a rate > 0")
		}
		if c.Concurrency <= 0 {
			c.Concurrency = 512
		}
	default:
		return c, fmt.Errorf("mode %q: want closed or open", c.Mode)
	}
	if c.Warmup >= c.Duration {
		return c, fmt.Errorf("warm-up %s must be shorter than the duration %s", c.Warmup, c.Duration)
	}
	return c, nil
}

// Result is what a run measured (warm-up excluded, unless WarmupIncluded).
type Result struct {
	Mode        Mode    `json:"mode"`
	Concurrency int     `json:"concurrency"`
	Batch       int     `json:"batch"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	// Requests and Events sent in the measured window, and how many events were
	// acknowledged.
	Requests int64 `json:"requests"`
	Events   int64 `json:"events"`
	Acked    int64 `json:"acked"`
	// AckedTotal counts the warm-up's acknowledged events too.
	AckedTotal int64 `json:"acked_total"`
	// MeasuredFrom is when the warm-up ended: requests due before it are not in the
	// figures. It is the start of the run when WarmupIncluded.
	MeasuredFrom time.Time `json:"measured_from"`
	// Warmup is the warm-up the run was configured with.
	Warmup time.Duration `json:"warmup_ns"`
	// WarmupIncluded says the run ended within its warm-up (no request was due after
	// it), so the figures are of the whole run, warm-up included.
	WarmupIncluded bool `json:"warmup_included,omitempty"`
	// Elapsed is the measured window: from the end of the warm-up (the start of the
	// run when WarmupIncluded) to the last answer.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Throughput is acknowledged events per second over Elapsed.
	Throughput float64 `json:"throughput"`
	// Latency is per request: from the intended send time (open) or the send
	// (closed) to the answer, acknowledged requests only.
	Latency  Summary          `json:"latency"`
	Statuses map[string]int64 `json:"statuses"` // requests per outcome
	// FirstError is one error message, to say why requests failed.
	FirstError string `json:"first_error,omitempty"`
}

// String is the human summary.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s concurrency=%d batch=%d", r.Mode, r.Concurrency, r.Batch)
	if r.Mode == Open {
		fmt.Fprintf(&b, " rate=%.0f/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "\nacked %d of %d events (%d requests) in %s: %.0f events/s\n", r.Acked, r.Events, r.Requests, r.Elapsed.Round(time.Millisecond), r.Throughput)
	if r.WarmupIncluded {
		fmt.Fprintf(&b, "warm-up not left out: the run ended within its %s warm-up, so these figures include it (to leave it out, lower -warmup or send more events)\n", r.Warmup)
	} else if r.Warmup > 0 && r.AckedTotal > r.Acked {
		fmt.Fprintf(&b, "left out: the first %s (warm-up; %d events acked in it)\n", r.Warmup, r.AckedTotal-r.Acked)
	}
	l := r.Latency
	fmt.Fprintf(&b, "latency per request: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)\n",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean), l.Count)
	keys := make([]string, 0, len(r.Statuses))
	for k := range r.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("outcomes:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, r.Statuses[k])
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "\nfirst error: %s", r.FirstError)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Run sends load at t as cfg says and returns what it measured. It stops at
// cfg.Duration, after cfg.Count events, or when ctx ends, and waits for the requests
// in flight (the target's own timeouts bound that).
func Run(ctx context.Context, cfg Config, t Target) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := &run{cfg: cfg, target: t}
	for _, w := range []*window{&r.warmup, &r.measured} {
		w.hist, w.statuses = NewHistogram(), map[string]int64{}
	}
	r.start = time.Now()
	r.measureFrom = r.start.Add(cfg.Warmup)
	r.deadline = r.start.Add(cfg.Duration)
	if cfg.Mode == Open {
		r.interval = time.Duration(float64(time.Second) * float64(cfg.Batch) / cfg.Rate)
	}
	stopProgress := r.progress()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() { defer wg.Done(); r.worker(ctx) }()
	}
	wg.Wait()
	stopProgress()

	// A run that ended within its warm-up measured nothing: rather than report an
	// empty run for events that were sent and acknowledged, report all of it.
	w, from := &r.measured, r.measureFrom
	includeWarmup := w.requests.Load() == 0 && r.warmup.requests.Load() > 0
	if includeWarmup {
		w, from = &r.warmup, r.start
	}
	res := Result{
		Mode: cfg.Mode, Concurrency: cfg.Concurrency, Batch: cfg.Batch,
		Requests: w.requests.Load(), Events: w.events.Load(), Acked: w.acked.Load(),
		AckedTotal: r.allAcked.Load(), MeasuredFrom: from,
		Warmup: cfg.Warmup, WarmupIncluded: includeWarmup,
		Latency: w.hist.Summary(), Statuses: w.statuses, FirstError: w.firstErr,
	}
	if cfg.Mode == Open {
		res.TargetRate = cfg.Rate
	}
	if last := time.Unix(0, w.lastAnswer.Load()); last.After(from) {
		res.Elapsed = last.Sub(from)
		res.Throughput = float64(res.Acked) / res.Elapsed.Seconds()
	}
	return res, nil
}

// window counts the requests due in one part of a run: the warm-up or the
// measured rest.
type window struct {
	requests   atomic.Int64
	events     atomic.Int64
	acked      atomic.Int64
	lastAnswer atomic.Int64 // unix nanos
	hist       *Histogram

	mu       sync.Mutex
	statuses map[string]int64
	firstErr string
}

type run struct {
	cfg         Config
	target      Target
	start       time.Time
	measureFrom time.Time
	deadline    time.Time
	interval    time.Duration // open mode: between two requests' intended times

	next     atomic.Int64 // next request index
	allAcked atomic.Int64 // including the warm-up, for the progress line

	warmup, measured window // requests due before and after measureFrom
}

// claim takes the next request: its first event, its number of events and its
// intended send time, or false when the run is over.
func (r *run) claim() (first int64, n int, at time.Time, ok bool) {
	i := r.next.Add(1) - 1
	first, n = i*int64(r.cfg.Batch), r.cfg.Batch
	if r.cfg.Count > 0 {
		if first >= r.cfg.Count {
			return 0, 0, time.Time{}, false
		}
		n = int(min(int64(n), r.cfg.Count-first))
	}
	if r.cfg.Mode == Open {
		at = r.start.Add(time.Duration(i) * r.interval)
	} else {
		at = time.Now()
	}
	if !at.Before(r.deadline) {
		return 0, 0, time.Time{}, false
	}
	return first, n, at, true
}

func (r *run) worker(ctx context.Context) {
	for ctx.Err() == nil {
		first, n, at, ok := r.claim()
		if !ok {
			return
		}
		if wait := time.Until(at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		if r.cfg.Mode == Closed {
			at = time.Now()
		}
		status, err := r.target.Send(ctx, first, n, at)
		done := time.Now()
		r.record(at, done, n, status, err)
	}
}

func (r *run) record(at, done time.Time, events int, status string, err error) {
	n := int64(events)
	if err == nil {
		r.allAcked.Add(n)
	}
	w := &r.measured
	if at.Before(r.measureFrom) {
		w = &r.warmup
	}
	for {
		last := w.lastAnswer.Load()
		if done.UnixNano() <= last || w.lastAnswer.CompareAndSwap(last, done.UnixNano()) {
			break
		}
	}
	w.requests.Add(1)
	w.events.Add(n)
	if err == nil {
		w.acked.Add(n)
		w.hist.Record(done.Sub(at))
	}
	if status == "" {
		status = "error"
	}
	w.mu.Lock()
	w.statuses[status]++
	if err != nil && w.firstErr == "" {
		w.firstErr = err.Error()
	}
	w.mu.Unlock()
}

// progress redraws one status line every second until the returned func is called.
func (r *run) progress() func() {
	w := r.cfg.Progress
	if w == nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev int64
		for {
			select {
			case <-t.C:
				acked := r.allAcked.Load()
				fails := r.warmup.failures() + r.measured.failures()
				fmt.Fprintf(w, "\r%5.1fs  acked %9d events  %8d/s now  failed requests %d   ",
					time.Since(r.start).Seconds(), acked, acked-prev, fails)
				prev = acked
			case <-stop:
				fmt.Fprintln(w)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// failures is the number of requests not acknowledged so far.
func (w *window) failures() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for k, v := range w.statuses {
		if k != "ok" && !strings.HasPrefix(k, "2") {
			n += v
		}
	}
	return n
}
