package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// storedNotification is the part of a stored notification (shared/store.Notification)
// the latency needs: the event's time, which loadgen sets to the intended send time,
// and when notification made it.
type storedNotification struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	CreatedAt time.Time `json:"created_at"`
}

// NotificationLatency waits (up to wait) until want notifications of ev's run are
// stored in Redis, then returns, for those whose event time is not before since, the
// distribution of created_at minus the event's
// time: from the moment the event was due to be sent to the moment the notification
// function made its notification, so HTTP, ingest's batching, Kafka, the consumer's
// fetch and the rendering are all inside it. It reads the per-channel streams that
// tide's notification store writes (prefix + "notify:stream:" + channel, the channel
// being the event's source by default). It returns the notifications found so far
// with an error when fewer than want arrive in time.
func NotificationLatency(ctx context.Context, rdb *redis.Client, prefix string, ev Events, want int64, since time.Time, wait time.Duration) (*Histogram, error) {
	ev = ev.withDefaults()
	streams := make([]string, ev.Sources)
	for i := range streams {
		streams[i] = prefix + "notify:stream:" + ev.SourceOf(int64(i))
	}
	deadline := time.Now().Add(wait)
	for {
		var have int64
		for _, s := range streams {
			n, err := rdb.XLen(ctx, s).Result()
			if err != nil {
				return nil, fmt.Errorf("length of %s: %w", s, err)
			}
			have += n
		}
		if have >= want || time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	h := NewHistogram()
	var found int64
	for _, s := range streams {
		start := "-"
		for range 1 << 20 { // bounded: a stream holds at most NOTIFICATION_STREAM_MAXLEN
			page, err := rdb.XRangeN(ctx, s, start, "+", 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", s, err)
			}
			for _, m := range page {
				raw, _ := m.Values["n"].(string)
				var n storedNotification
				if json.Unmarshal([]byte(raw), &n) != nil || !ev.IsOurs(n.ID) || n.Time.IsZero() {
					continue
				}
				found++
				if !n.Time.Before(since) {
					h.Record(n.CreatedAt.Sub(n.Time))
				}
			}
			if len(page) < 1000 {
				break
			}
			start = "(" + page[len(page)-1].ID
		}
	}
	if found < want {
		return h, fmt.Errorf("%d of %d notifications stored within %s", found, want, wait)
	}
	return h, nil
}
