// Package analytics is the batch function: it folds events into aggregates in Redis
// (counts per type, per source, per minute, distinct subjects), a partition's batch at
// a time, exactly once.
//
// Exactly once: each batch's aggregate update and the offset after it are written in
// one Lua script, keyed by the topic's ID, so a replayed record is skipped and Redis
// holds the truth: on assignment the consumer resumes from the offsets stored there.
// It also commits to Kafka so lag is visible to Kafka's tools and KEDA. An event
// (source, id) seen before is counted once, whichever record or request carried it.
package analytics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"function/shared/consumer"
	"function/shared/fault"
	"function/shared/kafka"
	"function/shared/metrics"
	"function/shared/store"
)

// Function is the analytics function in the Knative function shape.
type Function struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	rdb     *redis.Client
	store   *store.Analytics
	svc     *consumer.Service
	runner  *consumer.Runner // svc's runner; nil in push mode
	started bool
	stop    sync.Once

	topicMu  sync.Mutex
	topicIDs map[string]string
}

var (
	_ consumer.BatchHandler = (*Function)(nil)
	_ consumer.Resumer      = (*Function)(nil)
)

// New returns an unstarted function; Start configures it from the environment.
func New() *Function { return &Function{topicIDs: map[string]string{}} }

// Start loads the configuration from the environment and starts the function.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	return f.StartWith(ctx, cfg, slog.Default(), metrics.New())
}

// StartWith starts the function with an explicit configuration, logger and metrics.
func (f *Function) StartWith(ctx context.Context, cfg Config, log *slog.Logger, m *metrics.Metrics) error {
	f.cfg, f.log, f.metrics = cfg, log.With("function", "analytics"), m
	var err error
	if f.rdb, err = store.Connect(ctx, cfg.Redis); err != nil {
		return err
	}
	f.store = store.NewAnalytics(f.rdb, cfg.KeyPrefix, cfg.DedupWindow)
	opts := consumer.Options{Settings: cfg.Consumer, Batch: f, Logger: f.log, Metrics: m, Scaling: &f.cfg.Config}
	if f.svc, err = consumer.StartService(ctx, consumer.ServiceOptions{Kafka: cfg.Kafka, Redis: f.rdb, Pull: cfg.Mode == "pull", Runner: opts,
		Attach: func(r *consumer.Runner) { f.runner = r }}); err != nil {
		_ = f.rdb.Close()
		return err
	}
	f.started = true
	return nil
}

// Stop stops consuming (committing what was handled) and closes the connections.
func (f *Function) Stop(ctx context.Context) error {
	if !f.started {
		return nil
	}
	f.stop.Do(func() {
		f.svc.Stop(ctx)
		_ = f.rdb.Close()
	})
	return nil
}

// Ready reports whether the dependencies answer and the consumer has its partitions
// and starting positions.
func (f *Function) Ready(context.Context) (bool, error) {
	return f.started && f.svc.Ready(), nil
}

// Alive reports whether the function's background loop still runs.
func (f *Function) Alive(context.Context) (bool, error) {
	return f.svc == nil || f.svc.Alive(), nil
}

// Consumer is the pull-mode consumer (nil in push mode).
func (f *Function) Consumer() *consumer.Runner { return f.runner }

// Store is the aggregate store the read API serves from.
func (f *Function) Store() *store.Analytics { return f.store }

// Handle counts one CloudEvent (push mode): deduplicated by (source, id) only, since
// a KafkaSource forwards no offsets.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if err := e.Validate(); err != nil {
		return nil, consumer.Poison(fmt.Errorf("invalid event: %w", err))
	}
	fc := fact(&e, -1)
	if fc.Time.IsZero() {
		fc.Time = time.Now()
	}
	res, err := f.store.Apply(ctx, f.cfg.Consumer.Group, "", -1, 0, []store.Fact{fc})
	if err != nil {
		return nil, consumer.Transient(err)
	}
	f.observe(res, []store.Fact{fc})
	return nil, nil
}

// HandleBatch decodes a partition's batch, dead-letters the records that are not
// valid CloudEvents, and applies the rest with the offset after the batch.
func (f *Function) HandleBatch(ctx context.Context, b consumer.Batch) error {
	topicID, err := f.topicID(b.Topic)
	if err != nil {
		return consumer.Transient(err)
	}
	facts := make([]store.Fact, 0, len(b.Records))
	// Only the counted attributes are read, not the whole event: the same records are
	// accepted and refused (and dead-lettered with the same error) as by DecodeRecord.
	dec := kafka.NewFactsDecoder()
	for _, r := range b.Records {
		x, err := dec.Decode(ctx, r)
		if err != nil {
			if err := b.DeadLetter(ctx, r, consumer.Poison(err)); err != nil {
				return consumer.Transient(err)
			}
			continue
		}
		fc := store.Fact{Source: x.Source, ID: x.ID, Type: x.Type, Subject: x.Subject, Time: x.Time, Offset: r.Offset}
		if fc.Time.IsZero() {
			fc.Time = r.Timestamp // no time attribute: count it when Kafka got it
		}
		facts = append(facts, fc)
	}
	next := b.Records[len(b.Records)-1].Offset + 1
	res, err := f.store.Apply(ctx, f.cfg.Consumer.Group, topicID, b.Partition, next, facts)
	if err != nil {
		return consumer.Transient(err)
	}
	fault.Point(fault.AnalyticsAfterApply)
	f.observe(res, facts)
	f.log.Debug("batch applied", "topic", b.Topic, "partition", b.Partition, "first_offset", b.Records[0].Offset,
		"next_offset", next, "applied", res.Applied, "duplicates", res.Duplicates, "replayed", res.Replayed)
	return nil
}

// Resume returns the offsets stored in Redis for topic's current ID: Redis, not
// Kafka's commit, says where the aggregates end.
func (f *Function) Resume(ctx context.Context, topic string, _ []int32) (map[int32]int64, error) {
	f.topicMu.Lock()
	delete(f.topicIDs, topic) // look the ID up again: the topic may have been recreated
	f.topicMu.Unlock()
	id, err := f.topicID(topic)
	if err != nil {
		return nil, err
	}
	return f.store.Offsets(ctx, f.cfg.Consumer.Group, id)
}

func (f *Function) topicID(topic string) (string, error) {
	f.topicMu.Lock()
	defer f.topicMu.Unlock()
	if id, ok := f.topicIDs[topic]; ok {
		return id, nil
	}
	id, err := kafka.TopicID(f.runner.Client(), topic)
	if err != nil {
		return "", err
	}
	f.topicIDs[topic] = id
	return id, nil
}

func (f *Function) observe(res store.ApplyResult, facts []store.Fact) {
	g := f.cfg.Consumer.Group
	if res.Duplicates+res.Replayed > 0 {
		f.metrics.Duplicates.WithLabelValues(g).Add(float64(res.Duplicates + res.Replayed))
	}
	now, latency := time.Now(), f.metrics.EndToEndLatency.WithLabelValues(g)
	for _, fc := range facts {
		if !fc.Time.IsZero() {
			latency.Observe(now.Sub(fc.Time).Seconds())
		}
	}
}

func fact(e *event.Event, offset int64) store.Fact {
	return store.Fact{Source: e.Source(), ID: e.ID(), Type: e.Type(), Subject: e.Subject(), Time: e.Time(), Offset: offset}
}
