package scaling

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"function/shared/config"
)

var t0 = time.Date(2025, time.January, 6, 9, 0, 0, 0, time.UTC)

// group is a toy consumer group: producers at a rate, consumers each processing up
// to perReplica events/s on at most partitions partitions.
type group struct {
	at                 time.Time
	produced, consumed int64
	lag                int64
	carry              float64
	partitions         int
	replicas           int
	perReplica         float64
}

func newGroup(replicas, partitions int, perReplica float64) *group {
	return &group{at: t0, partitions: partitions, replicas: replicas, perReplica: perReplica}
}

// run advances the group by d in 5 s samples at rate, feeding e.
func (g *group) run(e *Estimator, d time.Duration, rate float64) {
	const every = 5 * time.Second
	for end := g.at.Add(d); g.at.Before(end); {
		g.at = g.at.Add(every)
		g.carry += rate * every.Seconds()
		n := int64(g.carry)
		g.carry -= float64(n)
		g.produced += n
		g.lag += n
		c := min(g.lag, int64(g.perReplica*float64(min(g.replicas, g.partitions))*every.Seconds()))
		g.consumed += c
		g.lag -= c
		e.Observe(Sample{At: g.at, Lag: g.lag, Produced: g.produced, Consumed: g.consumed, Partitions: g.partitions, Replicas: g.replicas})
	}
}

func estimator(t *testing.T, mutate func(*Config)) *Estimator {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := NewEstimator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDefaultConfigMatchesEnvDefaults(t *testing.T) {
	for _, v := range []string{"SCALING_LAG_THRESHOLD", "SCALING_WINDOW_MS", "SCALING_MIN_REPLICAS", "SCALING_MAX_REPLICAS", "SCALING_REPLICA_RATE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	var got Config
	if err := config.Load("", &got); err != nil {
		t.Fatal(err)
	}
	if got != DefaultConfig() {
		t.Fatalf("env defaults %+v, DefaultConfig %+v", got, DefaultConfig())
	}
	if got.Window() != time.Minute {
		t.Fatalf("Window() = %s, want 1m", got.Window())
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"zero threshold", func(c *Config) { c.LagThreshold = 0 }, "SCALING_LAG_THRESHOLD"},
		{"short window", func(c *Config) { c.WindowMS = 999 }, "SCALING_WINDOW_MS"},
		{"negative min", func(c *Config) { c.MinReplicas = -1 }, "SCALING_MIN_REPLICAS"},
		{"max below min", func(c *Config) { c.MinReplicas, c.MaxReplicas = 5, 4 }, "SCALING_MAX_REPLICAS"},
		{"zero max", func(c *Config) { c.MinReplicas, c.MaxReplicas = 0, 0 }, "SCALING_MAX_REPLICAS"},
		{"negative rate", func(c *Config) { c.ReplicaRatePerSec = -1 }, "SCALING_REPLICA_RATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			var ve *config.VarError
			if !errors.As(err, &ve) || ve.Name != tt.want {
				t.Fatalf("Validate() = %v, want a VarError naming %s", err, tt.want)
			}
			if _, err := NewEstimator(cfg); err == nil {
				t.Fatal("NewEstimator accepted an invalid config")
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("SCALING_LAG_THRESHOLD", "250")
	t.Setenv("SCALING_WINDOW_MS", "120000")
	t.Setenv("SCALING_MIN_REPLICAS", "0")
	t.Setenv("SCALING_MAX_REPLICAS", "8")
	t.Setenv("SCALING_REPLICA_RATE", "42.5")
	var got Config
	if err := config.Load("", &got); err != nil {
		t.Fatal(err)
	}
	want := Config{LagThreshold: 250, WindowMS: 120000, MinReplicas: 0, MaxReplicas: 8, ReplicaRatePerSec: 42.5}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	t.Setenv("SCALING_MAX_REPLICAS", "-3")
	if err := config.Load("", &got); err == nil || !strings.Contains(err.Error(), "SCALING_MAX_REPLICAS") {
		t.Fatalf("Load = %v, want an error naming SCALING_MAX_REPLICAS", err)
	}
}

func TestSteadyLoadRecommendsRateOverCapacityWithHeadroom(t *testing.T) {
	tests := []struct {
		rate float64
		want int
	}{
		{rate: 100, want: 2},   // 100/90 = 1.1
		{rate: 450, want: 5},   // 450/90 = 5
		{rate: 500, want: 6},   // 5.6
		{rate: 1000, want: 12}, // 11.1
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
			g := newGroup(tt.want, 24, 100)
			g.run(e, 3*time.Minute, tt.rate)
			s := e.Signal(g.replicas)
			if s.Recommended != tt.want {
				t.Fatalf("rate %g: Recommended = %d (need %.2f, reason %s), want %d", tt.rate, s.Recommended, s.Need, s.Reason, tt.want)
			}
			if math.Abs(s.ProduceRatePerSec-tt.rate) > tt.rate*0.02 {
				t.Fatalf("ProduceRatePerSec = %g, want about %g", s.ProduceRatePerSec, tt.rate)
			}
		})
	}
}

func TestLearnsCapacityFromSaturatedConsumption(t *testing.T) {
	e := estimator(t, nil)
	g := newGroup(4, 12, 80) // 4 replicas, 80/s each: 320/s against 500/s produced
	g.run(e, 2*time.Minute, 500)
	s := e.Signal(g.replicas)
	if math.Abs(s.PerReplicaRatePerSec-80) > 1 {
		t.Fatalf("PerReplicaRatePerSec = %g, want 80", s.PerReplicaRatePerSec)
	}
	// 500/s plus the backlog built over two minutes, at 80/s per replica.
	if s.Recommended < 7 || s.Reason != "drain" {
		t.Fatalf("Recommended = %d (reason %s), want at least 7 by drain", s.Recommended, s.Reason)
	}
}

func TestCapacityIgnoresIntervalsAroundRebalances(t *testing.T) {
	e := estimator(t, nil)
	g := newGroup(4, 12, 80)
	g.run(e, time.Minute, 500)
	// A membership change whose first interval consumed nothing (a rebalance).
	g.replicas = 5
	g.at = g.at.Add(5 * time.Second)
	g.produced += 2500
	g.lag += 2500
	e.Observe(Sample{At: g.at, Lag: g.lag, Produced: g.produced, Consumed: g.consumed, Partitions: 12, Replicas: 5})
	if got := e.Signal(5).PerReplicaRatePerSec; math.Abs(got-80) > 1 {
		t.Fatalf("PerReplicaRatePerSec = %g after a rebalance, want 80 kept", got)
	}
}

func TestUnknownCapacityScalesOnLagAndHolds(t *testing.T) {
	e := estimator(t, nil)
	g := newGroup(3, 12, 200) // never saturated: capacity stays unknown
	g.run(e, 3*time.Minute, 300)
	s := e.Signal(3)
	if s.PerReplicaRatePerSec != 0 || s.Recommended != 3 || s.Reason != "lag" {
		t.Fatalf("got capacity %g, Recommended %d (%s), want unknown, 3 held by lag", s.PerReplicaRatePerSec, s.Recommended, s.Reason)
	}
	// A backlog with no known capacity asks for replicas as KEDA would.
	e2 := estimator(t, nil)
	for i := 1; i <= 12; i++ {
		e2.Observe(Sample{At: t0.Add(time.Duration(i) * 5 * time.Second), Lag: 950, Produced: int64(i) * 100, Consumed: int64(i) * 100, Partitions: 12, Replicas: 2})
	}
	if got := e2.Signal(2); got.Recommended != 10 {
		t.Fatalf("Recommended = %d for lag 950 at threshold 100, want 10", got.Recommended)
	}
}

func TestScaleUpAtOnceScaleDownAfterAWindow(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(4, 24, 100)
	g.run(e, 3*time.Minute, 300)
	g.run(e, 15*time.Second, 900) // step up
	// 900/90 = 10, plus the backlog built in 15 s.
	if s := e.Signal(4); s.Recommended < 10 || s.Recommended > 12 {
		t.Fatalf("after a step to 900/s, Recommended = %d (%s), want 10 to 12 at once", s.Recommended, s.Reason)
	}
	g.replicas = 10
	g.run(e, 3*time.Minute, 900)
	g.run(e, 30*time.Second, 300) // step down
	if s := e.Signal(10); s.Recommended != 10 || s.Reason != "hold" {
		t.Fatalf("30s after a step down, Recommended = %d (%s), want 10 held", s.Recommended, s.Reason)
	}
	// The windowed rate takes a window to forget 900/s, the hold one more.
	g.run(e, time.Minute, 300)
	if s := e.Signal(10); s.Recommended <= 4 {
		t.Fatalf("90s after a step down, Recommended = %d (%s), want it still above 4", s.Recommended, s.Reason)
	}
	g.run(e, 30*time.Second, 300)
	if got := e.Signal(10).Recommended; got != 4 {
		t.Fatalf("two windows after a step down, Recommended = %d, want 4", got)
	}
}

func TestSmallDropsDoNotShrink(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(10, 24, 100)
	g.run(e, 3*time.Minute, 900)
	g.run(e, 3*time.Minute, 780) // needs 9: within 80% of 10
	if s := e.Signal(10); s.Recommended != 10 {
		t.Fatalf("Recommended = %d (%s), want 10: a one-replica shrink is not worth a rebalance", s.Recommended, s.Reason)
	}
	g.run(e, 3*time.Minute, 600) // needs 7
	if got := e.Signal(10).Recommended; got != 7 {
		t.Fatalf("Recommended = %d, want 7", got)
	}
}

func TestRisingLoadSizesAheadAndNeverShrinks(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(4, 24, 100)
	g.run(e, 3*time.Minute, 300)
	// A ramp of 1 event/s²: 300 → 420 over two minutes.
	for i := 0; i < 24; i++ {
		g.run(e, 5*time.Second, 300+float64(i+1)*5)
	}
	s := e.Signal(4)
	if s.TrendPerSec2 < 0.7 || s.TrendPerSec2 > 1.3 {
		t.Fatalf("TrendPerSec2 = %g, want about 1", s.TrendPerSec2)
	}
	// Now: 420/90 = 4.7 → 5; three windows ahead: (420 + 180)/90 = 6.7 → 7.
	if s.Recommended != 7 || s.Reason != "trend" {
		t.Fatalf("Recommended = %d (%s), want 7 sized ahead", s.Recommended, s.Reason)
	}
	if s := e.Signal(12); s.Recommended != 12 || s.Reason != "trend" {
		t.Fatalf("with 12 replicas on a rising load Recommended = %d (%s), want 12 kept", s.Recommended, s.Reason)
	}
}

func TestStepIsNotATrend(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(3, 24, 100)
	g.run(e, 3*time.Minute, 200)
	g.run(e, 30*time.Second, 400)
	if s := e.Signal(3); s.TrendPerSec2 != 0 || s.Recommended != 5 {
		t.Fatalf("after a step 200 → 400: trend %g, Recommended %d, want 0 and 5", s.TrendPerSec2, s.Recommended)
	}
}

func TestNoiseIsNotATrend(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(6, 24, 100)
	// ±5% alternating every sample: noisier than the jitter of the simulations.
	for i := 0; i < 120; i++ {
		g.run(e, 5*time.Second, 500*(1+0.05*float64(1-2*(i%2))))
		if s := e.Signal(6); s.TrendPerSec2 != 0 {
			t.Fatalf("sample %d: TrendPerSec2 = %g on a flat noisy load", i, s.TrendPerSec2)
		}
	}
}

func TestClamps(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*Config)
		partitions int
		rate       float64
		want       int
		reason     string
		limited    bool
	}{
		{"partitions cap", nil, 6, 1000, 6, "partitions", true},
		// Four replicas fall behind without end: the backlog's need passes 24.
		{"max replicas", func(c *Config) { c.MaxReplicas = 4 }, 24, 1000, 4, "max", true},
		{"min replicas", func(c *Config) { c.MinReplicas = 3 }, 24, 10, 3, "min", false},
		{"scale to zero", func(c *Config) { c.MinReplicas = 0 }, 24, 0, 0, "rate", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := estimator(t, func(c *Config) {
				c.ReplicaRatePerSec = 100
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			g := newGroup(min(tt.partitions, 12), tt.partitions, 100)
			g.run(e, 3*time.Minute, tt.rate)
			g.replicas = tt.want
			g.run(e, 3*time.Minute, tt.rate)
			s := e.Signal(tt.want)
			if s.Recommended != tt.want || s.Reason != tt.reason || s.PartitionLimited != tt.limited {
				t.Fatalf("Recommended %d (%s, limited %v), want %d (%s, limited %v)", s.Recommended, s.Reason, s.PartitionLimited, tt.want, tt.reason, tt.limited)
			}
			if s.MetricValue() != float64(tt.want) || s.Metric != s.MetricValue() {
				t.Fatalf("MetricValue %g, metric_value %g, want %d", s.MetricValue(), s.Metric, tt.want)
			}
		})
	}
}

func TestSamplesOutOfOrderAndCounterResets(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	g := newGroup(5, 24, 100)
	g.run(e, 2*time.Minute, 400)
	before := e.Signal(5)
	e.Observe(Sample{At: g.at.Add(-time.Second), Lag: 1e6, Produced: 1, Partitions: 24})
	e.Observe(Sample{At: g.at, Lag: 1e6, Produced: 1, Partitions: 24})
	if after := e.Signal(5); after != before {
		t.Fatalf("an old or repeated sample changed the signal:\n%+v\n%+v", before, after)
	}
	// The topic was recreated: counters start over; the history restarts.
	e.Observe(Sample{At: g.at.Add(5 * time.Second), Produced: 10, Consumed: 10, Partitions: 24, Replicas: 5})
	if s := e.Signal(5); s.ProduceRatePerSec != 0 || s.PerReplicaRatePerSec != 100 {
		t.Fatalf("after a counter reset: rate %g, capacity %g; want 0 and the capacity kept", s.ProduceRatePerSec, s.PerReplicaRatePerSec)
	}
}

func TestSignalBeforeAnySample(t *testing.T) {
	e := estimator(t, nil)
	if s := e.Signal(3); s.Recommended != 3 || s.MetricValue() != 3 {
		t.Fatalf("Signal with no samples = %+v, want the current 3 replicas", s)
	}
}

func TestSignalJSONIsSnakeCase(t *testing.T) {
	e := estimator(t, func(c *Config) { c.ReplicaRatePerSec = 100 })
	newGroup(3, 12, 100).run(e, time.Minute, 200)
	b, err := json.Marshal(e.Signal(3))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lag", "windowed_lag", "lag_growth_per_sec", "produce_rate_per_sec", "consume_rate_per_sec", "per_replica_rate_per_sec", "replicas", "recommended", "partitions", "metric_value", "reason"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}
	if m["metric_value"] != m["recommended"] {
		t.Errorf("metric_value %v != recommended %v", m["metric_value"], m["recommended"])
	}
}
