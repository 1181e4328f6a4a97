package partitions

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"function/shared/config"
)

// Profile is the baseline of one traffic scenario: how much load a partition is
// expected to carry and the partition range the scenario allows.
type Profile struct {
	Name string
	// EventsPerSecPerPartition is the produce rate one partition should carry: one
	// consumer's throughput times the utilization the scenario can afford. The lower
	// it is, the earlier partitions grow and the more headroom a burst finds.
	EventsPerSecPerPartition float64
	// Min is the fewest partitions the scenario runs with; a topic below it grows to
	// it without waiting for load.
	Min int
	// Max caps growth in this scenario; Config.Max caps every scenario.
	Max int
}

// Built-in profiles, sized for consumers that each process about 100 events/s: the
// per-partition rate is that throughput at 90% (quiet), 75% (normal), 60% (peak) and
// 40% (burst) utilization, because bursts arrive faster than partitions can grow.
var builtin = []Profile{
	{Name: "quiet", EventsPerSecPerPartition: 90, Min: 1, Max: 8},
	{Name: "normal", EventsPerSecPerPartition: 75, Min: 3, Max: 32},
	{Name: "peak", EventsPerSecPerPartition: 60, Min: 6, Max: 48},
	{Name: "burst", EventsPerSecPerPartition: 40, Min: 12, Max: 64},
}

// ProfileNames lists the built-in profiles, quietest first.
func ProfileNames() []string {
	names := make([]string, len(builtin))
	for i, p := range builtin {
		names[i] = p.Name
	}
	return names
}

// Config tunes the Planner. Load it with config.Load("", &cfg) or start from
// DefaultConfig; Validate names the variable of a bad value.
type Config struct {
	// Profile is used for Inputs that name none.
	Profile string `envconfig:"PARTITION_PROFILE" default:"normal" desc:"traffic profile: quiet, normal, peak or burst"`
	// Max is the hard ceiling on partitions, whatever the profile allows.
	Max int `envconfig:"PARTITION_MAX" default:"64" desc:"hard ceiling on the events topic's partitions"`
	// CooldownMS is the least time between the end of one change and the next.
	CooldownMS int `envconfig:"PARTITION_COOLDOWN_MS" default:"180000" desc:"ms after a partition change ends before another may start"`
	// SustainMS is how long the need for more partitions must last before growing.
	SustainMS int `envconfig:"PARTITION_SUSTAIN_MS" default:"30000" desc:"ms the need for more partitions must persist before growing"`
	// SustainCount is how many consecutive observations must show the need.
	SustainCount int `envconfig:"PARTITION_SUSTAIN_COUNT" default:"3" desc:"consecutive observations that must show the need before growing"`
	// DrainMS is the horizon a consumer group's lag should drain within; lag adds
	// lag/drain to the produce rate the partitions must carry.
	DrainMS int `envconfig:"PARTITION_DRAIN_MS" default:"120000" desc:"ms within which a group's lag should drain; lag counts as extra rate over it"`
	// EventsPerPartition overrides profiles' events/s per partition, by profile name.
	EventsPerPartition map[string]float64 `envconfig:"PARTITION_EVENTS_PER_PARTITION" desc:"override of profiles' events/s per partition, e.g. normal:120,burst:50"`
}

// DefaultConfig is the configuration with every variable unset.
func DefaultConfig() Config {
	return Config{Profile: "normal", Max: 64, CooldownMS: 180000, SustainMS: 30000, SustainCount: 3, DrainMS: 120000}
}

// Cooldown is CooldownMS as a duration.
func (c Config) Cooldown() time.Duration { return time.Duration(c.CooldownMS) * time.Millisecond }

// Sustain is SustainMS as a duration.
func (c Config) Sustain() time.Duration { return time.Duration(c.SustainMS) * time.Millisecond }

// Drain is DrainMS as a duration.
func (c Config) Drain() time.Duration { return time.Duration(c.DrainMS) * time.Millisecond }

// LookupProfile returns the named built-in profile with the overrides of c applied.
func (c Config) LookupProfile(name string) (Profile, bool) {
	for _, p := range builtin {
		if p.Name == name {
			if v, ok := c.EventsPerPartition[name]; ok {
				p.EventsPerSecPerPartition = v
			}
			return p, true
		}
	}
	return Profile{}, false
}

// Validate checks the ranges, naming the variable of each bad value.
func (c Config) Validate() error {
	var errs []error
	if err := config.OneOf("PARTITION_PROFILE", c.Profile, ProfileNames()...); err != nil {
		errs = append(errs, err)
	}
	if err := config.Positive("PARTITION_MAX", int64(c.Max)); err != nil {
		errs = append(errs, err)
	}
	if c.CooldownMS < 0 {
		errs = append(errs, &config.VarError{Name: "PARTITION_COOLDOWN_MS", Value: fmt.Sprint(c.CooldownMS), Reason: "must not be negative"})
	}
	if c.SustainMS < 0 {
		errs = append(errs, &config.VarError{Name: "PARTITION_SUSTAIN_MS", Value: fmt.Sprint(c.SustainMS), Reason: "must not be negative"})
	}
	if err := config.Positive("PARTITION_SUSTAIN_COUNT", int64(c.SustainCount)); err != nil {
		errs = append(errs, err)
	}
	if c.DrainMS < 1000 {
		errs = append(errs, &config.VarError{Name: "PARTITION_DRAIN_MS", Value: fmt.Sprint(c.DrainMS), Reason: "must be at least 1000 (one second)"})
	}
	names := make([]string, 0, len(c.EventsPerPartition))
	for name := range c.EventsPerPartition {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := c.EventsPerPartition[name]
		value := fmt.Sprintf("%s:%g", name, v)
		if _, ok := c.LookupProfile(name); !ok {
			errs = append(errs, &config.VarError{Name: "PARTITION_EVENTS_PER_PARTITION", Value: value, Reason: "unknown profile; use one of " + strings.Join(ProfileNames(), ", ")})
		} else if !(v > 0) {
			errs = append(errs, &config.VarError{Name: "PARTITION_EVENTS_PER_PARTITION", Value: value, Reason: "events/s per partition must be above 0"})
		}
	}
	return errors.Join(errs...)
}
