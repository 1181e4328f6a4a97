package sim

import (
	"fmt"
	"time"

	"function/shared/partitions"
)

// Group is the consumer group the partition simulation reports lag for.
const Group = "notifications-service"

// PartitionConfig is the partition manager's loop around the Planner.
type PartitionConfig struct {
	// Planner configures the planner; its Profile is the one observed.
	Planner partitions.Config
	// Initial is the topic's partitions at the start; 0 means the profile's minimum.
	Initial int
	// ObserveInterval is how often the manager reads the load and decides.
	ObserveInterval time.Duration
	// GrowDuration is how long a growth is in progress: publishes held, consumers
	// draining, the new count reaching every client.
	GrowDuration time.Duration
	// Disabled keeps the partitions at Initial: the baseline to compare with.
	Disabled bool
	// Warm gives tide's Estimator the consumers' capacity from the start
	// (SCALING_REPLICA_RATE), as a scaler that has been running has learned it, so
	// that the run shows the partitions rather than the scaler's cold start.
	Warm bool
}

// DefaultPartitionConfig is the manager the report and the tests use.
func DefaultPartitionConfig() PartitionConfig {
	return PartitionConfig{
		Planner:         partitions.DefaultConfig(),
		ObserveInterval: 10 * time.Second,
		GrowDuration:    20 * time.Second,
		Warm:            true,
	}
}

// PartitionResult is one trace run with the partition manager and tide's scaling.
type PartitionResult struct {
	Trace string `json:"trace"`
	// Scaling is the replica side of the run (PolicyTide).
	Scaling Result `json:"scaling"`
	// Decisions holds every decision, taken or declined.
	Decisions []partitions.Decision `json:"-"`
	// InitialPartitions and FinalPartitions bound the topic's growth.
	InitialPartitions int `json:"initial_partitions"`
	FinalPartitions   int `json:"final_partitions"`
	// FirstGrowth is when the first growth was decided; -1 if never.
	FirstGrowth time.Duration `json:"-"`
	// LagLimit is the first time the lag, averaged over the scaling window (tide's
	// WindowedLag), passed the scaling lag threshold for the partitions of the
	// moment, LagThreshold × partitions: past it KEDA's Kafka scaler is capped at
	// the partition count and more replicas cannot help. The average keeps the
	// few-second backlog of a rebalance from counting. -1 if never.
	LagLimit time.Duration `json:"-"`
}

// Log returns the decisions worth printing: every taken one, and the first decline
// of each reason.
func (r PartitionResult) Log() []partitions.Decision {
	seen := map[string]bool{}
	var out []partitions.Decision
	for _, d := range r.Decisions {
		if d.Taken() || !seen[d.Reason] {
			out = append(out, d)
		}
		if !d.Taken() {
			seen[d.Reason] = true
		}
	}
	return out
}

// RunPartitions simulates tr with tide's scaling policy and, unless pc.Disabled, the
// partition planner growing the topic.
func RunPartitions(cfg Config, pc PartitionConfig, tr Trace) (PartitionResult, error) {
	prof, ok := pc.Planner.LookupProfile(pc.Planner.Profile)
	if !ok {
		return PartitionResult{}, fmt.Errorf("sim: unknown partition profile %q", pc.Planner.Profile)
	}
	if pc.ObserveInterval < time.Second || pc.GrowDuration < 0 {
		return PartitionResult{}, fmt.Errorf("sim: observe interval %s must be at least 1s, grow duration %s not negative", pc.ObserveInterval, pc.GrowDuration)
	}
	if pc.Initial == 0 {
		pc.Initial = prof.Min
	}
	cfg.Partitions = pc.Initial
	if pc.Warm {
		cfg.ReplicaRate = float64(cfg.ConsumerRate)
	}
	if err := cfg.Validate(); err != nil {
		return PartitionResult{}, err
	}
	planner, err := partitions.NewPlanner(pc.Planner)
	if err != nil {
		return PartitionResult{}, fmt.Errorf("sim: %w", err)
	}
	d, err := newDriver(cfg, PolicyTide)
	if err != nil {
		return PartitionResult{}, err
	}
	w := newWorld(cfg, tr, PolicyTide)
	res := PartitionResult{Trace: tr.Name, InitialPartitions: pc.Initial, FirstGrowth: -1, LagLimit: -1}
	growing, growTo, growDone := false, 0, time.Duration(0)
	lagWin := make([]int64, max(int(cfg.Window/time.Second), 1))
	var lagSum int64
	for t := time.Duration(0); t < tr.Duration; t += time.Second {
		w.step(t)
		i := int(t/time.Second) % len(lagWin)
		lagSum += w.lag - lagWin[i]
		lagWin[i] = w.lag
		if res.LagLimit < 0 && lagSum > cfg.LagThreshold*int64(w.partitions)*int64(len(lagWin)) {
			res.LagLimit = t
		}
		now := t + time.Second
		if growing && now >= growDone {
			growing = false
			w.repartition(now, growTo)
		}
		d.tick(w, now)
		if pc.Disabled || now%pc.ObserveInterval != 0 {
			continue
		}
		sig := d.est.Signal(w.ready)
		dec := planner.Decide(partitions.Inputs{
			At:                Start.Add(now),
			ProduceRatePerSec: sig.ProduceRatePerSec,
			LagByGroup:        map[string]int64{Group: w.lag},
			Partitions:        w.partitions,
			InProgress:        growing,
		})
		res.Decisions = append(res.Decisions, dec)
		if dec.Taken() {
			growing, growTo, growDone = true, dec.Target, now+pc.GrowDuration
			if res.FirstGrowth < 0 {
				res.FirstGrowth = now
			}
		}
	}
	res.Scaling = w.finish()
	res.FinalPartitions = w.partitions
	return res, nil
}
