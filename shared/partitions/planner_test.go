package partitions

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"function/shared/config"
)

var t0 = time.Date(2025, time.January, 6, 9, 0, 0, 0, time.UTC)

func planner(t *testing.T, mutate func(*Config)) *Planner {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestDefaultConfigMatchesEnvDefaults(t *testing.T) {
	for _, v := range []string{"PARTITION_PROFILE", "PARTITION_MAX", "PARTITION_COOLDOWN_MS", "PARTITION_SUSTAIN_MS", "PARTITION_SUSTAIN_COUNT", "PARTITION_DRAIN_MS", "PARTITION_EVENTS_PER_PARTITION"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	var got Config
	if err := config.Load("", &got); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if got.Profile != want.Profile || got.Max != want.Max || got.CooldownMS != want.CooldownMS || got.SustainMS != want.SustainMS ||
		got.SustainCount != want.SustainCount || got.DrainMS != want.DrainMS || len(got.EventsPerPartition) != 0 {
		t.Fatalf("env defaults %+v, DefaultConfig %+v", got, want)
	}
}

func TestEventsPerPartitionOverride(t *testing.T) {
	t.Setenv("PARTITION_EVENTS_PER_PARTITION", "normal:120,burst:50")
	var cfg Config
	if err := config.Load("", &cfg); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"normal": 120, "burst": 50, "peak": 60} {
		p, ok := cfg.LookupProfile(name)
		if !ok || p.EventsPerSecPerPartition != want {
			t.Errorf("profile %s: %g events/s per partition, want %g", name, p.EventsPerSecPerPartition, want)
		}
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"unknown profile", func(c *Config) { c.Profile = "huge" }, "PARTITION_PROFILE"},
		{"zero ceiling", func(c *Config) { c.Max = 0 }, "PARTITION_MAX"},
		{"negative cooldown", func(c *Config) { c.CooldownMS = -1 }, "PARTITION_COOLDOWN_MS"},
		{"negative sustain", func(c *Config) { c.SustainMS = -1 }, "PARTITION_SUSTAIN_MS"},
		{"zero count", func(c *Config) { c.SustainCount = 0 }, "PARTITION_SUSTAIN_COUNT"},
		{"short drain", func(c *Config) { c.DrainMS = 10 }, "PARTITION_DRAIN_MS"},
		{"override of no profile", func(c *Config) { c.EventsPerPartition = map[string]float64{"huge": 10} }, "PARTITION_EVENTS_PER_PARTITION"},
		{"zero override", func(c *Config) { c.EventsPerPartition = map[string]float64{"normal": 0} }, "PARTITION_EVENTS_PER_PARTITION"},
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
			if _, err := NewPlanner(cfg); err == nil {
				t.Fatal("NewPlanner accepted an invalid config")
			}
		})
	}
}

// step is one observation and what the planner must answer.
type step struct {
	sec        int
	rate       float64
	lag        int64
	partitions int
	inProgress bool
	profile    string
	action     string
	reason     string
	target     int // checked when not 0
}

func TestDecide(t *testing.T) {
	fast := func(c *Config) { c.SustainMS, c.SustainCount, c.CooldownMS = 30000, 3, 60000 }
	tests := []struct {
		name   string
		mutate func(*Config)
		steps  []step
	}{
		{
			name: "load within the partitions holds below baseline",
			steps: []step{
				{sec: 0, rate: 200, partitions: 3, action: ActionHold, reason: ReasonBelowBaseline, target: 3},
				{sec: 10, rate: 100, partitions: 3, action: ActionHold, reason: ReasonBelowBaseline, target: 2},
			},
		},
		{
			name:   "need must persist for the count and the duration",
			mutate: fast,
			steps: []step{
				{sec: 0, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained, target: 6},
				{sec: 10, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 20, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained}, // 3 observations, 20s
				{sec: 30, rate: 400, partitions: 3, action: ActionGrow, reason: ReasonSustained, target: 6},
			},
		},
		{
			name:   "a dip restarts the streak",
			mutate: fast,
			steps: []step{
				{sec: 0, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 10, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 20, rate: 200, partitions: 3, action: ActionHold, reason: ReasonBelowBaseline},
				{sec: 30, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 60, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 70, rate: 400, partitions: 3, action: ActionGrow, reason: ReasonSustained},
			},
		},
		{
			name:   "in progress, then cooldown from the end of the change",
			mutate: fast,
			steps: []step{
				{sec: 0, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 10, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 20, rate: 400, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 30, rate: 400, partitions: 3, action: ActionGrow, reason: ReasonSustained, target: 6},
				{sec: 40, rate: 900, partitions: 3, inProgress: true, action: ActionHold, reason: ReasonInProgress},
				{sec: 50, rate: 900, partitions: 3, inProgress: true, action: ActionHold, reason: ReasonInProgress},
				{sec: 60, rate: 900, partitions: 6, action: ActionHold, reason: ReasonNotSustained, target: 12},
				{sec: 70, rate: 900, partitions: 6, action: ActionHold, reason: ReasonNotSustained},
				{sec: 80, rate: 900, partitions: 6, action: ActionHold, reason: ReasonNotSustained},
				{sec: 90, rate: 900, partitions: 6, action: ActionHold, reason: ReasonCooldown}, // 40s since the change ended
				{sec: 110, rate: 900, partitions: 6, action: ActionGrow, reason: ReasonSustained},
			},
		},
		{
			name:   "ceiling caps the target and then holds",
			mutate: func(c *Config) { fast(c); c.Max = 10 },
			steps: []step{
				{sec: 0, rate: 2000, partitions: 8, action: ActionHold, reason: ReasonNotSustained},
				{sec: 10, rate: 2000, partitions: 8, action: ActionHold, reason: ReasonNotSustained},
				{sec: 20, rate: 2000, partitions: 8, action: ActionHold, reason: ReasonNotSustained},
				{sec: 30, rate: 2000, partitions: 8, action: ActionGrow, reason: ReasonSustained, target: 10},
				{sec: 40, rate: 2000, partitions: 10, action: ActionHold, reason: ReasonAtCeiling, target: 10},
			},
		},
		{
			name: "profile max is a ceiling too",
			steps: []step{
				{sec: 0, rate: 2000, partitions: 8, profile: "quiet", action: ActionHold, reason: ReasonAtCeiling, target: 8},
			},
		},
		{
			name: "below the profile minimum grows without waiting",
			steps: []step{
				{sec: 0, rate: 10, partitions: 1, profile: "peak", action: ActionGrow, reason: ReasonBelowMinimum, target: 6},
			},
		},
		{
			name:   "lag adds to the need",
			mutate: fast,
			steps: []step{
				// 200/s fits 3 partitions; 24000 lag over 120s adds 200/s.
				{sec: 0, rate: 200, lag: 24000, partitions: 3, action: ActionHold, reason: ReasonNotSustained, target: 6},
			},
		},
		{
			name:   "a rising rate is sized ahead",
			mutate: fast,
			steps: []step{
				{sec: 0, rate: 210, partitions: 3, action: ActionHold, reason: ReasonBelowBaseline},
				{sec: 10, rate: 220, partitions: 3, action: ActionHold, reason: ReasonBelowBaseline},
				{sec: 20, rate: 230, partitions: 3, action: ActionHold, reason: ReasonNotSustained, target: 4},
				{sec: 30, rate: 240, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				{sec: 40, rate: 250, partitions: 3, action: ActionHold, reason: ReasonNotSustained},
				// 260/s rising 1/s² → 260 + 90 = 350/s in sustain + cooldown → 5.
				{sec: 50, rate: 260, partitions: 3, action: ActionGrow, reason: ReasonSustained, target: 5},
			},
		},
		{
			name: "unknown profile and invalid inputs hold",
			steps: []step{
				{sec: 0, rate: 100, partitions: 3, profile: "huge", action: ActionHold, reason: ReasonUnknownProfile},
				{sec: 10, rate: 100, partitions: 0, action: ActionHold, reason: ReasonInvalid},
				{sec: 20, rate: -1, partitions: 3, action: ActionHold, reason: ReasonInvalid},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planner(t, tt.mutate)
			for _, s := range tt.steps {
				in := Inputs{At: at(s.sec), ProduceRatePerSec: s.rate, LagByGroup: map[string]int64{"analytics-group": s.lag}, Partitions: s.partitions, InProgress: s.inProgress, Profile: s.profile}
				d := p.Decide(in)
				if d.Action != s.action || d.Reason != s.reason || (s.target != 0 && d.Target != s.target) {
					t.Fatalf("t=%ds: %s %d→%d %q (%s); want %s %q target %d", s.sec, d.Action, d.Current, d.Target, d.Reason, d.Detail, s.action, s.reason, s.target)
				}
				if d.Current != s.partitions || !d.At.Equal(in.At) || d.Detail == "" {
					t.Fatalf("t=%ds: decision %+v does not carry its inputs", s.sec, d)
				}
				if d.Taken() && d.Target <= d.Current {
					t.Fatalf("t=%ds: a growth to %d from %d", s.sec, d.Target, d.Current)
				}
			}
		})
	}
}

func TestDecisionDefaultsTheProfile(t *testing.T) {
	p := planner(t, func(c *Config) { c.Profile = "burst" })
	d := p.Decide(Inputs{At: t0, ProduceRatePerSec: 10, Partitions: 12})
	if d.Profile != "burst" || d.Reason != ReasonBelowBaseline {
		t.Fatalf("decision %+v, want profile burst below baseline", d)
	}
}

func TestLogAttrsCarryEveryInput(t *testing.T) {
	p := planner(t, nil)
	d := p.Decide(Inputs{At: t0, ProduceRatePerSec: 123.5, LagByGroup: map[string]int64{"notifications-service": 7, "analytics-group": 9}, Partitions: 4})
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).LogAttrs(t.Context(), slog.LevelInfo, "partition decision", d.LogAttrs()...)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"action": "hold", "reason": ReasonBelowBaseline, "current": 4.0, "target": 2.0, "profile": "normal",
		"produce_rate_per_sec": 123.5, "partitions": 4.0, "in_progress": false,
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v (record %s)", k, rec[k], want, buf.String())
		}
	}
	lag, _ := rec["lag"].(map[string]any)
	if lag["notifications-service"] != 7.0 || lag["analytics-group"] != 9.0 {
		t.Errorf("lag = %v, want both groups", rec["lag"])
	}
	if _, ok := rec["detail"]; !ok || !strings.Contains(buf.String(), `"at":"2025-01-06T09:00:00Z"`) {
		t.Errorf("record %s lacks detail or at", buf.String())
	}
}

func TestDecisionJSONNestsInputs(t *testing.T) {
	d := planner(t, nil).Decide(Inputs{At: t0, ProduceRatePerSec: 50, Partitions: 3})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"inputs":{"at":`) || !strings.Contains(string(b), `"action":"hold"`) {
		t.Fatalf("JSON %s", b)
	}
}
