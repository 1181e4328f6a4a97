package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Client is what the Limiter needs of a Redis client; *redis.Client and
// *redis.ClusterClient have it.
type Client interface {
	redis.Scripter
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// redisStore keeps the GCRA state in Redis through redis_rate, so every replica
// charges the same budget, on Redis's clock.
type redisStore struct {
	rdb    Client
	lim    *redis_rate.Limiter
	prefix string
}

func newRedisStore(rdb Client, prefix string) *redisStore {
	return &redisStore{rdb: rdb, lim: redis_rate.NewLimiter(rdb), prefix: prefix}
}

func (s *redisStore) allow(ctx context.Context, key string, lim Limit, n int) (Decision, error) {
	res, err := s.lim.AllowN(ctx, s.prefix+key, redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: time.Second}, n)
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit %s in Redis: %w", key, err)
	}
	d := Decision{Allowed: res.Allowed >= n, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

// refundScript gives back n events' worth of time (ARGV[1], seconds) to a key
// redis_rate charged: its theoretical arrival time moves back, never before now.
// redis_rate has no refund, and charging a negative cost through it would leave the
// key untouched when the refund empties it.
var refundScript = redis.NewScript(`
redis.replicate_commands()
local tat = redis.call("GET", KEYS[1])
if not tat then
  return 0
end
local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)
local new_tat = tonumber(tat) - tonumber(ARGV[1])
if new_tat <= now then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], new_tat, "EX", math.ceil(new_tat - now))
end
return 1
`)

// redisRatePrefix is the prefix redis_rate puts before every key.
const redisRatePrefix = "rate:"

func (s *redisStore) refund(ctx context.Context, key string, lim Limit, n int) error {
	secs := strconv.FormatFloat(float64(n)/float64(lim.Rate), 'f', -1, 64)
	if err := refundScript.Run(ctx, s.rdb, []string{redisRatePrefix + s.prefix + key}, secs).Err(); err != nil {
		return fmt.Errorf("rate limit refund %s in Redis: %w", key, err)
	}
	return nil
}

// localStore is the same GCRA in this process's memory: the fallback while Redis
// does not answer, and the whole limiter when there is no Redis.
type localStore struct {
	mu      sync.Mutex
	tat     map[string]time.Time // theoretical arrival time per key
	maxKeys int
	now     func() time.Time
}

func newLocalStore(maxKeys int, now func() time.Time) *localStore {
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return &localStore{tat: map[string]time.Time{}, maxKeys: maxKeys, now: now}
}

func (s *localStore) allow(_ context.Context, key string, lim Limit, n int) (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	tat, ok := s.tat[key]
	if !ok || tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(lim.emission(n))
	allowAt := newTAT.Add(-lim.emission(lim.Burst))
	if now.Before(allowAt) {
		return Decision{RetryAfter: allowAt.Sub(now), ResetAfter: tat.Sub(now)}, nil
	}
	if !ok && len(s.tat) >= s.maxKeys {
		s.sweep(now)
	}
	s.tat[key] = newTAT
	remaining := int(float64(now.Sub(allowAt)) / float64(lim.emission(1)))
	return Decision{Allowed: true, Remaining: remaining, ResetAfter: newTAT.Sub(now)}, nil
}

func (s *localStore) refund(_ context.Context, key string, lim Limit, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok {
		return nil
	}
	if tat = tat.Add(-lim.emission(n)); !tat.After(s.now()) {
		delete(s.tat, key)
	} else {
		s.tat[key] = tat
	}
	return nil
}

// sweep forgets keys whose bucket is full again (the same as never seen) and, when
// every key is still busy, half of them: memory stays bounded whatever the number
// of clients, at the price of forgiving some of them.
func (s *localStore) sweep(now time.Time) {
	for k, t := range s.tat {
		if !t.After(now) {
			delete(s.tat, k)
		}
	}
	for k := range s.tat {
		if len(s.tat) < s.maxKeys/2 {
			break
		}
		delete(s.tat, k)
	}
}
