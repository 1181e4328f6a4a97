package analytics

import (
	"errors"
	"fmt"
	"time"

	"function/shared/config"
	"function/shared/logging"
	"function/shared/scaling"
)

// Config is the analytics function's configuration, from the environment.
type Config struct {
	config.Kafka
	config.Redis
	scaling.Config
	logging.Options // LOG_FORMAT, LOG_LEVEL: checked with the rest, so a bad one stops start-up
	// Consumer is loaded under the ANALYTICS_ prefix over ConsumerDefaults.
	Consumer config.Consumer `ignored:"true"`

	Mode        string        `envconfig:"ANALYTICS_MODE" default:"pull" desc:"pull: consume Kafka directly in batches; push: only serve CloudEvents POSTed by a KafkaSource"`
	KeyPrefix   string        `envconfig:"REDIS_KEY_PREFIX" default:"tide:" desc:"prefix of every Redis key tide writes"`
	DedupWindow time.Duration `envconfig:"ANALYTICS_DEDUP_WINDOW" default:"168h" desc:"how long an event's (source, id) is at least remembered so it is counted once (at most twice as long: remembered per window-long epoch)"`
}

// ConsumerDefaults tune the batch consumer: up to 500 records at once, waiting up to
// 200 ms to fill a batch, fetches that wait for 64 KiB (or 250 ms).
func ConsumerDefaults() config.Consumer {
	return config.Consumer{
		Group:            "analytics-group",
		InitialOffset:    "latest",
		FetchMinBytes:    64 << 10,
		FetchMaxWaitMS:   250,
		BatchSize:        500,
		BatchWaitMS:      200,
		CommitIntervalMS: 1000,
		MaxAttempts:      5,
		RetryBackoffMS:   100,
	}
}

// Validate checks what envconfig cannot.
func (c Config) Validate() error {
	return errors.Join(
		c.Kafka.Validate(),
		c.Consumer.Validate(),
		c.Config.Validate(),
		c.Redis.Validate(),
		c.Options.Validate(),
		config.OneOf("ANALYTICS_MODE", c.Mode, "pull", "push"),
		positive("ANALYTICS_DEDUP_WINDOW", c.DedupWindow),
	)
}

// LoadConfig reads the configuration from the environment.
func LoadConfig() (Config, error) {
	c := Config{Consumer: ConsumerDefaults()}
	if err := config.Load("ANALYTICS", &c.Consumer); err != nil {
		return c, err
	}
	err := config.Load("", &c)
	return c, err
}

func positive(name string, d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("%s must be at least 1ms, got %s", name, d)
	}
	return nil
}
