package sim

import (
	"math"
	"time"
)

// autoscaler models one KEDA ScaledObject and the HPA it owns: KEDA reads the metric
// every Config.PollInterval, the HPA evaluates the last value every
// Config.SyncPeriod. What it relies on:
//
//   - KEDA ScaledObject defaults: pollingInterval 30 s, cooldownPeriod 300 s, which
//     only governs scaling to zero (minReplicaCount 0); between 1 and N replicas the
//     HPA decides (keda.sh/docs/latest/reference/scaledobject-spec). KEDA's metrics
//     server queries the scaler on each HPA request unless useCachedMetrics is set
//     (kedacore/keda#2282); the model reads once per pollingInterval, as with
//     useCachedMetrics: true, and the HPA evaluates every 15 s (its default sync
//     period), so a scale-up limited by the rate below continues 15 s later.
//   - KEDA Kafka scaler (pkg/scalers/kafka_scaler.go, GetMetrics): the metric is the
//     group's total lag, with lagThreshold as the per-replica target (AverageValue);
//     with allowIdleConsumers=false a lag with lag/lagThreshold > partitions is
//     replaced by partitions × lagThreshold, so the HPA never asks for more
//     replicas than partitions. It is active when lag > activationLagThreshold (0).
//   - KEDA metrics-api scaler: the value read from the endpoint, targetValue per
//     replica (AverageValue); active when the value > activationTargetValue (0).
//   - HPA (kubernetes pkg/controller/podautoscaler, replica_calculator.go
//     GetExternalPerPodMetricReplicas): usageRatio = metric / (target × current);
//     when |1 − usageRatio| ≤ tolerance (0.1) the replicas stay, else desired =
//     ceil(metric / target).
//   - HPA stabilization (horizontal.go stabilizeRecommendationWithBehaviors): every
//     recommendation is stored; scale-down takes the highest recommendation of the
//     last 300 s (default scaleDown.stabilizationWindowSeconds), scale-up the lowest
//     of the last 0 s (so the current one). The controller seeds the history with
//     the current replicas when it first reconciles the HPA, so the first
//     scale-down waits a whole window too.
//   - HPA default rate limits (autoscaling/v2 HPAScalingRules docs): scale-up at most
//     max(100%, 4 pods) per 15 s, scale-down 100% per 15 s; evaluations are 15 s
//     apart, so each may double or add 4.
type autoscaler struct {
	cfg        Config
	recs       []timedRec
	seeded     bool
	lastActive time.Duration
}

type timedRec struct {
	at  time.Duration
	rec int
}

// evaluate returns the replicas the Deployment is set to at now, given its current
// replicas (spec, which the HPA reads as status.replicas), the metric value and the
// per-replica target.
func (a *autoscaler) evaluate(now time.Duration, current int, metric, target float64) int {
	active := metric > 0
	if active {
		a.lastActive = now
	}
	if current == 0 {
		// KEDA owns 0 ↔ 1: activate on any metric, leave the rest to the HPA.
		if active {
			return 1
		}
		return 0
	}
	if a.cfg.MinReplicas == 0 && !active && now-a.lastActive >= a.cfg.CooldownPeriod {
		return 0
	}

	rec := current
	ratio := metric / (target * float64(current))
	if math.Abs(1-ratio) > a.cfg.Tolerance {
		rec = int(math.Ceil(metric/target - 1e-9))
	}

	// Stabilization over recommendations, as the HPA stores them (before clamping).
	if !a.seeded {
		a.seeded = true
		a.recs = append(a.recs, timedRec{at: now, rec: current})
	}
	cut := now - a.cfg.ScaleDownStabilization
	kept := a.recs[:0]
	for _, r := range a.recs {
		if r.at > cut {
			kept = append(kept, r)
		}
	}
	a.recs = append(kept, timedRec{at: now, rec: rec})
	downRec := rec
	for _, r := range a.recs {
		downRec = max(downRec, r.rec)
	}
	desired := current
	if desired < rec { // scale-up window 0 s: the lowest recent one is rec itself
		desired = rec
	}
	if desired > downRec {
		desired = downRec
	}

	if desired > current {
		desired = min(desired, max(2*current, current+4))
	}
	hpaMin := max(a.cfg.MinReplicas, 1)
	return min(max(desired, hpaMin), a.cfg.MaxReplicas)
}

// kafkaLagMetric is KEDA's Kafka scaler metric for a total lag on partitions.
func kafkaLagMetric(lag int64, threshold int64, partitions int) float64 {
	if lag/threshold > int64(partitions) {
		lag = int64(partitions) * threshold
	}
	return float64(lag)
}
