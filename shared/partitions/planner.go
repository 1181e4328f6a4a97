// Package partitions decides when the events topic needs more partitions.
//
// Replicas beyond the partition count sit idle, so once the autoscaler reaches the
// partition count only more partitions add consumer capacity. Growing is not free:
// keys remap, so the caller holds new publishes and lets consumers drain first, and a
// topic can never shrink again. The Planner therefore grows only on a need that
// persists, never while a change is in progress, not again within a cooldown, and
// never past a ceiling; and it answers every observation with a Decision, taken or
// declined, that the caller logs with all its inputs (Decision.LogAttrs).
//
// The need for an observation is
//
//	need = ceil((produce rate + max group lag / drain) / profile events/s per partition)
//
// and the target of a growth sizes for the load expected when the next growth could
// happen, so a steady ramp is met in a few steps rather than one partition at a time:
//
//	trend     = least-squares slope of the produce rate over the last sustain + cooldown
//	projected = produce rate + max(0, trend) × (sustain + cooldown)
//	target    = min(ceiling, max(need, ceil((projected + lag / drain) / per partition), current + 1))
//
// The Planner is deterministic: time comes only from Inputs.At.
package partitions

import (
	"fmt"
	"log/slog"
	"math"
	"sort"
	"time"
)

// Actions of a Decision.
const (
	ActionGrow = "grow"
	ActionHold = "hold"
)

// Reasons of a Decision: the first two go with ActionGrow, the rest with ActionHold.
const (
	ReasonSustained      = "sustained need"
	ReasonBelowMinimum   = "below profile minimum"
	ReasonInProgress     = "in progress"
	ReasonBelowBaseline  = "below baseline"
	ReasonNotSustained   = "not sustained"
	ReasonCooldown       = "cooldown"
	ReasonAtCeiling      = "at ceiling"
	ReasonUnknownProfile = "unknown profile"
	ReasonInvalid        = "invalid inputs"
)

// Inputs is one observation of the live load, read by the caller.
type Inputs struct {
	At time.Time `json:"at"`
	// ProduceRatePerSec is the topic's produce rate, smoothed by the caller (for
	// example scaling.Signal.ProduceRatePerSec).
	ProduceRatePerSec float64 `json:"produce_rate_per_sec"`
	// LagByGroup is each consumer group's total lag on the topic.
	LagByGroup map[string]int64 `json:"lag_by_group"`
	// Partitions is the topic's partition count now.
	Partitions int `json:"partitions"`
	// InProgress says a partition change is under way (publishes held, consumers
	// draining, or the new count not yet seen by every client).
	InProgress bool `json:"in_progress"`
	// Profile names the traffic profile; empty means Config.Profile.
	Profile string `json:"profile,omitempty"`
}

// Decision is the Planner's answer to one observation.
type Decision struct {
	At time.Time `json:"at"`
	// Action is ActionGrow or ActionHold.
	Action string `json:"action"`
	// Current is the partition count observed.
	Current int `json:"current"`
	// Target is the count to grow to; for a hold, the count the load alone calls for.
	Target int `json:"target"`
	// Reason is one of the Reason constants: why the Planner grew or held.
	Reason string `json:"reason"`
	// Detail says the numbers behind Reason, for people.
	Detail string `json:"detail"`
	// Inputs are the observation the decision answers.
	Inputs `json:"inputs"`
}

// Taken says the Decision asks for a change.
func (d Decision) Taken() bool { return d.Action == ActionGrow }

// LogAttrs returns the decision and all its inputs as attributes for one structured
// log record: logger.LogAttrs(ctx, slog.LevelInfo, "partition decision", d.LogAttrs()...).
func (d Decision) LogAttrs() []slog.Attr {
	groups := make([]string, 0, len(d.LagByGroup))
	for g := range d.LagByGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	lag := make([]slog.Attr, len(groups))
	for i, g := range groups {
		lag[i] = slog.Int64(g, d.LagByGroup[g])
	}
	return []slog.Attr{
		slog.Time("at", d.At),
		slog.String("action", d.Action),
		slog.Int("current", d.Current),
		slog.Int("target", d.Target),
		slog.String("reason", d.Reason),
		slog.String("detail", d.Detail),
		slog.String("profile", d.Profile),
		slog.Float64("produce_rate_per_sec", d.ProduceRatePerSec),
		slog.Int("partitions", d.Partitions),
		slog.Bool("in_progress", d.InProgress),
		slog.GroupAttrs("lag", lag...),
	}
}

// Planner decides partition growth from a sequence of observations. It is not safe
// for concurrent use: one loop observes and decides.
type Planner struct {
	cfg Config

	streak      int // consecutive observations with need > current
	streakStart time.Time
	history     []ratePoint // produce rates over the last sustain + cooldown
	changed     bool
	lastChange  time.Time // the grow decision, or the last observation in progress
}

type ratePoint struct {
	at   time.Time
	rate float64
}

// NewPlanner returns a Planner for cfg, or cfg's validation error.
func NewPlanner(cfg Config) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	return &Planner{cfg: cfg}, nil
}

// Decide answers one observation. Observations must come in increasing At.
func (p *Planner) Decide(in Inputs) Decision {
	if in.Profile == "" {
		in.Profile = p.cfg.Profile
	}
	d := Decision{At: in.At, Action: ActionHold, Current: in.Partitions, Target: in.Partitions, Inputs: in}
	prof, ok := p.cfg.LookupProfile(in.Profile)
	if !ok {
		p.resetStreak()
		return d.hold(ReasonUnknownProfile, "profile %q is none of %v", in.Profile, ProfileNames())
	}
	if in.Partitions < 1 || math.IsNaN(in.ProduceRatePerSec) || in.ProduceRatePerSec < 0 {
		p.resetStreak()
		return d.hold(ReasonInvalid, "partitions %d, produce rate %g", in.Partitions, in.ProduceRatePerSec)
	}
	p.record(in.At, in.ProduceRatePerSec)
	if in.InProgress {
		p.resetStreak()
		p.changed, p.lastChange = true, in.At
		return d.hold(ReasonInProgress, "a partition change is under way")
	}

	ceiling := min(p.cfg.Max, prof.Max)
	lagRate := float64(maxLag(in.LagByGroup)) / p.cfg.Drain().Seconds()
	need := p.partitionsFor(in.ProduceRatePerSec+lagRate, prof)
	d.Target = need
	cooling := p.changed && in.At.Sub(p.lastChange) < p.cfg.Cooldown()

	switch {
	case in.Partitions < prof.Min && in.Partitions < ceiling:
		d.Target = min(ceiling, max(need, prof.Min))
		if cooling {
			return d.hold(ReasonCooldown, "below profile minimum %d; %s of cooldown left", prof.Min, p.cfg.Cooldown()-in.At.Sub(p.lastChange))
		}
		p.grew(in.At)
		return d.grow(ReasonBelowMinimum, "profile %s starts at %d partitions", prof.Name, prof.Min)
	case need <= in.Partitions:
		p.resetStreak()
		return d.hold(ReasonBelowBaseline, "%.0f ev/s (lag adds %.1f) needs %d at %g ev/s per partition", in.ProduceRatePerSec, lagRate, need, prof.EventsPerSecPerPartition)
	case in.Partitions >= ceiling:
		p.resetStreak()
		d.Target = ceiling
		return d.hold(ReasonAtCeiling, "need %d, ceiling %d (PARTITION_MAX %d, profile %s max %d)", need, ceiling, p.cfg.Max, prof.Name, prof.Max)
	}

	if p.streak == 0 {
		p.streakStart = in.At
	}
	p.streak++
	lasted := in.At.Sub(p.streakStart)
	if p.streak < p.cfg.SustainCount || lasted < p.cfg.Sustain() {
		return d.hold(ReasonNotSustained, "need %d for %s over %d observations; growth needs %s and %d", need, lasted, p.streak, p.cfg.Sustain(), p.cfg.SustainCount)
	}
	if cooling {
		return d.hold(ReasonCooldown, "need %d sustained; %s of cooldown left", need, p.cfg.Cooldown()-in.At.Sub(p.lastChange))
	}

	trend := max(0, p.trend())
	ahead := (p.cfg.Sustain() + p.cfg.Cooldown()).Seconds()
	projected := in.ProduceRatePerSec + trend*ahead
	d.Target = min(ceiling, max(need, p.partitionsFor(projected+lagRate, prof), in.Partitions+1))
	p.grew(in.At)
	return d.grow(ReasonSustained, "need %d for %s; rate %.0f ev/s rising %.2f ev/s² → %.0f ev/s in %s", need, lasted, in.ProduceRatePerSec, trend, projected, time.Duration(ahead)*time.Second)
}

func (p *Planner) partitionsFor(rate float64, prof Profile) int {
	return max(1, int(math.Ceil(rate/prof.EventsPerSecPerPartition-1e-9)))
}

func (p *Planner) resetStreak() { p.streak = 0 }

// record keeps the produce rate at the time for the trend, over as long a span as
// the projection looks ahead.
func (p *Planner) record(at time.Time, rate float64) {
	cut := at.Add(-(p.cfg.Sustain() + p.cfg.Cooldown()))
	i := 0
	for i < len(p.history) && !p.history[i].at.After(cut) {
		i++
	}
	p.history = append(p.history[i:], ratePoint{at: at, rate: rate})
}

// trend is the least-squares slope of the recorded rates (events/s²), 0 with fewer
// than SustainCount points.
func (p *Planner) trend() float64 {
	n := len(p.history)
	if n < max(p.cfg.SustainCount, 2) {
		return 0
	}
	t0 := p.history[0].at
	var st, sr float64
	for _, h := range p.history {
		st += h.at.Sub(t0).Seconds()
		sr += h.rate
	}
	mt, mr := st/float64(n), sr/float64(n)
	var num, den float64
	for _, h := range p.history {
		dt := h.at.Sub(t0).Seconds() - mt
		num += dt * (h.rate - mr)
		den += dt * dt
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func (p *Planner) grew(at time.Time) {
	p.resetStreak()
	p.changed, p.lastChange = true, at
}

func (d Decision) hold(reason, format string, args ...any) Decision {
	d.Action, d.Reason, d.Detail = ActionHold, reason, fmt.Sprintf(format, args...)
	return d
}

func (d Decision) grow(reason, format string, args ...any) Decision {
	d.Action, d.Reason, d.Detail = ActionGrow, reason, fmt.Sprintf(format, args...)
	return d
}

func maxLag(byGroup map[string]int64) int64 {
	var m int64
	for _, l := range byGroup {
		m = max(m, l)
	}
	return m
}
