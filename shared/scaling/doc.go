// Package scaling turns consumer-group measurements sampled over time into a smoothed,
// rate-aware replica recommendation for KEDA.
//
// Raw consumer lag is a poor scaling signal: it is zero whenever the consumers keep
// up, so an autoscaler driven by it (KEDA's Kafka scaler) shrinks to the minimum,
// lets a backlog build, jumps to the partition count, and does it again after the
// HPA's 5-minute scale-down stabilization: replicas flap. Lag only says that the
// consumers are behind, not how many are needed to keep up. The production rate does.
//
// # Inputs
//
// A caller samples, every few seconds, the group's total lag, the cumulative produced
// count (sum of the partitions' high-water marks), the cumulative consumed count (sum
// of committed offsets), the partition count and the group's member count, and hands
// each Sample to Estimator.Observe. Nothing here reads a clock: time is Sample.At.
//
// # Formula
//
// With W the window (SCALING_WINDOW_MS), T the lag threshold per replica
// (SCALING_LAG_THRESHOLD), R the current replicas, P the partitions, c the capacity
// of one replica in events/s (learned, below):
//
//	rate      = max(produced/s over the last W/6, produced/s over W)   // up fast, down slow
//	lagW      = mean lag over W                                        // WindowedLag
//	backlog   = max(0, lagW − T·R)                                     // lag beyond what R replicas may carry
//	need      = (rate + backlog/W) / (0.9·c)                           // keep up, drain within W, 10% headroom
//	raw       = ceil(need), remembered for W
//	rec       = max(raw over the last W)                               // shrink after a window lower (two after a step: the rate is windowed)
//	trend     = slope of the produce rate, when each third of the last 2W rose by > 2%
//	if rec > R and trend > 0:  rec = ceil(need with rate + min(trend·3W, rate))  // size ahead of a ramp
//	if rec < R and trend > 0:  rec = R                                 // never shrink into a rising load
//	if rec < R and rec > 0.8·R: rec = R                                // shrink in steps worth a rebalance
//	Recommended = clamp(rec, MinReplicas, min(MaxReplicas, P))
//
// Why each term: the rate says how many consumers keep up, which lag alone cannot; the
// backlog term drains what built up; holding the maximum for a window stops the
// recommendation following every dip. Sizing ahead of a steady rise turns a ramp into
// a few steps of several replicas instead of one step per replica, and every change
// costs a consumer-group rebalance that stops all consumers, which is also why small
// reductions are not made. A step or noise is not a trend: the rise must show in every
// third of two windows. The 0.9 headroom keeps jitter from building lag at exactly
// rate = capacity, and matches the HPA's default 10% tolerance, which would swallow a
// one-replica raise from R ≥ 10.
//
// Capacity c is learned, not configured (SCALING_REPLICA_RATE may seed it): over each
// sample interval in which the lag stayed at or above T (the consumers had work the
// whole time, so they ran flat out) and the member count was the same for the last
// two intervals (no rebalance pause in it), the observation consumed/s ÷ min(R, P)
// feeds an EWMA (α = 0.3). An observation above the estimate raises it at once:
// consumers never process faster than they can. Until c is known, raw is
// max(ceil(lagW / T), min(R, ceil(rate / (0.9·f)))) with f the most one consumer was
// ever seen to process: add replicas on lag as KEDA does, and shrink only as far as
// throughput already shown covers.
//
// # KEDA
//
// Serve Signal as JSON and point KEDA's metrics-api scaler at it with
// valueLocation "metric_value" and targetValue "1" (metricType AverageValue, the
// default): the HPA then computes ceil(metric_value / 1) = Recommended. MetricValue
// is Recommended itself, so a Recommended of 0 (MinReplicas 0, no load for a window)
// deactivates the trigger and lets KEDA scale to zero after its cooldownPeriod.
// The HPA still applies its tolerance: with R current replicas it ignores a
// Recommended within 10% of R (for example 10 → 11); lower behavior.scaleUp.tolerance
// (Kubernetes 1.33+) if that matters.
package scaling
