package ingest

import (
	"errors"

	"function/shared/config"
	"function/shared/gctune"
	"function/shared/growth"
	"function/shared/logging"
)

// Config is the ingest function's configuration, from the environment.
type Config struct {
	config.Kafka
	config.Producer
	config.Redis // the rate limiter (INGEST_RATE_LIMIT_ENABLED) and partition coordination
	Protection   // API keys and rate limits, see protect.go
	growth.Coordination
	logging.Options // LOG_FORMAT, LOG_LEVEL: checked with the rest, so a bad one stops start-up

	PartitionKeyAttribute string `envconfig:"PARTITION_KEY_ATTRIBUTE" default:"subject" desc:"attribute (or extension) whose value keys an event that has no partitionkey extension; events without it are keyed by source"`
	MaxBodyBytes          int64  `envconfig:"INGEST_MAX_BODY_BYTES" default:"16777216" desc:"largest request body accepted (413 beyond)"`
	MaxBatchEvents        int    `envconfig:"INGEST_MAX_BATCH_EVENTS" default:"5000" desc:"most events in one batch request (413 beyond)"`
	MaxEventBytes         int    `envconfig:"INGEST_MAX_EVENT_BYTES" default:"921600" desc:"largest single event (413 beyond); keep it below the topic's max.message.bytes"`
	GCPercent             int    `envconfig:"INGEST_GC_PERCENT" default:"400" desc:"GOGC of a process that runs ingest alone, paired with the soft memory limit below (0: leave Go's defaults; GOGC and GOMEMLIMIT, when set, win)"`
	MemoryLimitBytes      int64  `envconfig:"INGEST_MEMORY_LIMIT_BYTES" default:"0" desc:"soft memory limit of that process when its container sets none (0: three times PRODUCER_MAX_BUFFERED_BYTES, at least 100 MiB); with a container limit, 90 % of it"`
}

// GC is how a process that runs only ingest tunes its garbage collector (see
// shared/gctune). Ingest bounds what it holds (PRODUCER_MAX_BUFFERED_BYTES), so the
// soft limit follows that bound unless set.
func (c Config) GC() gctune.Settings {
	limit := c.MemoryLimitBytes
	if limit == 0 {
		limit = max(3*c.MaxBufferedBytes, 100<<20)
	}
	return gctune.Settings{GCPercent: c.GCPercent, Limit: limit}
}

// Limits are the request limits of the configuration.
func (c Config) Limits() Limits {
	return Limits{MaxBodyBytes: c.MaxBodyBytes, MaxBatchEvents: c.MaxBatchEvents, MaxEventBytes: c.MaxEventBytes}
}

// Validate checks what envconfig cannot.
func (c Config) Validate() error {
	return errors.Join(
		c.Kafka.Validate(),
		c.Producer.Validate(),
		c.Protection.Validate(),
		c.Coordination.Validate(),
		c.Redis.Validate(),
		c.Options.Validate(),
		config.Positive("INGEST_MAX_BODY_BYTES", c.MaxBodyBytes),
		config.Positive("INGEST_MAX_BATCH_EVENTS", int64(c.MaxBatchEvents)),
		config.Positive("INGEST_MAX_EVENT_BYTES", int64(c.MaxEventBytes)),
		config.NotNegative("INGEST_GC_PERCENT", int64(c.GCPercent)),
		config.NotNegative("INGEST_MEMORY_LIMIT_BYTES", c.MemoryLimitBytes),
	)
}

// LoadConfig reads the configuration from the environment.
func LoadConfig() (Config, error) {
	var c Config
	err := config.Load("", &c)
	return c, err
}
