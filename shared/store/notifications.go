package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Notification is what the notification function makes of one event.
type Notification struct {
	ID          string    `json:"id"` // the event's id
	Type        string    `json:"type"`
	Source      string    `json:"source"`
	Subject     string    `json:"subject,omitempty"`
	Time        time.Time `json:"time,omitzero"` // the event's time attribute; absent when the event has none
	Title       string    `json:"title"`
	Channel     string    `json:"channel"`
	CreatedAt   time.Time `json:"created_at"`
	TraceParent string    `json:"traceparent,omitempty"`
	// Key is the partition key the event travelled under.
	Key string `json:"key,omitempty"`
}

// Notifications stores notifications in one Redis stream per channel, capped at
// MaxLen entries, with an all-time counter per channel, and publishes each new one on
// a pub/sub channel for live subscribers.
type Notifications struct {
	rdb    *redis.Client
	prefix string
	maxLen int64
	dedup  time.Duration
}

// NewNotifications returns the store. maxLen caps each channel's stream; dedup is how
// long an event's identity is remembered.
func NewNotifications(rdb *redis.Client, prefix string, maxLen int64, dedup time.Duration) *Notifications {
	return &Notifications{rdb: rdb, prefix: prefix, maxLen: maxLen, dedup: dedup}
}

// putScript stores a notification unless its event was seen within the dedup window,
// all in one atomic step: a duplicate delivery never yields a second notification,
// and a stored one always has its counter and its live message.
//
// KEYS: 1 dedup key, 2 stream, 3 counter. ARGV: 1 dedup ttl ms, 2 maxlen, 3 JSON,
// 4 pub/sub channel.
var putScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'n', ARGV[3])
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
`)

// Put stores n unless the event (source, id) was already notified. It reports
// whether n was stored (false: a duplicate).
func (s *Notifications) Put(ctx context.Context, n Notification) (bool, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return false, fmt.Errorf("encode notification: %w", err)
	}
	keys := []string{
		s.prefix + "notify:seen:" + EventKey(n.Source, n.ID),
		s.streamKey(n.Channel),
		s.counterKey(n.Channel),
	}
	res, err := putScript.Run(ctx, s.rdb, keys, s.dedup.Milliseconds(), s.maxLen, body, s.liveChannel(n.Channel)).Int()
	if err != nil {
		return false, fmt.Errorf("store notification %s: %w", n.ID, err)
	}
	return res == 1, nil
}

// PutMany stores ns in order with one round trip: a pipeline of the script Put runs,
// so each notification is still stored atomically and deduplicated on its own, and
// Redis runs them in the order given (a partition's records, so per-key order
// holds). It reports per notification whether it was stored. On an error some may
// have been stored; calling again is safe, since those are then duplicates.
//
// Why: the notification consumer paid one Redis round trip per record, and on a busy
// machine each round trip waits for the scheduler twice, so a partition could not go
// faster than the round trips (see BENCHMARKS.md).
func (s *Notifications) PutMany(ctx context.Context, ns []Notification) ([]bool, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	type call struct {
		keys []string
		args []any
	}
	calls := make([]call, len(ns))
	for i, n := range ns {
		body, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("encode notification %s: %w", n.ID, err)
		}
		calls[i] = call{
			keys: []string{s.prefix + "notify:seen:" + EventKey(n.Source, n.ID), s.streamKey(n.Channel), s.counterKey(n.Channel)},
			args: []any{s.dedup.Milliseconds(), s.maxLen, body, s.liveChannel(n.Channel)},
		}
	}
	var cmds []*redis.Cmd
	run := func() error {
		pipe := s.rdb.Pipeline()
		cmds = make([]*redis.Cmd, len(calls))
		for i, c := range calls {
			cmds[i] = putScript.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its script cache (a restart): load the script and run again.
		if lerr := putScript.Load(ctx, s.rdb).Err(); lerr != nil {
			return nil, fmt.Errorf("load notification script: %w", lerr)
		}
		err = run()
	}
	if err != nil {
		return nil, fmt.Errorf("store %d notifications: %w", len(ns), err)
	}
	stored := make([]bool, len(ns))
	for i, c := range cmds {
		v, err := c.Int()
		if err != nil {
			return nil, fmt.Errorf("store notification %s: %w", ns[i].ID, err)
		}
		stored[i] = v == 1
	}
	return stored, nil
}

// List returns the newest limit notifications of channel, newest first, and the
// all-time count of the channel.
func (s *Notifications) List(ctx context.Context, channel string, limit int64) ([]Notification, int64, error) {
	pipe := s.rdb.Pipeline()
	entries := pipe.XRevRangeN(ctx, s.streamKey(channel), "+", "-", limit)
	total := pipe.Get(ctx, s.counterKey(channel))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("list notifications of %q: %w", channel, err)
	}
	out := make([]Notification, 0, len(entries.Val()))
	for _, e := range entries.Val() {
		var n Notification
		if raw, ok := e.Values["n"].(string); ok && json.Unmarshal([]byte(raw), &n) == nil {
			out = append(out, n)
		}
	}
	count, _ := strconv.ParseInt(total.Val(), 10, 64)
	return out, count, nil
}

// Subscribe delivers every notification stored in channel from now until ctx ends.
// The returned channel is closed when the subscription ends.
func (s *Notifications) Subscribe(ctx context.Context, channel string) (<-chan Notification, error) {
	sub := s.rdb.Subscribe(ctx, s.liveChannel(channel))
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("subscribe %q: %w", channel, err)
	}
	out := make(chan Notification, 64)
	go func() {
		defer close(out)
		defer sub.Close()
		msgs := sub.Channel()
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return
				}
				var n Notification
				if json.Unmarshal([]byte(m.Payload), &n) != nil {
					continue
				}
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (s *Notifications) streamKey(channel string) string {
	return s.prefix + "notify:stream:" + channel
}
func (s *Notifications) counterKey(channel string) string {
	return s.prefix + "notify:total:" + channel
}
func (s *Notifications) liveChannel(channel string) string {
	return s.prefix + "notify:live:" + channel
}
