package growth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"function/shared/kafka"
	"function/shared/lag"
)

// Outcomes of a Change.
const (
	// OutcomeGrown: the topic has more partitions and every publisher uses them.
	OutcomeGrown = "grown"
	// OutcomeAbandoned: the growth was given up before adding partitions (replicas
	// did not hold, consumers did not drain, a change was already under way).
	OutcomeAbandoned = "abandoned"
	// OutcomeFailed: adding the partitions failed; publishers were released with the
	// count the cluster reports.
	OutcomeFailed = "failed"
)

// growBudget is the least time left before the hold's deadline for partitions to be
// added: an admin request with its retries, and the release. Past the deadline the
// replicas release by themselves, so the partitions must be in place well before.
const growBudget = 20 * time.Second

// GrowOptions tune a Grower.
type GrowOptions struct {
	// Groups are the consumer groups that must process everything before the hold.
	Groups []string
	// HoldTimeout bounds the wait for every live replica to hold (and later to
	// release); DrainTimeout the wait for the groups to process what was published
	// before the hold. Either running out abandons the growth.
	HoldTimeout, DrainTimeout time.Duration
	// AssignTimeout bounds the wait, after the release, for the groups to take the
	// new partitions (the change counts as in progress until then).
	AssignTimeout time.Duration
	// MinReplicas is the fewest live replicas a growth needs: with none registered,
	// nothing can be held, so growing would risk the order of publishers that do not
	// take part. 0 allows it (a topic no tide ingest writes).
	MinReplicas int
	// Nudge makes each group rebalance at once after a growth (a short-lived member
	// joins and leaves), instead of waiting for its leader's metadata refresh.
	Nudge bool
	// Poll is how often the waits look again (default 100 ms).
	Poll   time.Duration
	Logger *slog.Logger
}

// Grower runs one partition change at a time through the protocol of the package
// documentation.
type Grower struct {
	rdb    *redis.Client
	keys   Keys
	client sarama.Client
	admin  sarama.ClusterAdmin
	topic  string
	opts   GrowOptions
	log    *slog.Logger
	// nudge is how a group is made to rebalance (nudgeGroup; tests replace it).
	nudge func(ctx context.Context, group string) error
}

// NewGrower returns a Grower of topic. client and admin stay the caller's.
func NewGrower(rdb *redis.Client, c Coordination, client sarama.Client, admin sarama.ClusterAdmin, topic string, opts GrowOptions) *Grower {
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	g := &Grower{rdb: rdb, keys: c.Keys(topic), client: client, admin: admin, topic: topic, opts: opts, log: opts.Logger}
	g.nudge = g.nudgeGroup
	return g
}

// Change is the record of one partition change.
type Change struct {
	Epoch   int64  `json:"epoch"`
	From    int    `json:"from"`
	Target  int    `json:"target"`
	To      int    `json:"to"` // partitions after the change
	Outcome string `json:"outcome"`
	// Reason says why a change was abandoned or failed.
	Reason   string   `json:"reason,omitempty"`
	Replicas []string `json:"replicas"`
	// Start is when the hold began (zero when none did).
	Start time.Time `json:"start"`
	// Pause is how long publishes were held: from the start of the hold until every
	// replica released (or the wait for that ran out).
	Pause time.Duration `json:"pause_ns"`
	// Held, Drained and Grown are the times from the start of the hold until every
	// replica held, the groups drained, and the partitions were added.
	Held    time.Duration `json:"held_ns"`
	Drained time.Duration `json:"drained_ns"`
	Grown   time.Duration `json:"grown_ns"`
	// Assigned is the time from the release until every group had taken the new
	// partitions; 0 when it did not happen within AssignTimeout.
	Assigned time.Duration `json:"assigned_ns"`
}

// LogAttrs returns the change as attributes of one structured log record.
func (c Change) LogAttrs() []slog.Attr {
	return []slog.Attr{
		slog.Int64("epoch", c.Epoch), slog.Int("from", c.From), slog.Int("target", c.Target), slog.Int("to", c.To),
		slog.String("outcome", c.Outcome), slog.String("reason", c.Reason), slog.Any("replicas", c.Replicas),
		slog.Time("start", c.Start), slog.Duration("pause", c.Pause), slog.Duration("held", c.Held), slog.Duration("drained", c.Drained),
		slog.Duration("grown", c.Grown), slog.Duration("assigned", c.Assigned),
	}
}

// errInProgress: another hold is under way (a second manager, or a crash's leftover
// whose deadline has not passed).
var errInProgress = errors.New("a partition change is already under way")

// Grow grows the topic to target partitions, holding every publisher while the
// groups drain, and returns what happened; it never forces a growth whose
// preconditions timed out. The pause is bounded by HoldTimeout + DrainTimeout + the
// admin request + HoldTimeout.
func (g *Grower) Grow(ctx context.Context, target int) Change {
	ch := Change{Target: target}
	from, err := kafka.PartitionCount(g.client, g.topic)
	if err != nil {
		return ch.end(OutcomeAbandoned, err.Error())
	}
	ch.From, ch.To = from, from
	if target <= from {
		return ch.end(OutcomeAbandoned, fmt.Sprintf("the topic already has %d partitions", from))
	}
	live, err := g.live(ctx)
	if err != nil {
		return ch.end(OutcomeAbandoned, err.Error())
	}
	if len(live) < g.opts.MinReplicas {
		return ch.end(OutcomeAbandoned, fmt.Sprintf("%d ingest replicas registered, fewer than PARTITION_MIN_REPLICAS=%d: a publisher that does not take part cannot be held", len(live), g.opts.MinReplicas))
	}
	budget := 2*g.opts.HoldTimeout + g.opts.DrainTimeout + growBudget
	start := time.Now()
	epoch, deadline, err := g.begin(ctx, from, budget)
	if err != nil {
		return ch.end(OutcomeAbandoned, err.Error())
	}
	ch.Epoch, ch.Start = epoch, start
	g.log.Info("partition change: publishes held", "epoch", epoch, "from", from, "target", target)

	if ch.Replicas, err = g.waitHeld(ctx, epoch); err != nil {
		return g.finish(ctx, ch, start, OutcomeAbandoned, err.Error())
	}
	ch.Held = time.Since(start)
	if err := g.waitDrained(ctx); err != nil {
		return g.finish(ctx, ch, start, OutcomeAbandoned, err.Error())
	}
	ch.Drained = time.Since(start)
	now, err := g.rdb.Time(ctx).Result()
	if err != nil {
		return g.finish(ctx, ch, start, OutcomeAbandoned, fmt.Sprintf("redis time: %v", err))
	}
	if left := time.Duration(deadline-now.UnixMilli()) * time.Millisecond; left < growBudget {
		return g.finish(ctx, ch, start, OutcomeAbandoned, fmt.Sprintf("only %s left before the hold's deadline", left))
	}
	if err := kafka.AddPartitions(g.admin, g.topic, int32(target)); err != nil {
		return g.finish(ctx, ch, start, OutcomeFailed, err.Error())
	}
	ch.Grown = time.Since(start)
	ch = g.finish(ctx, ch, start, OutcomeGrown, "")
	if ch.Outcome == OutcomeGrown {
		ch.Assigned = g.waitAssigned(ctx, from, ch.To)
	}
	return ch
}

func (c Change) end(outcome, reason string) Change {
	c.Outcome, c.Reason = outcome, reason
	return c
}

// finish releases the publishers with the partition count the cluster reports now
// (after a failed request the partitions may still have been added) and waits for
// them to release.
func (g *Grower) finish(ctx context.Context, ch Change, start time.Time, outcome, reason string) Change {
	ch.Outcome, ch.Reason = outcome, reason
	// A release must go out even when ctx ended: publishers would otherwise wait for
	// the deadline.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.opts.HoldTimeout+growBudget)
	defer cancel()
	want, tries := ch.From, 1 // abandoned: nothing was asked of the cluster
	switch ch.Outcome {
	case OutcomeGrown:
		want, tries = ch.Target, 10 // brokers learn of new partitions a moment later
	case OutcomeFailed:
		want, tries = ch.From+1, 10 // a request that timed out may still land
	}
	n, err := g.settledCount(rctx, want, tries)
	if err != nil {
		ch.Reason = strings.TrimPrefix(ch.Reason+"; "+err.Error(), "; ")
		n = ch.From
	}
	if ch.Outcome == OutcomeGrown && n < ch.Target {
		// The request succeeded, so the partitions exist even if the metadata does not
		// show them yet: publishers must wait until theirs does.
		g.log.Warn("partition change: the metadata does not show the new partitions yet", "have", n, "target", ch.Target)
		n = ch.Target
	}
	ch.To = n
	if err := g.release(rctx, ch.Epoch, n); err != nil {
		ch.Reason = strings.TrimPrefix(ch.Reason+"; "+err.Error(), "; ")
		ch.Pause = time.Since(start)
		return ch
	}
	if err := g.waitReleased(rctx, ch.Epoch); err != nil {
		ch.Reason = strings.TrimPrefix(ch.Reason+"; "+err.Error(), "; ")
	}
	ch.Pause = time.Since(start)
	return ch
}

// settledCount reads the partition count, up to tries times 200 ms apart until it
// is at least want.
func (g *Grower) settledCount(ctx context.Context, want, tries int) (int, error) {
	var n int
	var err error
	for i := range tries {
		if n, err = kafka.PartitionCount(g.client, g.topic); err == nil && n >= want {
			return n, nil
		}
		if i == tries-1 || !sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	return n, err
}

func (g *Grower) begin(ctx context.Context, from int, budget time.Duration) (epoch, deadline int64, err error) {
	v, err := beginScript.Run(ctx, g.rdb, []string{g.keys.State()}, from, budget.Milliseconds(), g.keys.Channel()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("begin the hold: %w", err)
	}
	if len(v) != 2 || v[0] == 0 {
		return 0, 0, errInProgress
	}
	return v[0], v[1] + budget.Milliseconds(), nil
}

func (g *Grower) release(ctx context.Context, epoch int64, partitions int) error {
	if err := releaseScript.Run(ctx, g.rdb, []string{g.keys.State()}, epoch, partitions, g.keys.Channel()).Err(); err != nil {
		return fmt.Errorf("release the hold: %w", err)
	}
	return nil
}

// live returns the replicas with a live lease.
func (g *Grower) live(ctx context.Context) ([]string, error) {
	ids, err := liveScript.Run(ctx, g.rdb, []string{g.keys.Replicas()}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("live ingest replicas: %w", err)
	}
	return ids, nil
}

// waitAll waits until every live replica is in the set key, and returns them.
func (g *Grower) waitAll(ctx context.Context, key, what string) ([]string, error) {
	deadline := time.Now().Add(g.opts.HoldTimeout)
	var missing []string
	for {
		live, err := g.live(ctx)
		if err == nil {
			var in []string
			if in, err = g.rdb.SMembers(ctx, key).Result(); err == nil {
				missing = missing[:0]
				for _, id := range live {
					if !slices.Contains(in, id) {
						missing = append(missing, id)
					}
				}
				if len(missing) == 0 {
					return live, nil
				}
			}
		}
		if err != nil {
			g.log.Warn("partition change: cannot read the replicas", "err", err)
		}
		if time.Now().After(deadline) || !sleep(ctx, g.opts.Poll) {
			return nil, fmt.Errorf("replicas %v did not %s within %s", missing, what, g.opts.HoldTimeout)
		}
	}
}

func (g *Grower) waitHeld(ctx context.Context, epoch int64) ([]string, error) {
	return g.waitAll(ctx, g.keys.Held(epoch), "hold")
}

func (g *Grower) waitReleased(ctx context.Context, epoch int64) error {
	_, err := g.waitAll(ctx, g.keys.Released(epoch), "release")
	return err
}

// waitDrained takes the high-water marks (every replica holds, so nothing more is
// published) and waits until every group processed everything below them.
func (g *Grower) waitDrained(ctx context.Context) error {
	high, start, err := Marks(g.client, g.topic)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(g.opts.DrainTimeout)
	pending := slices.Clone(g.opts.Groups)
	var waiting string
	for {
		for len(pending) > 0 {
			ok, why, err := Drained(g.client, pending[0], g.topic, high, start)
			if err != nil {
				why = err.Error()
			}
			if !ok {
				waiting = why
				break
			}
			if why != "" {
				g.log.Info("partition change: "+why, "group", pending[0])
			}
			pending = pending[1:]
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) || !sleep(ctx, g.opts.Poll) {
			return fmt.Errorf("consumers did not process everything published before the hold within %s: %s", g.opts.DrainTimeout, waiting)
		}
	}
}

// waitAssigned waits until every group that consumes the topic has a committed offset
// on each new partition: the consumer runner commits its starting position when a
// partition is assigned, so a commit means a member took it. It returns the time it
// took, 0 when AssignTimeout ran out.
func (g *Grower) waitAssigned(ctx context.Context, from, to int) time.Duration {
	start := time.Now()
	if g.opts.Nudge {
		for _, group := range g.opts.Groups {
			if err := g.nudge(ctx, group); err != nil {
				g.log.Warn("partition change: could not make the group rebalance; it takes the new partitions at its next metadata refresh", "group", group, "err", err)
			}
		}
	}
	all := make([]int32, to)
	for i := range all {
		all[i] = int32(i)
	}
	deadline := start.Add(g.opts.AssignTimeout)
	for {
		done := true
		for _, group := range g.opts.Groups {
			c, err := lag.Committed(g.client, group, g.topic, all)
			if err != nil {
				done = false
				break
			}
			consuming := false
			for p := range int32(from) {
				consuming = consuming || c[p] >= 0
			}
			for p := int32(from); p < int32(to) && consuming; p++ {
				done = done && c[p] >= 0
			}
		}
		if done {
			return time.Since(start)
		}
		if time.Now().After(deadline) || !sleep(ctx, 4*g.opts.Poll) {
			g.log.Warn("partition change: groups did not take the new partitions in time", "timeout", g.opts.AssignTimeout)
			return 0
		}
	}
}

// nudgeGroup joins group as a member that consumes nothing and leaves again: the join
// makes the group rebalance, and the leader refreshes the topic's metadata while
// assigning, so the members take the new partitions now rather than at the leader's
// next metadata refresh (sarama checks the partition count every
// Metadata.RefreshFrequency, a minute in tide). Nothing is marked or committed.
func (g *Grower) nudgeGroup(ctx context.Context, group string) error {
	cfg := *g.client.Config()
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Return.Errors = false
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	cg, err := sarama.NewConsumerGroup(g.brokers(), group, &cfg)
	if err != nil {
		return fmt.Errorf("nudge %s: %w", group, err)
	}
	defer cg.Close()
	nctx, cancel := context.WithTimeout(ctx, cfg.Consumer.Group.Rebalance.Timeout+5*time.Second)
	defer cancel()
	joined := false
	err = cg.Consume(nctx, []string{g.topic}, idleMember{setup: func() { joined = true; cancel() }})
	if !joined {
		return fmt.Errorf("nudge %s: did not join: %w", group, errors.Join(err, nctx.Err()))
	}
	return nil
}

func (g *Grower) brokers() []string {
	var addrs []string
	for _, b := range g.client.Brokers() {
		addrs = append(addrs, b.Addr())
	}
	return addrs
}

// idleMember is a consumer group member that ends its session as soon as it joined
// (setup cancels the session's context), even when it was assigned nothing.
type idleMember struct{ setup func() }

func (m idleMember) Setup(sarama.ConsumerGroupSession) error {
	m.setup()
	return nil
}
func (idleMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (idleMember) ConsumeClaim(sarama.ConsumerGroupSession, sarama.ConsumerGroupClaim) error {
	return nil
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
