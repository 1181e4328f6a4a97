package growth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplicaOptions tune a Replica.
type ReplicaOptions struct {
	// ID names the replica in Redis (default: host name, pid and a random suffix).
	ID string
	// HoldTimeout bounds the wait for the records handed to Kafka before a hold to be
	// acknowledged (default 10 s); a replica that cannot drain in time does not
	// acknowledge the hold, and the manager abandons the growth.
	HoldTimeout time.Duration
	// OnRelease, when set, is called after each release with how long the publishers
	// were held (for the pause metric). It must not block.
	OnRelease func(held time.Duration)
	// Logger receives holds, releases and lease changes (default slog.Default).
	Logger *slog.Logger
}

// Replica is one ingest process's side of the protocol: it keeps its lease, holds its
// publishers when the manager asks (or when it cannot renew the lease), acknowledges,
// and releases with a refreshed partition count. See the package documentation.
type Replica struct {
	rdb   *redis.Client
	keys  Keys
	coord Coordination
	topic string
	pub   Holder
	opts  ReplicaOptions
	log   *slog.Logger

	wake    chan struct{}
	stop    chan struct{}
	stopped sync.Once
	cancel  context.CancelFunc
	done    chan struct{}

	// fenced: the lease could not be renewed, so the replica holds by itself. Written
	// only by the loop goroutine (and JoinReplica before it starts); read by Fenced.
	fenced atomic.Bool

	// Owned by the loop goroutine (and JoinReplica before it starts).
	lastOK     time.Time // when the last successful heartbeat was sent
	held       bool
	heldAt     time.Time
	holdGen    uint64
	holdCancel context.CancelFunc
	holdDone   chan struct{}
	acked      int64 // the epoch whose hold this replica acknowledged
	released   int64 // the last epoch whose release it acknowledged

	drained atomic.Uint64 // the holdGen whose Hold returned nil
	holding atomic.Bool   // mirrors held, for Held()
}

// JoinReplica registers the replica and applies the state once before it returns, so
// a replica that starts during a hold starts held; then it keeps the lease in the
// background until Close. A Redis that does not answer is not an error: the replica
// starts fenced (held) and joins when Redis answers. rdb stays the caller's.
func JoinReplica(ctx context.Context, rdb *redis.Client, c Coordination, topic string, pub Holder, opts ReplicaOptions) *Replica {
	if opts.ID == "" {
		opts.ID = replicaID()
	}
	if opts.HoldTimeout <= 0 {
		opts.HoldTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Replica{
		rdb: rdb, keys: c.Keys(topic), coord: c, topic: topic, pub: pub, opts: opts,
		log:  opts.Logger.With("replica", opts.ID, "topic", topic),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	r.tick(ctx)
	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(loopCtx)
	return r
}

// ID is the replica's name in Redis.
func (r *Replica) ID() string { return r.opts.ID }

// Held says the publishers are held now (a hold, or a lost lease).
func (r *Replica) Held() bool { return r.holding.Load() }

// Fenced says the replica holds by itself because it could not renew its lease (Redis
// did not answer): it publishes nothing until Redis answers again.
func (r *Replica) Fenced() bool { return r.fenced.Load() }

// Close stops the replica. While its publishers are held with records waiting in
// them it keeps following the protocol until the manager releases them (or ctx
// ends), so those records are never sent under the old partition count when the
// process stops mid-growth. Held with nothing waiting (a replica that never reached
// Redis, say, stopping because its start failed) it leaves at once: there is
// nothing to protect, and a Redis that does not answer would keep it held forever.
// Then it removes its lease.
func (r *Replica) Close(ctx context.Context) error {
	r.stopped.Do(func() { close(r.stop) })
	var err error
	select {
	case <-r.done:
	case <-ctx.Done():
		err = fmt.Errorf("partition coordination: stopped while publishes were held: %w", ctx.Err())
		r.cancel()
		<-r.done
	}
	r.cancel()
	uctx, cancel := context.WithTimeout(context.Background(), r.coord.Heartbeat())
	defer cancel()
	if zerr := r.rdb.ZRem(uctx, r.keys.Replicas(), r.opts.ID).Err(); zerr != nil {
		err = errors.Join(err, fmt.Errorf("partition coordination: remove lease: %w", zerr))
	}
	return err
}

func (r *Replica) run(ctx context.Context) {
	defer close(r.done)
	defer r.stopHold()
	sub := r.rdb.Subscribe(ctx, r.keys.Channel())
	defer sub.Close()
	changes := sub.Channel()
	t := time.NewTicker(r.coord.Heartbeat())
	defer t.Stop()
	stop := r.stop
	for {
		select {
		case <-t.C:
		case <-changes:
		case <-r.wake:
		case <-stop:
			stop = nil // closing: leave once not held, or held with nothing waiting
			if r.pub.Buffered() == 0 {
				return
			}
		case <-ctx.Done():
			return
		}
		r.tick(ctx)
		if stop == nil && (!r.held || r.pub.Buffered() == 0) {
			return
		}
	}
}

// fenceAfter is how long after the last successful heartbeat the replica holds by
// itself: two heartbeats before the lease expires, because one heartbeat call may
// block for up to a heartbeat before it fails.
func (r *Replica) fenceAfter() time.Duration { return r.coord.Lease() - 2*r.coord.Heartbeat() }

func (r *Replica) tick(ctx context.Context) {
	sent := time.Now()
	hctx, cancel := context.WithTimeout(ctx, r.coord.Heartbeat())
	st, err := heartbeat(hctx, r.rdb, r.keys, r.opts.ID, r.coord.Lease())
	cancel()
	if err != nil {
		if !r.fenced.Load() && (r.lastOK.IsZero() || time.Since(r.lastOK) > r.fenceAfter()) {
			r.fenced.Store(true)
			r.hold()
			r.log.Warn("cannot renew the partition coordination lease: publishes held until Redis answers", "err", err)
		}
		return
	}
	r.lastOK = sent
	if r.fenced.Load() {
		r.fenced.Store(false)
		r.log.Info("partition coordination lease renewed")
	}
	if st.Holding() {
		r.hold()
		if r.acked != st.Epoch && r.drained.Load() == r.holdGen {
			if err := addTo(ctx, r.rdb, r.keys.Held(st.Epoch), r.opts.ID); err != nil {
				r.log.Warn("cannot acknowledge the hold", "epoch", st.Epoch, "err", err)
				return
			}
			r.acked = st.Epoch
			r.log.Info("publishes held for a partition change", "epoch", st.Epoch, "partitions", st.Partitions)
		}
		return
	}
	releaseDue := st.Phase == PhaseRelease && st.Epoch > r.released
	if !r.held && !releaseDue {
		return
	}
	// Publish again only under a partition count at least the manager's.
	n, err := r.pub.RefreshPartitions(r.topic)
	if err != nil || n < st.Partitions {
		r.log.Warn("partition count not yet refreshed; publishes stay held", "have", n, "want", st.Partitions, "err", err)
		return
	}
	if r.held {
		held := time.Since(r.heldAt)
		r.release()
		r.log.Info("publishes released", "epoch", st.Epoch, "partitions", n, "held", held)
		if r.opts.OnRelease != nil {
			r.opts.OnRelease(held)
		}
	}
	if releaseDue {
		if err := addTo(ctx, r.rdb, r.keys.Released(st.Epoch), r.opts.ID); err != nil {
			r.log.Warn("cannot acknowledge the release", "epoch", st.Epoch, "err", err)
			return
		}
		r.released = st.Epoch
	}
}

// hold closes the publishers' gates and waits, in the background, for what they had
// handed to Kafka; the loop keeps renewing the lease meanwhile. Called again while
// held, it restarts a wait that gave up, so a replica that was slow to drain can still
// acknowledge a later hold.
func (r *Replica) hold() {
	if !r.held {
		// Stop publishing now, not when the goroutine below runs: a replica that
		// joins during a hold must not publish between JoinReplica and the wait.
		stopNow, stop := context.WithCancel(context.Background())
		stop()
		_ = r.pub.Hold(stopNow)
		r.held, r.heldAt = true, time.Now()
		r.holding.Store(true)
		r.holdGen++
	}
	if r.drained.Load() == r.holdGen || r.waiting() {
		return
	}
	gen := r.holdGen
	hctx, cancel := context.WithTimeout(context.Background(), r.opts.HoldTimeout)
	done := make(chan struct{})
	r.holdCancel, r.holdDone = cancel, done
	go func() {
		defer close(done)
		defer cancel()
		if err := r.pub.Hold(hctx); err != nil {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("records handed to Kafka before the hold were not acknowledged in time; the hold is not acknowledged yet", "err", err)
			}
			return
		}
		r.drained.Store(gen)
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}()
}

// waiting says a hold's background wait is running.
func (r *Replica) waiting() bool {
	if r.holdDone == nil {
		return false
	}
	select {
	case <-r.holdDone:
		return false
	default:
		return true
	}
}

// stopHold ends the background wait of a hold; the publishers stay held.
func (r *Replica) stopHold() {
	if r.holdCancel != nil {
		r.holdCancel()
		<-r.holdDone
		r.holdCancel, r.holdDone = nil, nil
	}
}

// release opens the gates. The hold's goroutine is finished first: it is the one that
// closed them, and a Release that overtook it would leave them closed.
func (r *Replica) release() {
	r.stopHold()
	r.pub.Release()
	r.held = false
	r.holding.Store(false)
}

func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
