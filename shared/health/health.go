// Package health watches a function's connections (Kafka, Redis) in the background,
// exports their state as 0/1 gauges with reconnect counters, and answers the
// readiness and liveness questions.
package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one dependency to watch.
type Check struct {
	Name       string
	Probe      func(ctx context.Context) error
	Up         prometheus.Gauge   // set to 1/0 after each probe; may be nil
	Reconnects prometheus.Counter // counted when the dependency comes back; may be nil
}

// Watcher probes its checks every interval and remembers the outcome.
type Watcher struct {
	checks   []Check
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	up   map[string]bool
	seen map[string]bool
	beat time.Time
}

// NewWatcher returns a watcher; call Run to start probing.
func NewWatcher(log *slog.Logger, interval time.Duration, checks ...Check) *Watcher {
	return &Watcher{checks: checks, interval: interval, log: log, up: map[string]bool{}, seen: map[string]bool{}}
}

// Run probes once at once, then every interval, until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.ProbeNow(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// ProbeNow probes every check once.
func (w *Watcher) ProbeNow(ctx context.Context) {
	for _, c := range w.checks {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := c.Probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.record(c, err)
	}
	w.mu.Lock()
	w.beat = time.Now()
	w.mu.Unlock()
}

func (w *Watcher) record(c Check, err error) {
	up := err == nil
	w.mu.Lock()
	was, seen := w.up[c.Name], w.seen[c.Name]
	w.up[c.Name], w.seen[c.Name] = up, true
	w.mu.Unlock()
	if c.Up != nil {
		if up {
			c.Up.Set(1)
		} else {
			c.Up.Set(0)
		}
	}
	switch {
	case up && seen && !was:
		if c.Reconnects != nil {
			c.Reconnects.Inc()
		}
		w.log.Info("connection restored", "dependency", c.Name)
	case !up && (was || !seen):
		w.log.Warn("connection lost", "dependency", c.Name, "err", err)
	}
}

// Up reports whether every check passed its last probe.
func (w *Watcher) Up() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.checks {
		if !w.up[c.Name] {
			return false
		}
	}
	return true
}

// Alive reports whether the probe loop has run within three intervals: a wedged
// process stops probing.
func (w *Watcher) Alive() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.beat.IsZero() || time.Since(w.beat) < 3*w.interval+5*time.Second
}
