package sim

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"function/shared/partitions"
)

func run(t *testing.T, cfg Config, trace string, p Policy) Result {
	t.Helper()
	tr, ok := TraceByName(trace)
	if !ok {
		t.Fatalf("no trace %q", trace)
	}
	r, err := Run(cfg, tr, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTraces(t *testing.T) {
	seen := map[string]bool{}
	for _, tr := range Traces() {
		t.Run(tr.Name, func(t *testing.T) {
			if seen[tr.Name] || tr.Description == "" {
				t.Fatalf("duplicate or undescribed trace %q", tr.Name)
			}
			seen[tr.Name] = true
			if tr.Duration < 30*time.Minute || tr.Duration > 60*time.Minute {
				t.Fatalf("duration %s, want 30 to 60 minutes", tr.Duration)
			}
			cap := float64(DefaultConfig().Partitions) * float64(DefaultConfig().ConsumerRate)
			for s := time.Duration(0); s < tr.Duration; s += time.Second {
				if r := tr.Rate(s); r <= 0 || r > cap {
					t.Fatalf("rate %g at %s outside (0, %g]", r, s, cap)
				}
			}
		})
	}
	r10, _ := TraceByName(TraceRamp10x)
	if base, peak := r10.Rate(0), r10.Rate(25*time.Minute); peak != 10*base || r10.Rate(r10.Duration-time.Second) > 1.1*base {
		t.Fatalf("ramp10x: base %g, hold %g, end %g; want 10x, then back", base, peak, r10.Rate(r10.Duration-time.Second))
	}
}

// The targets are asserted per trace: a policy that wins only in total could still
// flap on the traffic shape a deployment actually has. They are checked on several
// seeds so that no lucky draw of jitter carries them.
func TestTideHalvesReplicaChangesOnEveryTrace(t *testing.T) {
	for _, name := range TraceNames() {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				cfg := DefaultConfig()
				cfg.Seed = seed
				raw, tide := run(t, cfg, name, PolicyRawLag), run(t, cfg, name, PolicyTide)
				if 2*tide.ReplicaChanges > raw.ReplicaChanges {
					t.Errorf("seed %d: tide %d replica changes, raw lag %d: want at most half", seed, tide.ReplicaChanges, raw.ReplicaChanges)
				}
			}
		})
	}
}

func TestTideMeetsCapacityWithinOnePollOfRawLag(t *testing.T) {
	for _, name := range TraceNames() {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				cfg := DefaultConfig()
				cfg.Seed = seed
				raw, tide := run(t, cfg, name, PolicyRawLag), run(t, cfg, name, PolicyTide)
				if tide.TimeToCapacity > raw.TimeToCapacity+cfg.PollInterval {
					t.Errorf("seed %d: tide met capacity in %s, raw lag in %s: more than %s later", seed, tide.TimeToCapacity, raw.TimeToCapacity, cfg.PollInterval)
				}
			}
		})
	}
}

// The comparison means something only if raw lag does flap: on the sawtooth it must
// change replicas at least twice per 8-minute tooth.
func TestRawLagFlapsOnSawtooth(t *testing.T) {
	r := run(t, DefaultConfig(), TraceSawtooth, PolicyRawLag)
	if r.ReplicaChanges < 10 {
		t.Fatalf("raw lag changed replicas %d times on the sawtooth, want at least 10: %v", r.ReplicaChanges, r.Changes)
	}
	down := 0
	for _, c := range r.Changes {
		if c.To < c.From {
			down++
		}
	}
	if down < 4 {
		t.Fatalf("raw lag scaled down %d times, want at least once per tooth: %v", down, r.Changes)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	for _, p := range Policies() {
		a, b := run(t, DefaultConfig(), TraceSpike, p), run(t, DefaultConfig(), TraceSpike, p)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two runs differ", p)
		}
	}
	cfg := DefaultConfig()
	cfg.Seed = 2
	if reflect.DeepEqual(run(t, DefaultConfig(), TraceSpike, PolicyRawLag), run(t, cfg, TraceSpike, PolicyRawLag)) {
		t.Fatal("the seed changes nothing: jitter is not applied")
	}
}

func TestResultAccounting(t *testing.T) {
	r := run(t, DefaultConfig(), TraceRamp, PolicyRawLag)
	if r.ReplicaChanges != len(r.Changes) || r.Shortfalls == 0 || r.ShortfallTotal < r.TimeToCapacity || r.PeakLag < r.FinalLag {
		t.Fatalf("inconsistent result %+v", r)
	}
	for i, c := range r.Changes {
		if c.From == c.To || (i > 0 && r.Changes[i-1].To != c.From) {
			t.Fatalf("change %d %+v does not follow %+v", i, c, r.Changes[max(i-1, 0)])
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"time_to_capacity_s":`, `"replica_changes":`, `"peak_lag":`, `"final_lag":`, `"policy":"raw-lag"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"no consumer rate", func(c *Config) { c.ConsumerRate = 0 }},
		{"no partitions", func(c *Config) { c.Partitions = 0 }},
		{"max below min", func(c *Config) { c.MinReplicas, c.MaxReplicas = 3, 2 }},
		{"jitter 1", func(c *Config) { c.Jitter = 1 }},
		{"zero poll", func(c *Config) { c.PollInterval = 0 }},
		{"negative delay", func(c *Config) { c.StartDelay = -time.Second }},
	}
	tr, _ := TraceByName(TraceRamp)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			if _, err := Run(cfg, tr, PolicyTide); err == nil {
				t.Fatal("Run accepted an invalid config")
			}
		})
	}
	if _, err := Run(DefaultConfig(), tr, "keda-cpu"); err == nil {
		t.Fatal("Run accepted an unknown policy")
	}
}

func TestKafkaLagMetricCapsAtPartitions(t *testing.T) {
	tests := []struct {
		lag  int64
		want float64
	}{
		{lag: 0, want: 0},
		{lag: 550, want: 550},
		{lag: 1299, want: 1299}, // 1299/100 = 12, not above 12 partitions
		{lag: 1300, want: 1200},
		{lag: 99999, want: 1200},
	}
	for _, tt := range tests {
		if got := kafkaLagMetric(tt.lag, 100, 12); got != tt.want {
			t.Errorf("kafkaLagMetric(%d) = %g, want %g", tt.lag, got, tt.want)
		}
	}
}

func TestAutoscaler(t *testing.T) {
	type eval struct {
		at      int // seconds
		current int
		metric  float64
		want    int
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		evals  []eval
	}{
		{"within tolerance no change", nil, []eval{{15, 10, 1090, 10}, {30, 10, 910, 10}}},
		{"beyond tolerance ceil(metric/target)", nil, []eval{{15, 10, 1150, 12}}},
		{"scale-up at most doubles or adds 4", nil, []eval{{15, 2, 5000, 6}, {30, 6, 5000, 12}, {45, 12, 5000, 24}}},
		{"scale-down waits for the max of 300s", nil, []eval{
			{15, 10, 1000, 10}, {30, 10, 200, 10}, {300, 10, 200, 10}, {316, 10, 200, 2},
		}},
		{"never below one without scale to zero", nil, []eval{{15, 3, 0, 3}, {400, 3, 0, 1}, {1000, 1, 0, 1}}},
		{"scale to zero after the cooldown, back on activity", func(c *Config) { c.MinReplicas = 0 }, []eval{
			{15, 1, 50, 1}, {200, 1, 0, 1}, {315, 1, 0, 0}, {330, 0, 0, 0}, {345, 0, 10, 1},
		}},
		{"max replicas", func(c *Config) { c.MaxReplicas = 5 }, []eval{{15, 4, 10000, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			a := &autoscaler{cfg: cfg}
			for _, e := range tt.evals {
				if got := a.evaluate(time.Duration(e.at)*time.Second, e.current, e.metric, 100); got != e.want {
					t.Fatalf("at %ds from %d with metric %g: %d replicas, want %d", e.at, e.current, e.metric, got, e.want)
				}
			}
		})
	}
}

func TestPartitionsGrowBeforeLagPassesTheThreshold(t *testing.T) {
	tr, _ := TraceByName(TraceRamp10x)
	for _, profile := range partitions.ProfileNames() {
		t.Run(profile, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				cfg := DefaultConfig()
				cfg.Seed = seed
				pc := DefaultPartitionConfig()
				pc.Planner.Profile = profile
				r, err := RunPartitions(cfg, pc, tr)
				if err != nil {
					t.Fatal(err)
				}
				if r.FirstGrowth < 0 || (r.LagLimit >= 0 && r.LagLimit <= r.FirstGrowth) {
					t.Fatalf("seed %d: first growth at %s, lag passed %d × partitions at %s", seed, r.FirstGrowth, cfg.LagThreshold, r.LagLimit)
				}
				if r.FinalPartitions <= r.InitialPartitions {
					t.Fatalf("seed %d: partitions %d → %d", seed, r.InitialPartitions, r.FinalPartitions)
				}
			}
		})
	}
}

// Where the profile's ceiling covers the 10x load, the lag never passes the
// threshold at all; without the planner it does, so the assertion can fail.
func TestPartitionPlannerKeepsLagBelowTheThreshold(t *testing.T) {
	tr, _ := TraceByName(TraceRamp10x)
	pc := DefaultPartitionConfig()
	with, err := RunPartitions(DefaultConfig(), pc, tr)
	if err != nil {
		t.Fatal(err)
	}
	pc.Disabled = true
	without, err := RunPartitions(DefaultConfig(), pc, tr)
	if err != nil {
		t.Fatal(err)
	}
	if with.LagLimit >= 0 {
		t.Errorf("with the planner the lag passed the threshold at %s (peak %d)", with.LagLimit, with.Scaling.PeakLag)
	}
	if without.LagLimit < 0 || without.FinalPartitions != without.InitialPartitions || len(without.Decisions) != 0 {
		t.Errorf("without the planner: lag limit %s, partitions %d → %d", without.LagLimit, without.InitialPartitions, without.FinalPartitions)
	}
	if with.Scaling.PeakLag*100 > without.Scaling.PeakLag {
		t.Errorf("peak lag %d with the planner, %d without: want a hundredfold less", with.Scaling.PeakLag, without.Scaling.PeakLag)
	}
}

func TestPartitionLogKeepsTakenAndFirstDeclines(t *testing.T) {
	tr, _ := TraceByName(TraceRamp10x)
	r, err := RunPartitions(DefaultConfig(), DefaultPartitionConfig(), tr)
	if err != nil {
		t.Fatal(err)
	}
	log := r.Log()
	taken, declines := 0, map[string]int{}
	for _, d := range r.Decisions {
		if d.Taken() {
			taken++
		}
	}
	for _, d := range log {
		if !d.Taken() {
			declines[d.Reason]++
		}
	}
	logTaken := len(log) - len(declines)
	if taken == 0 || logTaken != taken {
		t.Fatalf("log has %d taken decisions, run %d", logTaken, taken)
	}
	for reason, n := range declines {
		if n != 1 {
			t.Errorf("decline %q logged %d times", reason, n)
		}
	}
	for _, want := range []string{partitions.ReasonBelowBaseline, partitions.ReasonNotSustained, partitions.ReasonInProgress} {
		if declines[want] != 1 {
			t.Errorf("no %q decline in the log", want)
		}
	}
	if len(r.Decisions) != int(tr.Duration/DefaultPartitionConfig().ObserveInterval) {
		t.Errorf("%d decisions for %s observed every %s: every observation must yield one", len(r.Decisions), tr.Duration, DefaultPartitionConfig().ObserveInterval)
	}
}
