package consumer

import (
	"context"
	"time"
)

// backoff is an exponential delay between attempts, doubling from first up to max.
type backoff struct {
	first, max, next time.Duration
}

func newBackoff(first, max time.Duration) *backoff {
	return &backoff{first: first, max: max, next: first}
}

func (b *backoff) reset() { b.next = b.first }

// wait sleeps for the current delay and doubles it; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	if b.next *= 2; b.next > b.max {
		b.next = b.max
	}
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
