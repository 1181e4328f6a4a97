package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fallback modes: what the Limiter does while Redis does not answer.
const (
	// FallbackLocal decides with a per-replica GCRA: each replica allows
	// Rate/Replicas events per second (and the full Burst), so the replicas together
	// stay near the shared limit.
	FallbackLocal = "local"
	// FallbackOpen accepts every request (availability over protection).
	FallbackOpen = "open"
	// FallbackClosed refuses every request with ErrUnavailable (protection over
	// availability).
	FallbackClosed = "closed"
)

// ErrUnavailable is returned by Allow when Redis does not answer and the fallback is
// FallbackClosed: the request is neither allowed nor refused for its rate, and the
// caller answers 503.
var ErrUnavailable = errors.New("ratelimit: Redis unreachable and the fallback is closed")

// Limit is a GCRA limit: Rate events per second on average, Burst events at once.
type Limit struct {
	Rate  int
	Burst int
}

func (l Limit) String() string { return fmt.Sprintf("%d/s burst %d", l.Rate, l.Burst) }

// Window is how many seconds an emptied bucket takes to refill (Burst/Rate, rounded
// up, at least 1): the "w" of RateLimit-Policy, over which Burst events are allowed.
func (l Limit) Window() int {
	if l.Rate <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(float64(l.Burst)/float64(l.Rate))))
}

// emission is the time one event "costs": 1/Rate seconds.
func (l Limit) emission(n int) time.Duration {
	return time.Duration(float64(n) * float64(time.Second) / float64(l.Rate))
}

// Cost is N events charged to the budget of Key.
type Cost struct {
	Key string
	N   int
}

// Decision is the Limiter's answer for one request.
type Decision struct {
	// Allowed: every cost of the request fits; the events were charged.
	Allowed bool
	// Key is the key that refused the request, or when allowed the key with the
	// least budget left.
	Key string
	// Limit is Key's limit.
	Limit Limit
	// Remaining is how many more events Key could send right now.
	Remaining int
	// RetryAfter, when refused, is how long until the same request would fit.
	RetryAfter time.Duration
	// ResetAfter is how long until Key's full burst is available again.
	ResetAfter time.Duration
	// TooLarge: the request costs more than Key's burst, so no wait makes it fit;
	// nothing was charged.
	TooLarge bool
	// N, when TooLarge, is what the request costs Key.
	N int
	// Fallback is the fallback mode that decided ("" when Redis did).
	Fallback string
}

// Options configure a Limiter.
type Options struct {
	// Default is every key's limit unless Overrides names the key.
	Default Limit
	// Overrides are per-key limits.
	Overrides map[string]Limit
	// Prefix is prepended to every key stored in Redis (redis_rate adds "rate:"
	// in front of it).
	Prefix string
	// Fallback is FallbackLocal (default), FallbackOpen or FallbackClosed.
	Fallback string
	// Replicas is how many replicas share the limit; the local fallback gives each
	// one Rate/Replicas. Default 1.
	Replicas int
	// Timeout bounds one Redis decision (default 250 ms): a request never waits
	// longer than this for the limiter.
	Timeout time.Duration
	// Retry is how long the fallback decides after Redis failed before one request
	// tries Redis again (default 1 s).
	Retry time.Duration
	// LocalMaxKeys bounds the keys the local limiter remembers (default 100000).
	LocalMaxKeys int
	// Log receives one line when the fallback takes over and one when Redis is back.
	Log *slog.Logger
	// FallbackActive, when set, is 1 while the fallback decides, else 0.
	FallbackActive prometheus.Gauge
	// FallbackEvents, when set, counts the events the fallback decided, by mode.
	FallbackEvents *prometheus.CounterVec
}

// Limiter decides whether a request's events fit their keys' budgets. It is safe for
// concurrent use.
type Limiter struct {
	opts  Options
	redis store // nil: no Redis, the local limiter decides alone
	local *localStore

	mu       sync.Mutex
	degraded bool
	retryAt  time.Time
	probing  bool
}

// store keeps the GCRA state of keys.
type store interface {
	allow(ctx context.Context, key string, lim Limit, n int) (Decision, error)
	refund(ctx context.Context, key string, lim Limit, n int) error
}

// New returns a Limiter that keeps its state in rdb, or in this process only when
// rdb is nil (a single replica, or tests).
func New(rdb Client, opts Options) *Limiter {
	if opts.Fallback == "" {
		opts.Fallback = FallbackLocal
	}
	if opts.Replicas < 1 {
		opts.Replicas = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 250 * time.Millisecond
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	l := &Limiter{opts: opts, local: newLocalStore(opts.LocalMaxKeys, time.Now)}
	if rdb != nil {
		l.redis = newRedisStore(rdb, opts.Prefix)
	}
	if opts.FallbackActive != nil {
		opts.FallbackActive.Set(0)
	}
	return l
}

// LimitFor is key's limit: its override, else the default.
func (l *Limiter) LimitFor(key string) Limit {
	if lim, ok := l.opts.Overrides[key]; ok {
		return lim
	}
	return l.opts.Default
}

// Allow charges every cost to its key, all or nothing: when one key refuses, what
// was charged to the others is given back. It returns ErrUnavailable only with
// FallbackClosed while Redis does not answer, and ctx's error when ctx ends.
func (l *Limiter) Allow(ctx context.Context, costs []Cost) (Decision, error) {
	costs = merge(costs)
	if len(costs) == 0 {
		return Decision{Allowed: true, Limit: l.opts.Default, Remaining: l.opts.Default.Burst}, nil
	}
	for _, c := range costs {
		if lim := l.LimitFor(c.Key); c.N > lim.Burst {
			return Decision{Key: c.Key, Limit: lim, TooLarge: true, N: c.N}, nil
		}
	}
	st, fallback, probe := l.choose()
	var total int
	for _, c := range costs {
		total += c.N
	}
	if st != nil && fallback == "" {
		d, err := l.charge(ctx, st, costs)
		if probe {
			l.endProbe()
		}
		if err == nil {
			l.markUp()
			return d, nil
		}
		if ctx.Err() != nil {
			return Decision{}, fmt.Errorf("rate limit: %w", ctx.Err())
		}
		l.markDown(err)
		fallback = l.opts.Fallback
	}
	if l.opts.FallbackEvents != nil {
		l.opts.FallbackEvents.WithLabelValues(fallback).Add(float64(total))
	}
	switch fallback {
	case FallbackOpen:
		lim := l.LimitFor(costs[0].Key)
		return Decision{Allowed: true, Key: costs[0].Key, Limit: lim, Remaining: lim.Burst, Fallback: fallback}, nil
	case FallbackClosed:
		return Decision{Key: costs[0].Key, Limit: l.LimitFor(costs[0].Key), RetryAfter: l.opts.Retry, Fallback: fallback}, ErrUnavailable
	}
	d, err := l.charge(ctx, l.local, l.shares(costs))
	d.Fallback = FallbackLocal
	return d, err
}

// shares marks costs for the local limiter, whose limits are each replica's share.
func (l *Limiter) shares(costs []Cost) []Cost {
	out := make([]Cost, len(costs))
	for i, c := range costs {
		out[i] = Cost{Key: localKey(c.Key), N: c.N}
	}
	return out
}

// localKey tags a key charged to the local fallback, so limitFor gives its share.
func localKey(k string) string { return "\x00local\x00" + k }

func (l *Limiter) limitFor(key string) Limit {
	if k, ok := cutLocal(key); ok {
		lim := l.LimitFor(k)
		// The burst is not divided: a request the shared limiter accepts must stay
		// possible during an outage; the average rate is what the share bounds.
		lim.Rate = max(1, int(math.Ceil(float64(lim.Rate)/float64(l.opts.Replicas))))
		return lim
	}
	return l.LimitFor(key)
}

func cutLocal(key string) (string, bool) {
	const p = "\x00local\x00"
	if len(key) >= len(p) && key[:len(p)] == p {
		return key[len(p):], true
	}
	return key, false
}

// charge applies costs in order; on the first refusal it refunds the ones already
// charged. A store error is returned as is (after best-effort refunds).
func (l *Limiter) charge(ctx context.Context, st store, costs []Cost) (Decision, error) {
	var best Decision
	for i, c := range costs {
		lim := l.limitFor(c.Key)
		d, err := l.allowOne(ctx, st, c.Key, lim, c.N)
		if err != nil || !d.Allowed {
			for _, done := range costs[:i] {
				_ = l.refundOne(ctx, st, done.Key, l.limitFor(done.Key), done.N)
			}
			return d, err
		}
		if i == 0 || d.Remaining < best.Remaining {
			best = d
		}
	}
	return best, nil
}

func (l *Limiter) allowOne(ctx context.Context, st store, key string, lim Limit, n int) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	d, err := st.allow(ctx, key, lim, n)
	if k, ok := cutLocal(key); ok {
		key = k
	}
	d.Key, d.Limit = key, lim
	if err == nil && !d.Allowed && d.RetryAfter <= 0 {
		d.RetryAfter = time.Millisecond // refused means "not now": never "retry at once"
	}
	return d, err
}

func (l *Limiter) refundOne(ctx context.Context, st store, key string, lim Limit, n int) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	return st.refund(ctx, key, lim, n)
}

// choose returns the store to ask: Redis (fallback ""), or the fallback mode while
// Redis is considered down. After Retry, exactly one request probes Redis again.
func (l *Limiter) choose() (st store, fallback string, probe bool) {
	if l.redis == nil {
		return l.local, "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.degraded {
		return l.redis, "", false
	}
	if !l.probing && !time.Now().Before(l.retryAt) {
		l.probing = true
		return l.redis, "", true
	}
	return nil, l.opts.Fallback, false
}

func (l *Limiter) endProbe() {
	l.mu.Lock()
	l.probing = false
	l.mu.Unlock()
}

func (l *Limiter) markDown(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retryAt = time.Now().Add(l.opts.Retry)
	if l.degraded {
		return
	}
	l.degraded = true
	if l.opts.FallbackActive != nil {
		l.opts.FallbackActive.Set(1)
	}
	l.opts.Log.Warn("rate limiter: Redis does not answer; the fallback decides until it does",
		"fallback", l.opts.Fallback, "replicas", l.opts.Replicas, "retry_every", l.opts.Retry, "err", err)
}

func (l *Limiter) markUp() {
	if l.redis == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.degraded {
		return
	}
	l.degraded = false
	if l.opts.FallbackActive != nil {
		l.opts.FallbackActive.Set(0)
	}
	l.opts.Log.Info("rate limiter: Redis answers again; limits are shared by all replicas again")
}

// Degraded reports whether the fallback decides now (Redis did not answer lately).
func (l *Limiter) Degraded() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.degraded
}

// merge sums the costs of each key and orders them by key, so every request charges
// keys in the same order.
func merge(costs []Cost) []Cost {
	if len(costs) <= 1 {
		return costs
	}
	sum := make(map[string]int, len(costs))
	for _, c := range costs {
		sum[c.Key] += c.N
	}
	out := make([]Cost, 0, len(sum))
	for k, n := range sum {
		if n > 0 {
			out = append(out, Cost{Key: k, N: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
