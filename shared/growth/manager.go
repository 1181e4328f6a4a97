package growth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"function/shared/kafka"
	"function/shared/lag"
	"function/shared/metrics"
	"function/shared/partitions"
	"function/shared/scaling"
)

// Manager is the partition manager's loop: every sample interval it reads the
// topic's produce rate and each group's lag, asks the Planner, logs the decision
// with its inputs and counts it, and runs a growth in the background when the
// Planner asks for one (observations meanwhile are "in progress").
type Manager struct {
	cfg     ManagerConfig
	client  sarama.Client
	rdb     *redis.Client
	keys    Keys
	planner *partitions.Planner
	est     *scaling.Estimator
	grower  *Grower
	log     *slog.Logger
	metrics *metrics.Metrics

	growing  atomic.Bool
	wg       sync.WaitGroup
	observed atomic.Int64 // unix ns of the last successful observation
	ticked   atomic.Int64 // unix ns of the last loop iteration

	mu         sync.Mutex
	last       *partitions.Decision
	lastChange *Change
}

// NewManager returns a manager of cfg.Topic. client, admin and rdb stay the caller's.
func NewManager(cfg ManagerConfig, client sarama.Client, admin sarama.ClusterAdmin, rdb *redis.Client, log *slog.Logger, m *metrics.Metrics) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	planner, err := partitions.NewPlanner(cfg.Config)
	if err != nil {
		return nil, err
	}
	sc := scaling.DefaultConfig()
	sc.WindowMS = cfg.RateWindowMS
	est, err := scaling.NewEstimator(sc)
	if err != nil {
		return nil, fmt.Errorf("PARTITION_RATE_WINDOW_MS: %w", err)
	}
	log = log.With("topic", cfg.Topic)
	opts := cfg.GrowOptions()
	opts.Logger = log
	return &Manager{
		cfg: cfg, client: client, rdb: rdb, keys: cfg.Coordination.Keys(cfg.Topic),
		planner: planner, est: est, log: log, metrics: m,
		grower: NewGrower(rdb, cfg.Coordination, client, admin, cfg.Topic, opts),
	}, nil
}

// Run observes every sample interval until ctx ends, then waits for a growth under
// way to finish (it releases the publishers whatever happens).
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.SampleInterval())
	defer t.Stop()
	defer m.wg.Wait()
	for {
		m.ticked.Store(time.Now().UnixNano())
		if _, err := m.Observe(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("partition manager: cannot observe the load; no decision this time", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// Observe reads the load once, decides, logs and counts the decision, and starts a
// growth when the decision is to grow. It is Run's step, exported for tests.
func (m *Manager) Observe(ctx context.Context) (partitions.Decision, error) {
	in, err := m.inputs(ctx, time.Now())
	if err != nil {
		return partitions.Decision{}, err
	}
	d := m.planner.Decide(in)
	m.log.LogAttrs(ctx, slog.LevelInfo, "partition decision", d.LogAttrs()...)
	m.metrics.PartitionDecision.WithLabelValues(d.Action, d.Reason).Inc()
	m.metrics.TopicPartitions.WithLabelValues(m.cfg.Topic).Set(float64(in.Partitions))
	m.observed.Store(time.Now().UnixNano())
	m.mu.Lock()
	m.last = &d
	m.mu.Unlock()
	if d.Taken() {
		m.grow(ctx, d.Target)
	}
	return d, nil
}

// inputs reads one observation: the partition count, each consuming group's lag,
// and the produce rate from the sum of the high-water marks over time.
func (m *Manager) inputs(ctx context.Context, now time.Time) (partitions.Inputs, error) {
	n, err := kafka.PartitionCount(m.client, m.cfg.Topic)
	if err != nil {
		return partitions.Inputs{}, err
	}
	in := partitions.Inputs{At: now, Partitions: n, LagByGroup: map[string]int64{}}
	var produced, consumed, maxLag int64
	for i, g := range m.cfg.Groups {
		ps, err := lag.Fetch(m.client, g, m.cfg.Topic)
		if err != nil {
			return partitions.Inputs{}, err
		}
		if i == 0 {
			for _, p := range ps {
				produced += p.HighWaterMark
				consumed += p.HighWaterMark - p.Lag
			}
		}
		// A group that never committed on the topic does not consume it (yet): its
		// "lag" would be the whole topic and would grow partitions for nobody.
		committed := false
		for _, p := range ps {
			committed = committed || p.Committed >= 0
		}
		if committed {
			in.LagByGroup[g] = lag.Total(ps)
			maxLag = max(maxLag, in.LagByGroup[g])
		}
	}
	m.est.Observe(scaling.Sample{At: now, Lag: maxLag, Produced: produced, Consumed: consumed, Partitions: n})
	in.ProduceRatePerSec = m.est.Signal(1).ProduceRatePerSec
	in.InProgress = m.growing.Load()
	if !in.InProgress {
		// A hold this manager did not start (a second manager, a crash's leftover
		// before its deadline) is a change in progress too.
		st, err := ReadState(ctx, m.rdb, m.keys)
		if err != nil {
			return partitions.Inputs{}, err
		}
		in.InProgress = st.Holding()
	}
	return in, nil
}

func (m *Manager) grow(ctx context.Context, target int) {
	m.growing.Store(true)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.growing.Store(false)
		ch := m.grower.Grow(ctx, target)
		level := slog.LevelInfo
		if ch.Outcome != OutcomeGrown {
			level = slog.LevelWarn
		}
		m.log.LogAttrs(ctx, level, "partition change", ch.LogAttrs()...)
		if ch.Epoch != 0 { // publishes were held
			m.metrics.PartitionPause.WithLabelValues(ch.Outcome).Observe(ch.Pause.Seconds())
		}
		m.metrics.TopicPartitions.WithLabelValues(m.cfg.Topic).Set(float64(ch.To))
		m.mu.Lock()
		m.lastChange = &ch
		m.mu.Unlock()
	}()
}

// Growing says a partition change is under way.
func (m *Manager) Growing() bool { return m.growing.Load() }

// Status is what the manager's status endpoint shows.
type Status struct {
	Topic        string               `json:"topic"`
	Growing      bool                 `json:"growing"`
	LastDecision *partitions.Decision `json:"last_decision,omitempty"`
	LastChange   *Change              `json:"last_change,omitempty"`
}

// Status returns the last decision and the last change.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{Topic: m.cfg.Topic, Growing: m.growing.Load(), LastDecision: m.last, LastChange: m.lastChange}
}

// Ready says the last observation succeeded within three sample intervals.
func (m *Manager) Ready() bool {
	return time.Since(time.Unix(0, m.observed.Load())) < 3*m.cfg.SampleInterval()
}

// Alive says the loop ran within three sample intervals (a slow Kafka delays an
// observation; a wedged loop stops them).
func (m *Manager) Alive() bool {
	t := m.ticked.Load()
	return t == 0 || time.Since(time.Unix(0, t)) < 3*m.cfg.SampleInterval()+time.Minute
}
