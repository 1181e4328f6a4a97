// Package gctune sets the Go garbage collector of a process whose memory tide bounds
// itself (ingest: PRODUCER_MAX_BUFFERED_BYTES and the request limits).
//
// Go's default GOGC=100 collects each time the heap doubles. Under batched load that
// was 12–35 % of ingest's CPU (BENCHMARKS.md); GOGC=400 cut ingest's CPU per event by
// about a quarter, but alone it lets the heap grow to five times the live data, which
// broke the memory bound while Kafka stalls (210 MiB). A soft memory limit
// (runtime/debug.SetMemoryLimit) puts that bound back: the collector runs rarely while
// the heap is small and as often as needed near the limit. This is the pairing the Go
// GC guide recommends (https://go.dev/doc/gc-guide#Memory_limit); the operator's own
// GOGC or GOMEMLIMIT always wins.
package gctune

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Settings are what Apply asks for.
type Settings struct {
	// GCPercent is the GOGC to use; <= 0 leaves the collector alone.
	GCPercent int
	// Limit is the soft memory limit in bytes when the container sets none;
	// with a container limit, 90 % of it is used instead.
	Limit int64
}

// cgroupFiles are where cgroup v2 and v1 publish the container's memory limit.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Applied is what Apply set, for its log line and tests.
type Applied struct {
	GCPercent int    // 0 when left alone
	Limit     int64  // 0 when left alone
	Source    string // where the limit came from
}

// Apply sets GOGC and the soft memory limit unless the environment sets them, and
// logs what it did. It is for process entry points only: the settings are global.
func Apply(log *slog.Logger, s Settings) Applied {
	a := decide(s, os.Getenv, containerLimit(cgroupFiles))
	if a.GCPercent > 0 {
		debug.SetGCPercent(a.GCPercent)
	}
	if a.Limit > 0 {
		debug.SetMemoryLimit(a.Limit)
	}
	if a.GCPercent > 0 || a.Limit > 0 {
		log.Info("garbage collector tuned", "gogc", a.GCPercent, "memory_limit_bytes", a.Limit, "limit_from", a.Source)
	}
	return a
}

// decide is Apply without side effects.
func decide(s Settings, getenv func(string) string, container int64) Applied {
	if s.GCPercent <= 0 {
		return Applied{}
	}
	var a Applied
	if getenv("GOGC") == "" {
		a.GCPercent = s.GCPercent
	}
	if getenv("GOMEMLIMIT") == "" {
		switch {
		case container > 0:
			a.Limit, a.Source = container/10*9, "container"
		case s.Limit > 0:
			a.Limit, a.Source = s.Limit, "setting"
		}
	}
	if a.GCPercent > 0 && a.Limit == 0 && getenv("GOMEMLIMIT") == "" {
		// A raised GOGC without a limit lets the heap grow fivefold: keep Go's default.
		a.GCPercent = 0
	}
	return a
}

// containerLimit is the first real memory limit among files, or 0. cgroup v2 writes
// "max" and v1 a number near 2^63 when there is none.
func containerLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 {
			continue
		}
		return v
	}
	return 0
}
