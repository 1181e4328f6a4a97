package notification

import (
	"errors"
	"time"

	"function/shared/config"
	"function/shared/logging"
	"function/shared/scaling"
)

// Config is the notification function's configuration, from the environment.
type Config struct {
	config.Kafka
	config.Redis
	scaling.Config
	logging.Options // LOG_FORMAT, LOG_LEVEL: checked with the rest, so a bad one stops start-up
	// Consumer is loaded under the NOTIFICATION_ prefix over ConsumerDefaults.
	Consumer config.Consumer `ignored:"true"`

	Mode           string        `envconfig:"NOTIFICATION_MODE" default:"pull" desc:"pull: consume Kafka directly; push: only serve CloudEvents POSTed by a KafkaSource"`
	KeyPrefix      string        `envconfig:"REDIS_KEY_PREFIX" default:"tide:" desc:"prefix of every Redis key tide writes"`
	StreamMaxLen   int64         `envconfig:"NOTIFICATION_STREAM_MAXLEN" default:"10000" desc:"notifications kept per channel (older ones are trimmed; the all-time count is kept)"`
	DedupWindow    time.Duration `envconfig:"NOTIFICATION_DEDUP_WINDOW" default:"168h" desc:"how long an event's (source, id) is remembered to suppress duplicates"`
	TitleTemplates string        `envconfig:"NOTIFICATION_TITLE_TEMPLATES" desc:"JSON object: event type -> Go text/template of the title (fields: .Type .Kind .Action .Source .Repo .Subject .ID)"`
	ChannelRules   string        `envconfig:"NOTIFICATION_CHANNEL_RULES" desc:"comma-separated TYPE_PREFIX=CHANNEL rules; the first match routes an event, others go to the channel named by their source"`
}

// ConsumerDefaults tune the real-time consumer: fetches answered as soon as one byte
// is there, and what a partition has ready (up to 100 records, never waiting for more)
// stored in Redis with one round trip, in order; at low rates that is one record at a
// time, under load it saves a round trip per record (see BENCHMARKS.md).
func ConsumerDefaults() config.Consumer {
	return config.Consumer{
		Group:            "notifications-service",
		InitialOffset:    "latest",
		FetchMinBytes:    1,
		FetchMaxWaitMS:   100,
		BatchSize:        100,
		BatchWaitMS:      0,
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
		config.OneOf("NOTIFICATION_MODE", c.Mode, "pull", "push"),
		config.Positive("NOTIFICATION_STREAM_MAXLEN", c.StreamMaxLen),
	)
}

// LoadConfig reads the configuration from the environment.
func LoadConfig() (Config, error) {
	c := Config{Consumer: ConsumerDefaults()}
	if err := config.Load("NOTIFICATION", &c.Consumer); err != nil {
		return c, err
	}
	err := config.Load("", &c)
	return c, err
}
