package scaling

import (
	"errors"
	"fmt"
	"time"

	"function/shared/config"
)

// Config tunes the Estimator. Load it with config.Load("", &cfg) or start from
// DefaultConfig; Validate names the variable of a bad value.
type Config struct {
	// LagThreshold is the lag one replica may carry, KEDA's lagThreshold: lag above
	// LagThreshold × replicas is a backlog to drain. Also the lag above which the
	// consumers count as saturated when learning their capacity.
	LagThreshold int64 `envconfig:"SCALING_LAG_THRESHOLD" default:"100" desc:"lag one replica may carry (KEDA's lagThreshold); more is a backlog to drain"`
	// WindowMS is the smoothing window: rates and lag are averaged over it, the drain
	// horizon is one window, and a recommendation only drops after a whole window of
	// lower need. Use Window for the duration.
	WindowMS int `envconfig:"SCALING_WINDOW_MS" default:"60000" desc:"smoothing window in ms: averaging span, drain horizon and scale-down hold"`
	// MinReplicas is the floor of Recommended; 0 lets KEDA scale to zero when there
	// is no load for a window.
	MinReplicas int `envconfig:"SCALING_MIN_REPLICAS" default:"1" desc:"fewest replicas recommended (0 allows scale to zero)"`
	// MaxReplicas is the ceiling of Recommended, below the partition count that
	// always caps it.
	MaxReplicas int `envconfig:"SCALING_MAX_REPLICAS" default:"64" desc:"most replicas recommended (the partition count caps it too)"`
	// ReplicaRatePerSec seeds the per-replica capacity (events/s) before any has been
	// learned; 0 learns it from saturated consumption only.
	ReplicaRatePerSec float64 `envconfig:"SCALING_REPLICA_RATE" default:"0" desc:"initial guess of events/s one replica processes; 0 learns it from observed consumption"`
}

// DefaultConfig is the configuration with every variable unset.
func DefaultConfig() Config {
	return Config{LagThreshold: 100, WindowMS: 60000, MinReplicas: 1, MaxReplicas: 64}
}

// Window is WindowMS as a duration.
func (c Config) Window() time.Duration { return time.Duration(c.WindowMS) * time.Millisecond }

// Validate checks the ranges, naming the variable of each bad value.
func (c Config) Validate() error {
	var errs []error
	if err := config.Positive("SCALING_LAG_THRESHOLD", c.LagThreshold); err != nil {
		errs = append(errs, err)
	}
	if c.WindowMS < 1000 {
		errs = append(errs, &config.VarError{Name: "SCALING_WINDOW_MS", Value: fmt.Sprint(c.WindowMS), Reason: "must be at least 1000 (one second)"})
	}
	if c.MinReplicas < 0 {
		errs = append(errs, &config.VarError{Name: "SCALING_MIN_REPLICAS", Value: fmt.Sprint(c.MinReplicas), Reason: "must not be negative"})
	}
	if c.MaxReplicas < 1 || c.MaxReplicas < c.MinReplicas {
		errs = append(errs, &config.VarError{Name: "SCALING_MAX_REPLICAS", Value: fmt.Sprint(c.MaxReplicas), Reason: fmt.Sprintf("must be at least 1 and at least SCALING_MIN_REPLICAS (%d)", c.MinReplicas)})
	}
	if c.ReplicaRatePerSec < 0 {
		errs = append(errs, &config.VarError{Name: "SCALING_REPLICA_RATE", Value: fmt.Sprint(c.ReplicaRatePerSec), Reason: "must not be negative"})
	}
	return errors.Join(errs...)
}
