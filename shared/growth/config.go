package growth

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"function/shared/config"
	"function/shared/partitions"
)

// ManagerConfig is the partition manager's configuration, from the environment.
type ManagerConfig struct {
	config.Kafka
	config.Redis
	partitions.Config
	Coordination

	Groups           []string `envconfig:"PARTITION_GROUPS" default:"notifications-service,analytics-group" desc:"comma-separated consumer groups whose lag counts towards growth and which must process everything published before a hold; a group with no committed offset on the topic is left out"`
	SampleIntervalMS int      `envconfig:"PARTITION_SAMPLE_INTERVAL_MS" default:"10000" desc:"how often the manager reads the produce rate and the lag and decides (one logged decision each time)"`
	RateWindowMS     int      `envconfig:"PARTITION_RATE_WINDOW_MS" default:"60000" desc:"window the produce rate is smoothed over (fast up: also over a sixth of it)"`
	HoldTimeoutMS    int      `envconfig:"PARTITION_HOLD_TIMEOUT_MS" default:"5000" desc:"longest the manager waits for every live ingest replica to hold its publishers (and later to release them); past it the growth is abandoned"`
	DrainTimeoutMS   int      `envconfig:"PARTITION_DRAIN_TIMEOUT_MS" default:"10000" desc:"longest publishes stay held waiting for the groups to process everything published before the hold; past it the growth is abandoned, not forced. Keep it below PRODUCER_ACK_TIMEOUT_MS so held requests are answered 202, not 503"`
	AssignTimeoutMS  int      `envconfig:"PARTITION_ASSIGN_TIMEOUT_MS" default:"150000" desc:"after a growth, longest the manager waits for every group to take the new partitions; the change counts as in progress until then"`
	MinReplicas      int      `envconfig:"PARTITION_MIN_REPLICAS" default:"1" desc:"fewest registered ingest replicas a growth needs (0: grow even when no publisher takes part)"`
	Nudge            bool     `envconfig:"PARTITION_NUDGE" default:"true" desc:"after a growth, make each group rebalance at once (a member joins and leaves) instead of waiting up to two metadata refreshes (2 minutes)"`
	Addr             string   `envconfig:"PARTITION_MANAGER_ADDR" default:"127.0.0.1:9091" desc:"listen address of the manager's /metrics, /health/readiness, /health/liveness and / (status)"`
}

// SampleInterval is PARTITION_SAMPLE_INTERVAL_MS as a duration.
func (c ManagerConfig) SampleInterval() time.Duration { return config.Millis(c.SampleIntervalMS) }

// GrowOptions are the Grower's options of the configuration.
func (c ManagerConfig) GrowOptions() GrowOptions {
	return GrowOptions{
		Groups:        c.Groups,
		HoldTimeout:   config.Millis(c.HoldTimeoutMS),
		DrainTimeout:  config.Millis(c.DrainTimeoutMS),
		AssignTimeout: config.Millis(c.AssignTimeoutMS),
		MinReplicas:   c.MinReplicas,
		Nudge:         c.Nudge,
	}
}

// Validate checks what envconfig cannot, naming the variable of each bad value.
func (c ManagerConfig) Validate() error {
	errs := []error{c.Kafka.Validate(), c.Redis.Validate(), c.Config.Validate(), c.Coordination.Validate()}
	if len(c.Groups) == 0 || slices.ContainsFunc(c.Groups, func(g string) bool { return strings.TrimSpace(g) == "" }) {
		errs = append(errs, &config.VarError{Name: "PARTITION_GROUPS", Value: strings.Join(c.Groups, ","), Reason: "name at least one consumer group, without empty entries"})
	}
	for _, v := range []struct {
		name  string
		value int
		least int
	}{
		{"PARTITION_SAMPLE_INTERVAL_MS", c.SampleIntervalMS, 100},
		{"PARTITION_RATE_WINDOW_MS", c.RateWindowMS, 1000},
		{"PARTITION_HOLD_TIMEOUT_MS", c.HoldTimeoutMS, 1},
		{"PARTITION_DRAIN_TIMEOUT_MS", c.DrainTimeoutMS, 1},
		{"PARTITION_ASSIGN_TIMEOUT_MS", c.AssignTimeoutMS, 0},
		{"PARTITION_MIN_REPLICAS", c.MinReplicas, 0},
	} {
		if v.value < v.least {
			errs = append(errs, &config.VarError{Name: v.name, Value: strconv.Itoa(v.value), Reason: "must be at least " + strconv.Itoa(v.least)})
		}
	}
	return errors.Join(errs...)
}
