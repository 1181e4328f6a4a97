// Package fault lets a test make a tide process die at a chosen point of its work,
// so recovery can be proved at exactly the moments that matter (for example after the
// Redis write of a batch and before its Kafka commit).
//
// The hooks are off unless the environment variable TIDE_FAULT names them when the
// process starts:
//
//	TIDE_FAULT=POINT:N[,POINT:N...]
//
// makes the process SIGKILL itself the Nth time it reaches POINT. SIGKILL, not
// exit: no deferred function, no shutdown hook, no buffered write runs, as when a
// node dies or the kernel's OOM killer strikes. With TIDE_FAULT unset, Point costs
// one load of a package-level bool.
package fault

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env is the variable that arms the hooks.
const Env = "TIDE_FAULT"

// The points tide's code reaches. Each sits between two writes whose order matters
// for recovery.
const (
	// ConsumerAfterHandle: a record or batch was handled (its effects are in
	// Redis) and its offset is not yet marked.
	ConsumerAfterHandle = "consumer-after-handle"
	// ConsumerBeforeCommit: offsets are marked and about to be committed to Kafka.
	ConsumerBeforeCommit = "consumer-before-commit"
	// NotificationAfterPut: a notification was stored in Redis, its record is not
	// yet marked.
	NotificationAfterPut = "notification-after-put"
	// AnalyticsAfterApply: a batch's aggregates and offset were written to Redis,
	// the batch is not yet marked or committed in Kafka.
	AnalyticsAfterApply = "analytics-after-apply"
)

var (
	armed  bool                     // read without a lock: written once, in init
	points map[string]*atomic.Int64 // hits left before the kill, per point
	kill   = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
)

func init() {
	spec := os.Getenv(Env)
	if spec == "" {
		return
	}
	p, err := Parse(spec)
	if err != nil {
		// A test that asked for a fault and silently got none would prove nothing.
		fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
		os.Exit(2)
	}
	arm(p)
}

func arm(p map[string]int64) {
	points = make(map[string]*atomic.Int64, len(p))
	for name, n := range p {
		c := new(atomic.Int64)
		c.Store(n)
		points[name] = c
	}
	armed = len(points) > 0
}

// Parse reads a TIDE_FAULT value: comma-separated POINT:N pairs, N >= 1.
func Parse(spec string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, ":")
		n, err := strconv.ParseInt(count, 10, 64)
		if !ok || name == "" || err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want POINT:N with N >= 1", part)
		}
		out[name] = n
	}
	return out, nil
}

// Point is a place where the process may be told to die. It returns at once
// unless TIDE_FAULT armed name; then the Nth call kills the process.
func Point(name string) {
	if !armed {
		return
	}
	hit(name)
}

func hit(name string) {
	c, ok := points[name]
	if !ok || c.Add(-1) != 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "fault: %s reached; SIGKILL\n", name)
	kill()
}
