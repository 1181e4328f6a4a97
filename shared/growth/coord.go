package growth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"function/shared/config"
)

// Phases of the coordination state.
const (
	// PhaseHold: publishers must hold until the deadline.
	PhaseHold = "hold"
	// PhaseRelease: publishers refresh to at least State.Partitions and release.
	PhaseRelease = "release"
)

// Coordination is the configuration ingest and the manager share. The zero value
// (a Config built in code) means off, with the defaults below.
type Coordination struct {
	// Enabled makes ingest join the protocol when it has a Redis (REDIS_ADDR).
	Enabled bool `envconfig:"PARTITION_COORDINATION" default:"true" desc:"with REDIS_ADDR: ingest registers with the partition manager and holds its publishers when told, so partitions can grow without reordering keys"`
	// KeyPrefix starts every Redis key and channel of the protocol.
	KeyPrefix string `envconfig:"PARTITION_KEY_PREFIX" default:"tide:partitions:" desc:"prefix of the Redis keys and channel the partition manager and ingest coordinate through"`
	// HeartbeatMS is how often a replica renews its lease; the lease lasts five.
	HeartbeatMS int `envconfig:"PARTITION_HEARTBEAT_MS" default:"1000" desc:"how often an ingest replica renews its lease with the partition manager (the lease lasts 5 heartbeats)"`
}

// Heartbeat is HeartbeatMS as a duration (1 s when unset).
func (c Coordination) Heartbeat() time.Duration {
	if c.HeartbeatMS <= 0 {
		return time.Second
	}
	return time.Duration(c.HeartbeatMS) * time.Millisecond
}

// Lease is how long a replica counts as live after a heartbeat.
func (c Coordination) Lease() time.Duration { return 5 * c.Heartbeat() }

// Keys returns the Redis names of topic's coordination.
func (c Coordination) Keys(topic string) Keys {
	p := c.KeyPrefix
	if p == "" {
		p = "tide:partitions:"
	}
	return Keys{prefix: p + topic + ":"}
}

// Validate checks what envconfig cannot.
func (c Coordination) Validate() error {
	if c.HeartbeatMS < 0 {
		return &config.VarError{Name: "PARTITION_HEARTBEAT_MS", Value: strconv.Itoa(c.HeartbeatMS), Reason: "must not be negative"}
	}
	return nil
}

// Keys names the Redis keys and the channel of one topic's coordination.
type Keys struct{ prefix string }

// Replicas is the sorted set of replica leases (score: expiry, server ms).
func (k Keys) Replicas() string { return k.prefix + "replicas" }

// State is the hash {epoch, phase, partitions, deadline}.
func (k Keys) State() string { return k.prefix + "state" }

// Held is the set of replicas that hold for epoch.
func (k Keys) Held(epoch int64) string { return k.prefix + "held:" + strconv.FormatInt(epoch, 10) }

// Released is the set of replicas that released after epoch.
func (k Keys) Released(epoch int64) string {
	return k.prefix + "released:" + strconv.FormatInt(epoch, 10)
}

// Channel carries the epoch of every state change, to wake the replicas at once
// (they also read the state with every heartbeat, so a lost message only delays).
func (k Keys) Channel() string { return k.prefix + "changes" }

// State is the coordination state as of Now (Redis server time, ms).
type State struct {
	Now        int64
	Epoch      int64
	Phase      string
	Partitions int
	Deadline   int64
}

// Holding says publishers must hold now: a hold whose deadline has not passed.
func (s State) Holding() bool { return s.Phase == PhaseHold && s.Now < s.Deadline }

// nowMS is the Lua prelude that reads the server clock in ms. Redis 7 replicates a
// script's effects, not the script, so reading TIME before writing is allowed.
const nowMS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// heartbeatScript renews a lease and reads the state in one step, so a replica either
// registered before a hold began (and the manager waits for it) or reads the hold.
var heartbeatScript = redis.NewScript(nowMS + `
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local s = redis.call('HMGET', KEYS[2], 'epoch', 'phase', 'partitions', 'deadline')
return {tostring(now), s[1] or '0', s[2] or '', s[3] or '0', s[4] or '0'}`)

// stateScript reads the state without renewing any lease.
var stateScript = redis.NewScript(nowMS + `
local s = redis.call('HMGET', KEYS[1], 'epoch', 'phase', 'partitions', 'deadline')
return {tostring(now), s[1] or '0', s[2] or '', s[3] or '0', s[4] or '0'}`)

// beginScript starts a hold unless a live one is under way: returns {epoch, now} or
// {0, now}.
var beginScript = redis.NewScript(nowMS + `
local s = redis.call('HMGET', KEYS[1], 'phase', 'deadline')
if s[1] == 'hold' and tonumber(s[2] or '0') > now then return {0, now} end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'phase', 'hold', 'partitions', ARGV[1], 'deadline', now + tonumber(ARGV[2]))
redis.call('PUBLISH', ARGV[3], epoch)
return {epoch, now}`)

// releaseScript ends epoch's hold with the partition count publishers must reach.
var releaseScript = redis.NewScript(`
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'phase', 'release', 'partitions', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1`)

// liveScript drops expired leases and returns the live replicas, sorted.
var liveScript = redis.NewScript(nowMS + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')`)

// heartbeat renews id's lease and returns the state.
func heartbeat(ctx context.Context, rdb redis.Scripter, k Keys, id string, lease time.Duration) (State, error) {
	v, err := heartbeatScript.Run(ctx, rdb, []string{k.Replicas(), k.State()}, id, lease.Milliseconds()).StringSlice()
	if err != nil {
		return State{}, fmt.Errorf("partition coordination heartbeat: %w", err)
	}
	return parseState(v)
}

// ReadState returns the coordination state of keys' topic.
func ReadState(ctx context.Context, rdb redis.Scripter, k Keys) (State, error) {
	v, err := stateScript.Run(ctx, rdb, []string{k.State()}).StringSlice()
	if err != nil {
		return State{}, fmt.Errorf("partition coordination state: %w", err)
	}
	return parseState(v)
}

func parseState(v []string) (State, error) {
	if len(v) != 5 {
		return State{}, fmt.Errorf("partition coordination state: %d values, want 5", len(v))
	}
	var s State
	var errs []error
	parse := func(i int, dst *int64) {
		n, err := strconv.ParseInt(v[i], 10, 64)
		errs = append(errs, err)
		*dst = n
	}
	var parts int64
	parse(0, &s.Now)
	parse(1, &s.Epoch)
	parse(3, &parts)
	parse(4, &s.Deadline)
	s.Phase, s.Partitions = v[2], int(parts)
	if err := errors.Join(errs...); err != nil {
		return State{}, fmt.Errorf("partition coordination state %q: %w", v, err)
	}
	return s, nil
}

// addTo adds id to a per-epoch set, kept an hour for whoever investigates.
func addTo(ctx context.Context, rdb redis.Cmdable, key, id string) error {
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, id)
		p.Expire(ctx, key, time.Hour)
		return nil
	})
	if err != nil {
		return fmt.Errorf("partition coordination: add %s to %s: %w", id, key, err)
	}
	return nil
}

// Holder is what a replica holds: the publishers of one process.
type Holder interface {
	// Hold stops publishing and returns once everything handed to Kafka is
	// acknowledged, or ctx ends (the holder stays held either way). It stops
	// publishing before it waits, so a call with a done ctx only stops publishing.
	Hold(ctx context.Context) error
	// Release undoes Hold.
	Release()
	// RefreshPartitions reloads topic's metadata and returns its partition count.
	RefreshPartitions(topic string) (int, error)
	// Buffered is how many records were handed to the holder and not yet
	// acknowledged by Kafka (while held: the records waiting for the release).
	Buffered() int64
}

// Combine holds several publishers as one: Hold holds them all, Release releases
// them all, RefreshPartitions refreshes them all and returns the smallest count.
func Combine(hs ...Holder) Holder { return holders(hs) }

type holders []Holder

func (hs holders) Hold(ctx context.Context) error {
	errs := make([]error, len(hs))
	for i, h := range hs {
		errs[i] = h.Hold(ctx)
	}
	return errors.Join(errs...)
}

func (hs holders) Release() {
	for _, h := range hs {
		h.Release()
	}
}

func (hs holders) Buffered() int64 {
	var n int64
	for _, h := range hs {
		n += h.Buffered()
	}
	return n
}

func (hs holders) RefreshPartitions(topic string) (int, error) {
	least := -1
	for _, h := range hs {
		n, err := h.RefreshPartitions(topic)
		if err != nil {
			return 0, err
		}
		if least < 0 || n < least {
			least = n
		}
	}
	return least, nil
}
