package sim

import (
	"math"
	"time"
)

// Trace is a producer's traffic over time: the nominal produce rate at each second.
// The simulation adds deterministic jitter on top (Config.Jitter).
type Trace struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Duration    time.Duration `json:"duration"`
	// Rate is the nominal produce rate (events/s) at offset t from the start.
	Rate func(t time.Duration) float64 `json:"-"`
}

// Trace names.
const (
	TraceRamp      = "ramp"
	TraceSpike     = "spike"
	TraceSawtooth  = "sawtooth"
	TraceSlowDecay = "slow-decay"
	TraceRamp10x   = "ramp10x"
)

// linear interpolates from a at t0 to b at t1.
func linear(t, t0, t1 time.Duration, a, b float64) float64 {
	return a + (b-a)*float64(t-t0)/float64(t1-t0)
}

// Traces returns the built-in traces, in a fixed order. Rates are sized for the
// default Config (consumers of 100 events/s on 12 partitions, so at most 1200/s).
func Traces() []Trace {
	return []Trace{
		{
			Name:        TraceRamp,
			Description: "200/s for 5m, linear to 1000/s over 20m, hold 15m",
			Duration:    40 * time.Minute,
			Rate: func(t time.Duration) float64 {
				switch {
				case t < 5*time.Minute:
					return 200
				case t < 25*time.Minute:
					return linear(t, 5*time.Minute, 25*time.Minute, 200, 1000)
				default:
					return 1000
				}
			},
		},
		{
			Name:        TraceSpike,
			Description: "300/s with steps to 1000/s at 8m (2m long) and 24m (3m long)",
			Duration:    40 * time.Minute,
			Rate: func(t time.Duration) float64 {
				if (t >= 8*time.Minute && t < 10*time.Minute) || (t >= 24*time.Minute && t < 27*time.Minute) {
					return 1000
				}
				return 300
			},
		},
		{
			Name:        TraceSawtooth,
			Description: "8m teeth: 200/s rising to 900/s over 6m, dropping back, 2m at 200/s",
			Duration:    40 * time.Minute,
			Rate: func(t time.Duration) float64 {
				in := t % (8 * time.Minute)
				if in < 6*time.Minute {
					return linear(in, 0, 6*time.Minute, 200, 900)
				}
				return 200
			},
		},
		{
			Name:        TraceSlowDecay,
			Description: "1000/s for 5m, then decaying toward 200/s (time constant 10m)",
			Duration:    45 * time.Minute,
			Rate: func(t time.Duration) float64 {
				if t < 5*time.Minute {
					return 1000
				}
				return 200 + 800*math.Exp(-float64(t-5*time.Minute)/float64(10*time.Minute))
			},
		},
		{
			Name:        TraceRamp10x,
			Description: "100/s for 5m, ramp to 1000/s (10x) over 15m, hold 15m, decay to 100/s over 15m",
			Duration:    50 * time.Minute,
			Rate: func(t time.Duration) float64 {
				switch {
				case t < 5*time.Minute:
					return 100
				case t < 20*time.Minute:
					return linear(t, 5*time.Minute, 20*time.Minute, 100, 1000)
				case t < 35*time.Minute:
					return 1000
				default:
					return linear(t, 35*time.Minute, 50*time.Minute, 1000, 100)
				}
			},
		},
	}
}

// TraceByName returns the built-in trace called name.
func TraceByName(name string) (Trace, bool) {
	for _, tr := range Traces() {
		if tr.Name == name {
			return tr, true
		}
	}
	return Trace{}, false
}

// TraceNames lists the built-in traces in order.
func TraceNames() []string {
	trs := Traces()
	names := make([]string, len(trs))
	for i, tr := range trs {
		names[i] = tr.Name
	}
	return names
}
