package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/fault"
	"function/shared/lag"
	"function/shared/metrics"
	"function/shared/scaling"
)

// RecordHandler handles one record. It must be idempotent: after a crash or a
// rebalance the same record may be delivered again.
type RecordHandler interface {
	HandleRecord(ctx context.Context, r *sarama.ConsumerMessage) error
}

// Batch is consecutive records of one partition, in offset order.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*sarama.ConsumerMessage
	// DeadLetter sends one record of the batch to the dead-letter topic now
	// (synchronously), so a handler can set aside a poison record before it applies
	// the rest of the batch.
	DeadLetter func(ctx context.Context, r *sarama.ConsumerMessage, cause error) error
}

// BatchHandler handles a batch at once. It must be idempotent per record.
type BatchHandler interface {
	HandleBatch(ctx context.Context, b Batch) error
}

// Resumer is implemented by a handler that stores its own offsets (analytics keeps
// them in Redis with its aggregates). Resume returns, per assigned partition, the next
// offset to read; a partition missing from the answer starts from the group's commit.
type Resumer interface {
	Resume(ctx context.Context, topic string, partitions []int32) (map[int32]int64, error)
}

// DeadLetterSink receives the records that cannot be handled.
type DeadLetterSink interface {
	DeadLetter(ctx context.Context, group string, r *sarama.ConsumerMessage, cause error, attempts int) error
}

// Options configure a Runner.
type Options struct {
	Brokers []string
	// Sarama is the client configuration (see kafka.ConsumerConfig).
	Sarama *sarama.Config
	Topics []string
	// Settings: group, batch size and wait, commit interval, retries.
	Settings config.Consumer
	// Exactly one of Record and Batch is set.
	Record RecordHandler
	Batch  BatchHandler
	// DeadLetters receives poison records; nil logs them and moves on.
	DeadLetters DeadLetterSink
	Logger      *slog.Logger
	Metrics     *metrics.Metrics
	// Scaling, when set, feeds the lag samples to a scaling.Estimator whose
	// recommendation Signal returns (the /v1/scaling endpoint for KEDA).
	Scaling *scaling.Config
}

// Runner consumes with a sarama consumer group until its context ends.
type Runner struct {
	opts   Options
	client sarama.Client
	group  sarama.ConsumerGroup
	log    *slog.Logger

	ready      atomic.Bool
	mu         sync.Mutex
	assignment map[string][]int32
	sessions   atomic.Int64

	scaleMu   sync.Mutex
	estimator *scaling.Estimator
	signal    scaling.Signal
}

// New connects to Kafka and prepares the group; Run starts consuming.
func New(opts Options) (*Runner, error) {
	if (opts.Record == nil) == (opts.Batch == nil) {
		return nil, errors.New("consumer: set exactly one of Record and Batch")
	}
	if opts.Settings.Group == "" {
		return nil, errors.New("consumer: a group id is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client, err := sarama.NewClient(opts.Brokers, opts.Sarama)
	if err != nil {
		return nil, fmt.Errorf("consumer %s: kafka client: %w", opts.Settings.Group, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(opts.Settings.Group, client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("consumer %s: group: %w", opts.Settings.Group, err)
	}
	r := &Runner{
		opts:   opts,
		client: client,
		group:  group,
		log:    opts.Logger.With("group", opts.Settings.Group),
	}
	if opts.Scaling != nil {
		if r.estimator, err = scaling.NewEstimator(*opts.Scaling); err != nil {
			_ = group.Close()
			_ = client.Close()
			return nil, err
		}
	}
	return r, nil
}

// Client is the runner's sarama client (for offsets and metadata).
func (r *Runner) Client() sarama.Client { return r.client }

// Group is the consumer group id.
func (r *Runner) Group() string { return r.opts.Settings.Group }

// Ready reports whether the runner has joined its group, been assigned its
// partitions and resolved and committed their starting positions.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Sessions counts the group generations this runner has joined (each rebalance
// starts a new one).
func (r *Runner) Sessions() int64 { return r.sessions.Load() }

// Assignment returns the partitions currently assigned to this member.
func (r *Runner) Assignment() map[string][]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]int32, len(r.assignment))
	for t, ps := range r.assignment {
		out[t] = append([]int32(nil), ps...)
	}
	return out
}

// Run consumes until ctx ends, re-joining the group after every rebalance, then
// commits what was handled and leaves the group.
func (r *Runner) Run(ctx context.Context) error {
	go r.logErrors()
	if r.opts.Metrics != nil || r.estimator != nil {
		go r.reportLag(ctx, 5*time.Second)
	}
	defer func() {
		if err := r.group.Close(); err != nil {
			r.log.Warn("closing consumer group", "err", err)
		}
		_ = r.client.Close()
	}()
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		err := r.group.Consume(ctx, r.opts.Topics, &groupHandler{r: r})
		if err == nil {
			backoff.reset()
			continue
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return nil
		}
		r.log.Warn("consume failed; joining again", "err", err)
		if !backoff.wait(ctx) {
			break
		}
	}
	return nil
}

// Lag returns the group's lag on each of its topics' partitions, as Kafka's tools
// compute it.
func (r *Runner) Lag() (map[string][]lag.Partition, error) {
	out := make(map[string][]lag.Partition, len(r.opts.Topics))
	for _, t := range r.opts.Topics {
		ps, err := lag.Fetch(r.client, r.opts.Settings.Group, t)
		if err != nil {
			return nil, err
		}
		out[t] = ps
	}
	return out, nil
}

// reportLag exports the group's lag and the topics' partition counts every interval
// and feeds the scaling estimator.
func (r *Runner) reportLag(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if byTopic, err := r.Lag(); err == nil {
			r.record(byTopic)
		} else if ctx.Err() == nil {
			r.log.Debug("lag not available", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Runner) record(byTopic map[string][]lag.Partition) {
	sample := scaling.Sample{At: time.Now()}
	for topic, ps := range byTopic {
		if m := r.opts.Metrics; m != nil {
			m.TopicPartitions.WithLabelValues(topic).Set(float64(len(ps)))
			for _, p := range ps {
				m.ConsumerLag.WithLabelValues(r.opts.Settings.Group, topic, PartitionLabel(p.Partition)).Set(float64(p.Lag))
			}
		}
		for _, p := range ps {
			sample.Lag += p.Lag
			sample.Produced += p.HighWaterMark
			sample.Consumed += p.HighWaterMark - p.Lag
		}
		sample.Partitions += len(ps)
	}
	if r.estimator == nil {
		return
	}
	sample.Replicas = r.members()
	r.scaleMu.Lock()
	defer r.scaleMu.Unlock()
	r.estimator.Observe(sample)
	replicas := sample.Replicas
	if replicas == 0 {
		replicas = 1
	}
	r.signal = r.estimator.Signal(replicas)
}

// members counts the group's members (the consumers KEDA scales), 0 when unknown.
func (r *Runner) members() int {
	admin, err := sarama.NewClusterAdminFromClient(r.client)
	if err != nil {
		return 0
	}
	// Closing an admin made from a client would close the client: leave it.
	groups, err := admin.DescribeConsumerGroups([]string{r.opts.Settings.Group})
	if err != nil || len(groups) == 0 {
		return 0
	}
	return len(groups[0].Members)
}

// Signal is the latest scaling recommendation (zero until the first sample, or
// when scaling is not configured).
func (r *Runner) Signal() scaling.Signal {
	r.scaleMu.Lock()
	defer r.scaleMu.Unlock()
	return r.signal
}

func (r *Runner) logErrors() {
	for err := range r.group.Errors() {
		r.log.Warn("consumer group error", "err", err)
	}
}

// groupHandler is the sarama.ConsumerGroupHandler of one Runner.
type groupHandler struct {
	r          *Runner
	stopCommit chan struct{}
	committed  chan struct{}
}

var _ sarama.ConsumerGroupHandler = (*groupHandler)(nil)

func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	r := h.r
	r.sessions.Add(1)
	claims := sess.Claims()
	for topic, partitions := range claims {
		if err := r.resolveStart(sess, topic, partitions); err != nil {
			return fmt.Errorf("resolve start offsets of %s: %w", topic, err)
		}
	}
	// Persist the resolved positions now: a group that never commits is invisible to
	// lag tools and KEDA, and a restarted member must not start from "latest" again.
	sess.Commit()
	r.mu.Lock()
	r.assignment = claims
	r.mu.Unlock()
	r.log.Info("partitions assigned", "claims", claims, "generation", sess.GenerationID(), "member", sess.MemberID())
	r.ready.Store(true)

	h.stopCommit = make(chan struct{})
	h.committed = make(chan struct{})
	go h.commitLoop(sess)
	return nil
}

// resolveStart decides where each claimed partition starts and marks it: the
// handler's stored offset when it has one (Resumer), else the group's commit, else
// INITIAL_OFFSET resolved to a concrete offset now; except that a partition without
// a commit in a group that has commits on other partitions of the topic starts at
// the log start.
//
// That partition is one the partition manager added: every partition a group was
// ever assigned has a commit, because Setup commits the resolved positions at once.
// Producers write to a new partition as soon as they are released, before the group
// rebalances onto it, so starting it at "latest" would skip those records.
func (r *Runner) resolveStart(sess sarama.ConsumerGroupSession, topic string, partitions []int32) error {
	var stored map[int32]int64
	if res, ok := r.handler().(Resumer); ok {
		var err error
		if stored, err = res.Resume(sess.Context(), topic, partitions); err != nil {
			return err
		}
	}
	all, err := r.client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", topic, err)
	}
	for _, p := range partitions {
		if !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	committed, err := lag.Committed(r.client, r.opts.Settings.Group, topic, all)
	if err != nil {
		return err
	}
	initial := r.opts.Sarama.Consumer.Offsets.Initial
	for _, c := range committed {
		if c >= 0 {
			initial = sarama.OffsetOldest // the group is known: uncommitted means new
			break
		}
	}
	for _, p := range partitions {
		c := committed[p]
		if s, ok := stored[p]; ok && s >= 0 {
			if s > c {
				sess.MarkOffset(topic, p, s, "")
			} else if s < c {
				sess.ResetOffset(topic, p, s, "")
			}
			continue
		}
		if c >= 0 {
			continue
		}
		off, err := r.client.GetOffset(topic, p, initial)
		if err != nil {
			return fmt.Errorf("initial offset of %s/%d: %w", topic, p, err)
		}
		sess.MarkOffset(topic, p, off, "")
	}
	return nil
}

func (r *Runner) handler() any {
	if r.opts.Batch != nil {
		return r.opts.Batch
	}
	return r.opts.Record
}

func (h *groupHandler) commitLoop(sess sarama.ConsumerGroupSession) {
	defer close(h.committed)
	t := time.NewTicker(config.Millis(h.r.opts.Settings.CommitIntervalMS))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fault.Point(fault.ConsumerBeforeCommit)
			sess.Commit()
		case <-h.stopCommit:
			return
		}
	}
}

// Cleanup runs when the partitions are revoked (rebalance) or on shutdown, after every
// ConsumeClaim returned: it commits everything marked.
func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	if h.stopCommit != nil { // nil when Setup failed before starting the commit loop
		close(h.stopCommit)
		<-h.committed
	}
	sess.Commit()
	h.r.log.Info("partitions released; marked offsets committed", "generation", sess.GenerationID())
	return nil
}

func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	if h.r.opts.Batch != nil {
		return h.r.consumeBatches(sess, claim)
	}
	return h.r.consumeRecords(sess, claim)
}

func (r *Runner) consumeRecords(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := sess.Context()
	idle := r.newIdleSkipper(sess, claim)
	defer idle.stop()
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			start := time.Now()
			if !r.handleWithRetry(ctx, msg) {
				return nil // revoked or shutting down: the record stays unmarked
			}
			fault.Point(fault.ConsumerAfterHandle)
			sess.MarkMessage(msg, "")
			idle.handled(msg.Offset + 1)
			r.observe(msg.Topic, 1, time.Since(start))
		case <-idle.C():
			idle.idle() // past control records that never arrive (see undeliverable.go)
		case <-ctx.Done():
			return nil
		}
	}
}

// handleWithRetry handles msg until it succeeds or is dead-lettered (true), or ctx
// ends first (false).
func (r *Runner) handleWithRetry(ctx context.Context, msg *sarama.ConsumerMessage) bool {
	return r.retry(ctx, func(ctx context.Context) error {
		return r.opts.Record.HandleRecord(ctx, msg)
	}, []*sarama.ConsumerMessage{msg})
}

// retry runs fn with the retry policy; when the policy gives up, the records are
// dead-lettered. It returns false only when ctx ended before the records were done.
func (r *Runner) retry(ctx context.Context, fn func(context.Context) error, records []*sarama.ConsumerMessage) bool {
	s := r.opts.Settings
	backoff := newBackoff(config.Millis(s.RetryBackoffMS), 5*time.Second)
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		giveUp := IsPoison(err) || (!IsTransient(err) && attempt >= s.MaxAttempts)
		if giveUp {
			for _, rec := range records {
				if !r.deadLetter(ctx, rec, err, attempt) {
					return false
				}
			}
			return true
		}
		r.count(r.opts.Metrics, func(m *metrics.Metrics) { m.Retries.WithLabelValues(s.Group).Inc() })
		r.log.Warn("handler failed; retrying", "err", err, "attempt", attempt, "transient", IsTransient(err),
			"topic", records[0].Topic, "partition", records[0].Partition, "offset", records[0].Offset)
		if !backoff.wait(ctx) {
			return false
		}
	}
}

// deadLetter sends rec to the sink, retrying until it is accepted or ctx ends: a
// poison record is never dropped silently.
func (r *Runner) deadLetter(ctx context.Context, rec *sarama.ConsumerMessage, cause error, attempts int) bool {
	reason := "failed"
	if IsPoison(cause) {
		reason = "poison"
	}
	r.log.Error("dead-lettering record", "err", cause, "attempts", attempts, "topic", rec.Topic,
		"partition", rec.Partition, "offset", rec.Offset, "key", string(rec.Key))
	r.count(r.opts.Metrics, func(m *metrics.Metrics) { m.DeadLetters.WithLabelValues(r.opts.Settings.Group, reason).Inc() })
	if r.opts.DeadLetters == nil {
		return true
	}
	backoff := newBackoff(100*time.Millisecond, 5*time.Second)
	for {
		err := r.opts.DeadLetters.DeadLetter(ctx, r.opts.Settings.Group, rec, cause, attempts)
		if err == nil {
			return true
		}
		r.log.Warn("dead-letter topic unavailable; retrying", "err", err)
		if !backoff.wait(ctx) {
			return false
		}
	}
}

func (r *Runner) consumeBatches(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	ctx := sess.Context()
	size := r.opts.Settings.BatchSize
	wait := config.Millis(r.opts.Settings.BatchWaitMS)
	dl := func(ctx context.Context, rec *sarama.ConsumerMessage, cause error) error {
		if !r.deadLetter(ctx, rec, cause, 1) {
			return ctx.Err()
		}
		return nil
	}
	batch := make([]*sarama.ConsumerMessage, 0, size)
	idle := r.newIdleSkipper(sess, claim)
	defer idle.stop()
	for {
		batch = batch[:0]
		// Block for the first record, then take what follows until the batch is full
		// or BATCH_WAIT_MS has passed (with 0: until nothing more is ready now).
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch, msg)
		case <-idle.C():
			idle.idle() // past control records that never arrive (see undeliverable.go)
			continue
		case <-ctx.Done():
			return nil
		}
		open := fill(ctx, claim.Messages(), &batch, size, wait)
		b := Batch{Topic: claim.Topic(), Partition: claim.Partition(), Records: batch, DeadLetter: dl}
		start := time.Now()
		if !r.retry(ctx, func(ctx context.Context) error { return r.opts.Batch.HandleBatch(ctx, b) }, batch) {
			return nil
		}
		fault.Point(fault.ConsumerAfterHandle)
		sess.MarkMessage(batch[len(batch)-1], "")
		idle.handled(batch[len(batch)-1].Offset + 1)
		r.observe(claim.Topic(), len(batch), time.Since(start))
		if !open {
			return nil
		}
	}
}

// fill appends records from msgs to batch until it holds size records or wait has
// passed; it reports false when msgs was closed.
func fill(ctx context.Context, msgs <-chan *sarama.ConsumerMessage, batch *[]*sarama.ConsumerMessage, size int, wait time.Duration) bool {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for len(*batch) < size {
		if deadline == nil {
			select {
			case msg, ok := <-msgs:
				if !ok {
					return false
				}
				*batch = append(*batch, msg)
			default:
				return true
			}
			continue
		}
		select {
		case msg, ok := <-msgs:
			if !ok {
				return false
			}
			*batch = append(*batch, msg)
		case <-deadline:
			return true
		case <-ctx.Done():
			return true
		}
	}
	return true
}

func (r *Runner) observe(topic string, n int, d time.Duration) {
	r.count(r.opts.Metrics, func(m *metrics.Metrics) {
		g := r.opts.Settings.Group
		m.ConsumedRecords.WithLabelValues(g, topic).Add(float64(n))
		m.HandleLatency.WithLabelValues(g).Observe(d.Seconds())
		if r.opts.Batch != nil {
			m.BatchSize.WithLabelValues("consume:" + g).Observe(float64(n))
		}
	})
}

func (r *Runner) count(m *metrics.Metrics, f func(*metrics.Metrics)) {
	if m != nil {
		f(m)
	}
}

// PartitionLabel formats a partition number for metric labels and logs.
func PartitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
