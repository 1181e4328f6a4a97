// Package sim is a deterministic, discrete-time (1 s steps) model of tide's consumers
// under autoscaling, to compare replica policies and the partition planner on traffic
// traces without a cluster.
//
// # Model
//
// Each second the producer emits the trace's rate, times a jitter drawn from a
// seeded generator (the same draws for every policy). Consumers each process up to
// Config.ConsumerRate events/s; only min(ready replicas, partitions) of them have a
// partition, the rest sit idle. Lag is the backlog: produced minus consumed (offsets
// are taken as committed when processed). A new pod is ready Config.StartDelay after
// the autoscaler asks for it; a removed pod leaves at once. Whenever the set of ready
// consumers changes the group rebalances and nobody consumes for
// Config.RebalancePause (sarama's default eager rebalance stops every member).
//
// The autoscaler is KEDA plus the HPA with their defaults (see autoscaler). Two
// policies feed it: PolicyRawLag is KEDA's Kafka scaler on total lag with lagThreshold;
// PolicyTide is KEDA's metrics-api scaler reading scaling.Signal.MetricValue with
// targetValue 1, the Estimator fed a Sample every Config.SampleInterval.
//
// # Measures
//
//   - Replica changes: how many times the Deployment's replica count changed.
//   - Time to capacity: a shortfall begins when the trace's nominal rate rises above
//     the running capacity, min(ready replicas, partitions) × ConsumerRate, and ends
//     at the first second when that capacity is at least the rate again. Time to
//     capacity is the longest shortfall of the run (a shortfall still open at the end
//     counts until the end); ShortfallTotal is their sum. Jitter is left out so that
//     a noisy second is not a load increase.
//   - Peak lag and final lag, in events.
package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"function/shared/scaling"
)

// Policy selects what drives the autoscaler.
type Policy string

// Policies.
const (
	// PolicyRawLag is KEDA's Kafka scaler: total lag per lagThreshold.
	PolicyRawLag Policy = "raw-lag"
	// PolicyTide is KEDA's metrics-api scaler on tide's Estimator.
	PolicyTide Policy = "tide"
)

// Policies lists every policy in report order.
func Policies() []Policy { return []Policy{PolicyRawLag, PolicyTide} }

// Config is the simulated system. DefaultConfig gives KEDA's and the HPA's defaults.
type Config struct {
	// ConsumerRate is events/s one consumer processes (C).
	ConsumerRate int64
	// Partitions is the topic's partition count (P).
	Partitions int
	// LagThreshold is KEDA's lagThreshold, and tide's SCALING_LAG_THRESHOLD.
	LagThreshold int64
	// MinReplicas and MaxReplicas are the ScaledObject's minReplicaCount and
	// maxReplicaCount (KEDA defaults 0 and 100; 1 here: scale to zero is off).
	MinReplicas, MaxReplicas int
	// PollInterval is KEDA's pollingInterval (30 s): how often the metric is read.
	PollInterval time.Duration
	// SyncPeriod is the HPA's sync period (15 s, kube-controller-manager
	// --horizontal-pod-autoscaler-sync-period): how often it evaluates the metric it
	// last got.
	SyncPeriod time.Duration
	// CooldownPeriod is KEDA's cooldownPeriod (300 s), used only when MinReplicas is 0.
	CooldownPeriod time.Duration
	// Tolerance is the HPA's tolerance (0.1).
	Tolerance float64
	// ScaleDownStabilization is the HPA's scale-down stabilization window (300 s).
	ScaleDownStabilization time.Duration
	// StartDelay is how long a new pod takes to consume.
	StartDelay time.Duration
	// RebalancePause is how long the group stops consuming when its members change.
	RebalancePause time.Duration
	// SampleInterval is how often tide samples the group for its Estimator.
	SampleInterval time.Duration
	// Window is tide's SCALING_WINDOW_MS.
	Window time.Duration
	// ReplicaRate is tide's SCALING_REPLICA_RATE: a known per-replica capacity; 0
	// starts cold and learns it.
	ReplicaRate float64
	// Jitter is the produce rate's relative noise: each second's rate is multiplied
	// by a uniform draw from [1−Jitter, 1+Jitter].
	Jitter float64
	// Seed seeds the jitter.
	Seed uint64
}

// DefaultConfig is the system the report and the tests use.
func DefaultConfig() Config {
	return Config{
		ConsumerRate:           100,
		Partitions:             12,
		LagThreshold:           100,
		MinReplicas:            1,
		MaxReplicas:            100,
		PollInterval:           30 * time.Second,
		SyncPeriod:             15 * time.Second,
		CooldownPeriod:         300 * time.Second,
		Tolerance:              0.1,
		ScaleDownStabilization: 300 * time.Second,
		StartDelay:             10 * time.Second,
		RebalancePause:         3 * time.Second,
		SampleInterval:         5 * time.Second,
		Window:                 60 * time.Second,
		Jitter:                 0.1,
		Seed:                   1,
	}
}

// Validate rejects a configuration the model cannot run.
func (c Config) Validate() error {
	switch {
	case c.ConsumerRate < 1:
		return fmt.Errorf("sim: consumer rate %d must be at least 1", c.ConsumerRate)
	case c.Partitions < 1:
		return fmt.Errorf("sim: partitions %d must be at least 1", c.Partitions)
	case c.LagThreshold < 1:
		return fmt.Errorf("sim: lag threshold %d must be at least 1", c.LagThreshold)
	case c.MinReplicas < 0 || c.MaxReplicas < max(c.MinReplicas, 1):
		return fmt.Errorf("sim: replicas %d..%d out of range", c.MinReplicas, c.MaxReplicas)
	case c.PollInterval < time.Second || c.SyncPeriod < time.Second || c.SampleInterval < time.Second:
		return fmt.Errorf("sim: poll interval %s, sync period %s and sample interval %s must be at least 1s", c.PollInterval, c.SyncPeriod, c.SampleInterval)
	case c.Window < time.Second:
		return fmt.Errorf("sim: window %s must be at least 1s", c.Window)
	case c.ReplicaRate < 0:
		return fmt.Errorf("sim: replica rate %g must not be negative", c.ReplicaRate)
	case c.Jitter < 0 || c.Jitter >= 1:
		return fmt.Errorf("sim: jitter %g must be in [0, 1)", c.Jitter)
	case c.Tolerance < 0 || c.StartDelay < 0 || c.RebalancePause < 0 || c.ScaleDownStabilization < 0 || c.CooldownPeriod < 0:
		return fmt.Errorf("sim: negative tolerance or duration")
	}
	return nil
}

func (c Config) scaling() scaling.Config {
	sc := scaling.DefaultConfig()
	sc.LagThreshold = c.LagThreshold
	sc.WindowMS = int(c.Window / time.Millisecond)
	sc.MinReplicas = c.MinReplicas
	sc.MaxReplicas = c.MaxReplicas
	sc.ReplicaRatePerSec = c.ReplicaRate
	return sc
}

// Change is one change of the Deployment's replicas.
type Change struct {
	At    time.Duration `json:"-"`
	AtSec int           `json:"at_s"`
	From  int           `json:"from"`
	To    int           `json:"to"`
}

// Result is one trace run under one policy.
type Result struct {
	Trace  string `json:"trace"`
	Policy Policy `json:"policy"`
	// ReplicaChanges counts changes of the Deployment's replica count.
	ReplicaChanges int `json:"replica_changes"`
	// TimeToCapacity is the longest shortfall (see the package doc).
	TimeToCapacity time.Duration `json:"-"`
	// ShortfallTotal is the time the running capacity spent below the nominal rate.
	ShortfallTotal time.Duration `json:"-"`
	// Shortfalls counts shortfalls.
	Shortfalls int   `json:"shortfalls"`
	PeakLag    int64 `json:"peak_lag"`
	FinalLag   int64 `json:"final_lag"`
	// PeakReplicas is the most replicas asked for; MeanReplicas the time average of
	// the replicas asked for (the cost).
	PeakReplicas int      `json:"peak_replicas"`
	MeanReplicas float64  `json:"mean_replicas"`
	Changes      []Change `json:"changes,omitempty"`
}

// MarshalJSON writes the durations as whole seconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		TimeToCapacitySec int `json:"time_to_capacity_s"`
		ShortfallTotalSec int `json:"shortfall_total_s"`
	}{plain(r), int(r.TimeToCapacity / time.Second), int(r.ShortfallTotal / time.Second)})
}

// Start is the simulated wall-clock time of second 0, for Samples and Decisions.
var Start = time.Date(2025, time.January, 6, 9, 0, 0, 0, time.UTC)

// world is the simulated topic, consumer group and Deployment.
type world struct {
	cfg        Config
	trace      Trace
	rng        *rand.Rand
	carry      float64 // fractional events not yet produced
	produced   int64
	consumed   int64
	lag        int64
	partitions int
	readyAt    []time.Duration // one per pod of the Deployment
	ready      int
	pauseUntil time.Duration

	res          Result
	inShortfall  bool
	shortStart   time.Duration
	replicaTotal float64
}

func newWorld(cfg Config, tr Trace, policy Policy) *world {
	w := &world{
		cfg:        cfg,
		trace:      tr,
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x7469646573696d)),
		partitions: cfg.Partitions,
		res:        Result{Trace: tr.Name, Policy: policy},
	}
	// Start at 80% utilization, as a settled deployment would.
	initial := int(math.Ceil(tr.Rate(0) / 0.8 / float64(cfg.ConsumerRate)))
	initial = min(max(initial, cfg.MinReplicas, 1), cfg.MaxReplicas, cfg.Partitions)
	w.readyAt = make([]time.Duration, initial)
	w.ready = initial
	w.res.PeakReplicas = initial
	return w
}

func (w *world) replicas() int { return len(w.readyAt) }

// scale sets the Deployment's replicas at now: new pods become ready after the start
// delay; removed pods go at once, the not-yet-ready ones first (as a ReplicaSet picks).
func (w *world) scale(now time.Duration, to int) {
	from := w.replicas()
	if to == from {
		return
	}
	w.res.ReplicaChanges++
	w.res.Changes = append(w.res.Changes, Change{At: now, AtSec: int(now / time.Second), From: from, To: to})
	w.res.PeakReplicas = max(w.res.PeakReplicas, to)
	for len(w.readyAt) < to {
		w.readyAt = append(w.readyAt, now+w.cfg.StartDelay)
	}
	// readyAt is in ascending order: the newest pods are at the end.
	w.readyAt = w.readyAt[:to]
	w.settle(now)
}

// settle recounts the ready consumers at now; a change of members pauses the group.
func (w *world) settle(now time.Duration) {
	ready := 0
	for _, at := range w.readyAt {
		if at <= now {
			ready++
		}
	}
	if ready != w.ready {
		w.ready = ready
		w.pauseUntil = now + w.cfg.RebalancePause
	}
}

// repartition changes the partition count at now; the group rebalances.
func (w *world) repartition(now time.Duration, to int) {
	w.partitions = to
	w.pauseUntil = now + w.cfg.RebalancePause
}

// capacity is the events/s the ready consumers can process.
func (w *world) capacity() int64 {
	return int64(min(w.ready, w.partitions)) * w.cfg.ConsumerRate
}

// step runs second t (from t to t+1).
func (w *world) step(t time.Duration) {
	w.settle(t)
	nominal := w.trace.Rate(t)
	jitter := 1 + w.cfg.Jitter*(2*w.rng.Float64()-1)
	w.carry += nominal * jitter
	n := int64(w.carry)
	w.carry -= float64(n)
	w.produced += n
	w.lag += n
	if t >= w.pauseUntil {
		c := min(w.lag, w.capacity())
		w.consumed += c
		w.lag -= c
	}
	w.res.PeakLag = max(w.res.PeakLag, w.lag)
	w.replicaTotal += float64(w.replicas())

	short := nominal > float64(w.capacity())
	switch {
	case short && !w.inShortfall:
		w.inShortfall, w.shortStart = true, t
		w.res.Shortfalls++
	case !short && w.inShortfall:
		w.endShortfall(t)
	}
}

func (w *world) endShortfall(t time.Duration) {
	w.inShortfall = false
	d := t - w.shortStart
	w.res.ShortfallTotal += d
	w.res.TimeToCapacity = max(w.res.TimeToCapacity, d)
}

func (w *world) sample(now time.Duration) scaling.Sample {
	return scaling.Sample{
		At:         Start.Add(now),
		Lag:        w.lag,
		Produced:   w.produced,
		Consumed:   w.consumed,
		Partitions: w.partitions,
		Replicas:   w.ready,
	}
}

func (w *world) finish() Result {
	end := w.trace.Duration
	if w.inShortfall {
		w.endShortfall(end)
	}
	w.res.FinalLag = w.lag
	w.res.MeanReplicas = w.replicaTotal / end.Seconds()
	return w.res
}

// driver is one policy's way to ask the autoscaler, sampling the world as it goes.
type driver struct {
	policy Policy
	est    *scaling.Estimator
	as     *autoscaler
	metric float64 // the value KEDA read at its last poll
	target float64
}

func newDriver(cfg Config, policy Policy) (*driver, error) {
	d := &driver{policy: policy, as: &autoscaler{cfg: cfg}}
	switch policy {
	case PolicyRawLag:
	case PolicyTide:
		est, err := scaling.NewEstimator(cfg.scaling())
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		d.est = est
	default:
		return nil, fmt.Errorf("sim: unknown policy %q", policy)
	}
	return d, nil
}

// tick runs the policy's periodic work at now (a whole second): sampling, at each
// polling interval KEDA's read of the metric, at each sync period the HPA.
func (d *driver) tick(w *world, now time.Duration) {
	cfg := w.cfg
	if d.est != nil && now%cfg.SampleInterval == 0 {
		d.est.Observe(w.sample(now))
	}
	if now%cfg.PollInterval == 0 {
		switch d.policy {
		case PolicyRawLag:
			d.metric, d.target = kafkaLagMetric(w.lag, cfg.LagThreshold, w.partitions), float64(cfg.LagThreshold)
		case PolicyTide:
			d.metric, d.target = d.est.Signal(w.ready).MetricValue(), 1
		}
	}
	if now%cfg.SyncPeriod == 0 && d.target > 0 {
		w.scale(now, d.as.evaluate(now, w.replicas(), d.metric, d.target))
	}
}

// Run simulates tr under policy.
func Run(cfg Config, tr Trace, policy Policy) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	d, err := newDriver(cfg, policy)
	if err != nil {
		return Result{}, err
	}
	w := newWorld(cfg, tr, policy)
	for t := time.Duration(0); t < tr.Duration; t += time.Second {
		w.step(t)
		d.tick(w, t+time.Second)
	}
	return w.finish(), nil
}

// RunAll simulates every trace under every policy, in trace then policy order.
func RunAll(cfg Config, traces []Trace) ([]Result, error) {
	var out []Result
	for _, tr := range traces {
		for _, p := range Policies() {
			r, err := Run(cfg, tr, p)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}
