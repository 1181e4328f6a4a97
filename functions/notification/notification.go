// Package notification is the real-time function: it turns each event into a
// notification, one at a time and in order per partition key, stores it in a Redis
// stream per channel and publishes it to live subscribers. A duplicate delivery of
// the same event (source, id) yields no second notification.
//
// It runs in pull mode (a Kafka consumer group, offsets committed after success) or
// push mode (a KafkaSource POSTs each record as a CloudEvent); both call process.
package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"function/shared/consumer"
	"function/shared/fault"
	"function/shared/kafka"
	"function/shared/metrics"
	"function/shared/store"
)

// Function is the notification function in the Knative function shape.
type Function struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	rdb      *redis.Client
	store    *store.Notifications
	render   *Renderer
	svc      *consumer.Service
	runner   *consumer.Runner // svc's runner; nil in push mode
	started  bool
	stopOnce sync.Once
}

// New returns an unstarted function; Start configures it from the environment.
func New() *Function { return &Function{} }

// Start loads the configuration from the environment and starts the function.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	return f.StartWith(ctx, cfg, slog.Default(), metrics.New())
}

// StartWith starts the function with an explicit configuration, logger and metrics
// (the local runner and tests use it).
func (f *Function) StartWith(ctx context.Context, cfg Config, log *slog.Logger, m *metrics.Metrics) error {
	f.cfg, f.log, f.metrics = cfg, log.With("function", "notification"), m
	r, err := NewRenderer(cfg.TitleTemplates, cfg.ChannelRules)
	if err != nil {
		return err
	}
	f.render = r
	if f.rdb, err = store.Connect(ctx, cfg.Redis); err != nil {
		return err
	}
	f.store = store.NewNotifications(f.rdb, cfg.KeyPrefix, cfg.StreamMaxLen, cfg.DedupWindow)
	opts := consumer.Options{Settings: cfg.Consumer, Record: f, Logger: f.log, Metrics: m, Scaling: &f.cfg.Config}
	if cfg.Consumer.BatchSize > 1 {
		// The records a partition has ready go to Redis in one round trip (HandleBatch).
		opts.Record, opts.Batch = nil, f
	}
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
	f.stopOnce.Do(func() {
		f.svc.Stop(ctx)
		_ = f.rdb.Close()
	})
	return nil
}

// Ready reports whether Redis (and in pull mode Kafka) answer and the consumer has
// its partitions and starting positions.
func (f *Function) Ready(context.Context) (bool, error) {
	return f.started && f.svc.Ready(), nil
}

// Alive reports whether the function's background loop still runs.
func (f *Function) Alive(context.Context) (bool, error) {
	return f.svc == nil || f.svc.Alive(), nil
}

// Consumer is the pull-mode consumer (nil in push mode).
func (f *Function) Consumer() *consumer.Runner { return f.runner }

// Store is the notification store the read API serves from.
func (f *Function) Store() *store.Notifications { return f.store }

// Handle processes one CloudEvent (push mode, or a direct call). It returns no
// response event.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	key, _ := e.Extensions()["partitionkey"].(string)
	_, err := f.process(ctx, &e, key, time.Time{})
	return nil, err
}

// HandleRecord processes one Kafka record (pull mode).
func (f *Function) HandleRecord(ctx context.Context, r *sarama.ConsumerMessage) error {
	e, err := kafka.DecodeRecord(ctx, r)
	if err != nil {
		return consumer.Poison(err)
	}
	stored, err := f.process(ctx, e, string(r.Key), r.Timestamp)
	if err != nil {
		return err
	}
	f.log.Debug("notified", "event_id", e.ID(), "topic", r.Topic, "partition", r.Partition,
		"offset", r.Offset, "duplicate", !stored, "traceparent", e.Extensions()["traceparent"])
	return nil
}

// HandleBatch processes consecutive records of one partition (pull mode with
// NOTIFICATION_BATCH_SIZE > 1): each is rendered as HandleRecord would, and all are
// stored with one Redis round trip, in offset order, so per-key order and
// deduplication hold as record by record. A record that is not a valid CloudEvent is
// dead-lettered on its own and the rest go on.
func (f *Function) HandleBatch(ctx context.Context, b consumer.Batch) error {
	ns := make([]store.Notification, 0, len(b.Records))
	starts := make([]time.Time, 0, len(b.Records))
	for _, r := range b.Records {
		e, err := kafka.DecodeRecord(ctx, r)
		if err == nil {
			if verr := e.Validate(); verr != nil {
				err = fmt.Errorf("%w: %v", errInvalid, verr)
			}
		}
		if err != nil {
			if err := b.DeadLetter(ctx, r, consumer.Poison(err)); err != nil {
				return consumer.Transient(err)
			}
			continue
		}
		ns = append(ns, f.render.Render(e, string(r.Key)))
		start := e.Time()
		if start.IsZero() {
			start = r.Timestamp
		}
		starts = append(starts, start)
	}
	stored, err := f.store.PutMany(ctx, ns)
	if err != nil {
		return consumer.Transient(err)
	}
	fault.Point(fault.NotificationAfterPut)
	group := f.cfg.Consumer.Group
	for i, ok := range stored {
		switch {
		case !ok:
			f.metrics.Duplicates.WithLabelValues(group).Inc()
		case !starts[i].IsZero():
			f.metrics.EndToEndLatency.WithLabelValues(group).Observe(time.Since(starts[i]).Seconds())
		}
	}
	return nil
}

var _ consumer.BatchHandler = (*Function)(nil)

// errInvalid marks an event that can never become a notification.
var errInvalid = errors.New("invalid event")

// process renders and stores the notification of e. It reports whether a
// notification was stored (false: the event was seen before). The end-to-end
// latency runs from the event's time, else from received (the record's timestamp).
func (f *Function) process(ctx context.Context, e *event.Event, key string, received time.Time) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, consumer.Poison(fmt.Errorf("%w: %v", errInvalid, err))
	}
	n := f.render.Render(e, key)
	stored, err := f.store.Put(ctx, n)
	if err != nil {
		return false, consumer.Transient(err)
	}
	fault.Point(fault.NotificationAfterPut)
	group := f.cfg.Consumer.Group
	if !stored {
		f.metrics.Duplicates.WithLabelValues(group).Inc()
		return false, nil
	}
	start := e.Time()
	if start.IsZero() {
		start = received
	}
	if !start.IsZero() {
		f.metrics.EndToEndLatency.WithLabelValues(group).Observe(time.Since(start).Seconds())
	}
	return true, nil
}
