package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"function/shared/config"
	"function/shared/health"
	"function/shared/kafka"
)

// ServiceOptions configure the lifecycle a consumer function shares.
type ServiceOptions struct {
	Kafka config.Kafka
	// Redis is the function's client; the service watches it (and leaves closing it
	// to the function, which made it).
	Redis *redis.Client
	// Pull runs the consumer group; without it (push mode) only Redis is watched.
	Pull bool
	// Runner is the runner's configuration: Settings, Record or Batch, Scaling,
	// Logger, Metrics. Brokers, Sarama, Topics and DeadLetters are filled in here.
	Runner Options
	// Attach, when set, is given the runner before it starts consuming, so a handler
	// that needs the runner (its client, for topic IDs) has it on its first call.
	Attach func(*Runner)
}

// Service is what notification and analytics run besides their handlers: a health
// watcher over Redis (and Kafka in pull mode) and, in pull mode, the topics, the
// dead-letter producer and the consumer-group runner.
type Service struct {
	runner  *Runner
	dlq     *kafka.DeadLetters
	watcher *health.Watcher
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stop    sync.Once
}

// StartService creates the topics when missing, starts the consumer group (pull mode)
// and the health watcher, and returns once the first probe has run.
func StartService(ctx context.Context, o ServiceOptions) (*Service, error) {
	s := &Service{}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	m, log := o.Runner.Metrics, o.Runner.Logger
	checks := []health.Check{{Name: "redis", Probe: func(ctx context.Context) error { return o.Redis.Ping(ctx).Err() }, Up: m.RedisUp, Reconnects: m.RedisReconnects}}
	if o.Pull {
		if err := s.startRunner(runCtx, o); err != nil {
			cancel()
			return nil, err
		}
		checks = append(checks, health.Check{Name: "kafka", Probe: kafka.Probe(s.runner.Client(), o.Kafka.Topic), Up: m.KafkaUp, Reconnects: m.KafkaReconnects})
	}
	s.watcher = health.NewWatcher(log, 5*time.Second, checks...)
	s.watcher.ProbeNow(ctx)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watcher.Run(runCtx) }()
	return s, nil
}

func (s *Service) startRunner(ctx context.Context, o ServiceOptions) error {
	base, err := kafka.NewConfig(o.Kafka)
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(o.Kafka, base); err != nil {
		return err
	}
	if s.dlq, err = kafka.NewDeadLetters(o.Kafka.Brokers, base, o.Kafka.DeadLetterTopic); err != nil {
		return err
	}
	ro := o.Runner
	ro.Brokers, ro.Sarama, ro.Topics, ro.DeadLetters = o.Kafka.Brokers, kafka.ConsumerConfig(base, ro.Settings), []string{o.Kafka.Topic}, s.dlq
	if s.runner, err = New(ro); err != nil {
		_ = s.dlq.Close()
		return err
	}
	if o.Attach != nil {
		o.Attach(s.runner)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.runner.Run(ctx); err != nil {
			ro.Logger.Error("consumer stopped", "err", err)
		}
	}()
	return nil
}

// Stop stops consuming (committing what was handled) and the watcher, waiting at most
// until ctx ends.
func (s *Service) Stop(ctx context.Context) {
	s.stop.Do(func() {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		if s.dlq != nil {
			_ = s.dlq.Close()
		}
	})
}

// Ready reports whether the dependencies answer and, in pull mode, the consumer has
// its partitions and starting positions.
func (s *Service) Ready() bool {
	return s.watcher.Up() && (s.runner == nil || s.runner.Ready())
}

// Alive reports whether the background loop still runs.
func (s *Service) Alive() bool { return s.watcher.Alive() }
