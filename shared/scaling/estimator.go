package scaling

import (
	"fmt"
	"math"
	"time"
)

// Sample is one measurement of a consumer group on its topic.
type Sample struct {
	// At is when the values were read; samples must come in increasing At.
	At time.Time
	// Lag is the group's total lag: high-water marks minus committed offsets.
	Lag int64
	// Produced is the cumulative number of records produced (sum of high-water marks).
	Produced int64
	// Consumed is the cumulative number of records consumed (sum of committed offsets).
	Consumed int64
	// Partitions is the topic's partition count.
	Partitions int
	// Replicas is the number of consumers in the group (its members) at At; 0 means
	// unknown, and the replicas last given to Estimator.Signal are assumed.
	Replicas int
}

// Signal is the Estimator's view at the last sample: what tide's scaling endpoint
// returns, and what KEDA's metrics-api scaler reads (valueLocation "metric_value").
type Signal struct {
	At time.Time `json:"at"`
	// Lag is the lag of the last sample; WindowedLag its mean over the window.
	Lag         float64 `json:"lag"`
	WindowedLag float64 `json:"windowed_lag"`
	// LagGrowthPerSec is the lag's change per second over the recent span (W/6).
	LagGrowthPerSec float64 `json:"lag_growth_per_sec"`
	// TrendPerSec2 is the produce rate's rise per second when it rose steadily over
	// the window (events/s²), 0 when it did not.
	TrendPerSec2 float64 `json:"trend_per_sec2"`
	// ProduceRatePerSec is the larger of the recent and the windowed produce rate.
	ProduceRatePerSec float64 `json:"produce_rate_per_sec"`
	// ConsumeRatePerSec is the consumption rate over the window.
	ConsumeRatePerSec float64 `json:"consume_rate_per_sec"`
	// PerReplicaRatePerSec is the learned capacity of one replica (events/s); 0 while
	// unknown.
	PerReplicaRatePerSec float64 `json:"per_replica_rate_per_sec"`
	// Replicas is the current replica count the recommendation was made for.
	Replicas int `json:"replicas"`
	// Need is the unrounded replicas needed now, before smoothing and clamping.
	Need float64 `json:"need"`
	// Recommended is the replica count tide recommends.
	Recommended int `json:"recommended"`
	// Partitions is the topic's partition count, the cap of Recommended.
	Partitions int `json:"partitions"`
	// PartitionLimited says Need exceeded the partition count: more partitions would
	// help, more replicas would not (an input for the partition manager).
	PartitionLimited bool `json:"partition_limited"`
	// Reason names what set Recommended: "rate", "drain", "lag" (capacity unknown),
	// "hold" (a higher need within the window), "trend" (a rising load: sized ahead,
	// or not shrunk), "partitions", "min" or "max".
	Reason string `json:"reason"`
	// Metric is MetricValue, served for KEDA's metrics-api scaler.
	Metric float64 `json:"metric_value"`
}

// MetricValue is the value for KEDA's metrics-api scaler with targetValue "1" and the
// default AverageValue metric type: the HPA computes ceil(MetricValue / 1), which is
// Recommended.
func (s Signal) MetricValue() float64 { return float64(s.Recommended) }

// Tuning constants of the formula (see the package doc).
const (
	// targetUtilization leaves 10% headroom over the measured need.
	targetUtilization = 0.9
	// capacityAlpha weighs a new saturated capacity observation in the EWMA.
	capacityAlpha = 0.3
	// recentFraction is the recent span as a fraction of the window, for scale-up.
	recentFraction = 6
	// trendWindows is the span, in windows, over which a rise must be steady.
	trendWindows = 2
	// risingStep is the least rise of the produce rate, as a fraction of it, from
	// one third of the trend span to the next for the load to count as rising. With
	// 10% per-second jitter the difference of two 40 s thirds wobbles by about 1.3%;
	// a ramp of 0.5 events/s² at 600 events/s rises 3.3% per third.
	risingStep = 0.02
	// leadWindows is how many windows ahead a scale-up on a rising load sizes for.
	leadWindows = 3
	// shrinkBelow is the fraction of the current replicas the held need must fall
	// to before a scale-down is recommended.
	shrinkBelow = 0.8
)

type recommendation struct {
	at  time.Time
	raw int
}

// Estimator turns Samples into Signals. It is deterministic (time comes only from
// Sample.At) and not safe for concurrent use: one goroutine samples and asks.
type Estimator struct {
	cfg      Config
	samples  []Sample // the trend span plus one older sample as its anchor
	raws     []recommendation
	first    time.Time
	capacity float64 // learned events/s per replica; 0 unknown
	floor    float64 // the most events/s one consumer was seen to process
	replicas int     // replicas last given to Signal
}

// NewEstimator returns an Estimator for cfg, or cfg's validation error.
func NewEstimator(cfg Config) (*Estimator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scaling: %w", err)
	}
	return &Estimator{cfg: cfg, capacity: cfg.ReplicaRatePerSec}, nil
}

// Observe records one sample. A sample not newer than the last is dropped; a sample
// whose counters went backwards (a recreated topic, a reset group) restarts the
// history but keeps the learned capacity.
func (e *Estimator) Observe(s Sample) {
	if n := len(e.samples); n > 0 {
		last := e.samples[n-1]
		if !s.At.After(last.At) {
			return
		}
		if s.Produced < last.Produced || s.Consumed < last.Consumed {
			e.samples, e.raws = e.samples[:0], e.raws[:0]
		}
	}
	if s.Replicas <= 0 {
		s.Replicas = e.replicas
	}
	if len(e.samples) == 0 {
		e.first = s.At
	}
	e.samples = append(e.samples, s)
	e.learn()
	e.trim()
	raw, _, _ := e.need(e.rates(), s.Replicas, 0)
	e.raws = append(e.raws, recommendation{at: s.At, raw: raw})
}

// learn updates the per-replica capacity from the last sample interval.
func (e *Estimator) learn() {
	n := len(e.samples)
	if n < 2 {
		return
	}
	prev, cur := e.samples[n-2], e.samples[n-1]
	if cur.Replicas <= 0 || prev.Replicas != cur.Replicas {
		return
	}
	// A rebalance pause can spill into the interval after a membership change.
	if n >= 3 && e.samples[n-3].Replicas != cur.Replicas {
		return
	}
	dt := cur.At.Sub(prev.At).Seconds()
	active := min(cur.Replicas, max(cur.Partitions, 1))
	obs := float64(cur.Consumed-prev.Consumed) / dt / float64(active)
	e.floor = max(e.floor, obs)
	saturated := prev.Lag >= e.cfg.LagThreshold && cur.Lag >= e.cfg.LagThreshold
	switch {
	case saturated && e.capacity == 0:
		e.capacity = obs
	case saturated:
		e.capacity += capacityAlpha * (obs - e.capacity)
	case e.capacity > 0 && obs > e.capacity:
		// Consumers never process faster than they can: the estimate was low.
		e.capacity = obs
	}
}

// trim drops samples older than the trend span, keeping one older sample so that
// rates span all of it, and recommendations older than the window.
func (e *Estimator) trim() {
	last := e.samples[len(e.samples)-1].At
	cut := last.Add(-trendWindows * e.cfg.Window())
	i := 0
	for i+1 < len(e.samples) && !e.samples[i+1].At.After(cut) {
		i++
	}
	e.samples = e.samples[i:]
	cut = last.Add(-e.cfg.Window())
	j := 0
	for j < len(e.raws) && !e.raws[j].at.After(cut) {
		j++
	}
	e.raws = e.raws[j:]
}

// anchor is the oldest sample within span before the last one, or the one just
// before the last when none is.
func (e *Estimator) anchor(span time.Duration) Sample {
	n := len(e.samples)
	last := e.samples[n-1]
	cut := last.At.Add(-span)
	for _, s := range e.samples[:n-1] {
		if !s.At.Before(cut) {
			return s
		}
	}
	return e.samples[max(n-2, 0)]
}

type rates struct {
	produceRecent, produceWindow, consume, lagGrowth, windowedLag float64
	// trend is the produce rate's slope (events/s²) when the rate rose from third
	// to third of the window by more than risingStep each; 0 otherwise.
	trend float64
}

func (e *Estimator) rates() rates {
	var r rates
	n := len(e.samples)
	if n == 0 {
		return r
	}
	last := e.samples[n-1]
	between := func(from, to Sample, v func(Sample) int64) float64 {
		dt := to.At.Sub(from.At).Seconds()
		if dt <= 0 {
			return 0
		}
		return float64(v(to)-v(from)) / dt
	}
	produced := func(s Sample) int64 { return s.Produced }
	w := e.cfg.Window()
	win := e.anchor(w)
	rec := e.anchor(w / recentFraction)
	r.produceWindow = between(win, last, produced)
	r.produceRecent = between(rec, last, produced)
	r.consume = between(win, last, func(s Sample) int64 { return s.Consumed })
	r.lagGrowth = between(rec, last, func(s Sample) int64 { return s.Lag })
	cut := last.At.Add(-w)
	var sum float64
	var count int
	for _, s := range e.samples {
		if s.At.After(cut) {
			sum += float64(s.Lag)
			count++
		}
	}
	r.windowedLag = sum / float64(count)

	// A steady rise shows in every third of the trend span; noise does not.
	span := trendWindows * w
	if from := e.anchor(span); last.At.Sub(from.At) >= span {
		a, b := e.anchor(2*span/3), e.anchor(span/3)
		r1, r2, r3 := between(from, a, produced), between(a, b, produced), between(b, last, produced)
		step := risingStep * r.produceWindow
		if a.At.After(from.At) && b.At.After(a.At) && r2-r1 > step && r3-r2 > step {
			r.trend = (r3 - r1) / (span.Seconds() * 2 / 3)
		}
	}
	return r
}

// need is the unsmoothed replica count for replicas current replicas: its ceiling,
// the unrounded value and which term set it. ahead adds lead of a rising load's
// trend to the rate (at most doubling it).
func (e *Estimator) need(r rates, replicas int, lead time.Duration) (int, float64, string) {
	if e.capacity <= 0 {
		// Capacity unknown: add replicas on lag as KEDA does, and shrink only as far
		// as the throughput one consumer has already shown covers the load.
		byLag := math.Ceil(r.windowedLag / float64(e.cfg.LagThreshold))
		if byLag > float64(replicas) {
			return int(byLag), byLag, "lag"
		}
		need := float64(replicas)
		if e.floor > 0 {
			need = min(need, max(r.produceRecent, r.produceWindow)/(e.floor*targetUtilization))
		}
		return int(math.Ceil(need - 1e-9)), need, "lag"
	}
	rate := max(r.produceRecent, r.produceWindow)
	rate += min(r.trend*lead.Seconds(), rate)
	backlog := max(0, r.windowedLag-float64(e.cfg.LagThreshold)*float64(replicas))
	drain := backlog / e.cfg.Window().Seconds()
	need := (rate + drain) / (e.capacity * targetUtilization)
	reason := "rate"
	if drain > 0 {
		reason = "drain"
	}
	return int(math.Ceil(need - 1e-9)), need, reason
}

// Signal returns the recommendation for replicas current replicas (the group's
// members, or the Deployment's replicas) at the last observed sample. It records
// replicas for samples that carry none; it does not otherwise change the Estimator.
func (e *Estimator) Signal(replicas int) Signal {
	e.replicas = replicas
	n := len(e.samples)
	if n == 0 {
		rec := max(replicas, e.cfg.MinReplicas)
		return Signal{Replicas: replicas, Recommended: rec, Reason: "lag", Metric: float64(rec)}
	}
	last := e.samples[n-1]
	r := e.rates()
	raw, need, reason := e.need(r, replicas, 0)
	rec := raw
	for _, p := range e.raws {
		if p.raw > rec {
			rec, reason = p.raw, "hold"
		}
	}
	switch {
	case rec > replicas && r.trend > 0:
		// Scaling up into a rising load: size for where it is heading, so a ramp
		// takes a few steps of several replicas instead of one step per replica.
		if ahead, _, _ := e.need(r, replicas, leadWindows*e.cfg.Window()); ahead > rec {
			rec, reason = ahead, "trend"
		}
	case rec < replicas && r.trend > 0:
		// Never shrink into a rising load.
		rec, reason = replicas, "trend"
	case rec < replicas && last.At.Sub(e.first) < e.cfg.Window():
		// Without a whole window of history, a lower need is not yet a sustained one.
		rec, reason = replicas, "hold"
	case rec < replicas && float64(rec) > shrinkBelow*float64(replicas):
		// Each change stops the whole group for a rebalance: shrink in steps
		// worth one.
		rec, reason = replicas, "hold"
	}
	limited := need > float64(last.Partitions) && last.Partitions > 0
	if rec > e.cfg.MaxReplicas {
		rec, reason = e.cfg.MaxReplicas, "max"
	}
	if last.Partitions > 0 && rec > last.Partitions {
		rec, reason = last.Partitions, "partitions"
	}
	if rec < e.cfg.MinReplicas {
		rec, reason = e.cfg.MinReplicas, "min"
	}
	s := Signal{
		At:                   last.At,
		Lag:                  float64(last.Lag),
		WindowedLag:          r.windowedLag,
		LagGrowthPerSec:      r.lagGrowth,
		TrendPerSec2:         r.trend,
		ProduceRatePerSec:    max(r.produceRecent, r.produceWindow),
		ConsumeRatePerSec:    r.consume,
		PerReplicaRatePerSec: e.capacity,
		Replicas:             replicas,
		Need:                 need,
		Recommended:          rec,
		Partitions:           last.Partitions,
		PartitionLimited:     limited,
		Reason:               reason,
	}
	s.Metric = s.MetricValue()
	return s
}
