package config

import (
	"errors"
	"time"
)

// Kafka is how every function reaches the Kafka cluster and the events topic.
type Kafka struct {
	Brokers           []string `envconfig:"KAFKA_BROKERS" desc:"comma-separated bootstrap brokers; empty means the local runner starts an embedded broker (functions require it)"`
	Topic             string   `envconfig:"KAFKA_TOPIC" default:"events" desc:"topic the events are published to and consumed from"`
	DeadLetterTopic   string   `envconfig:"KAFKA_DLQ_TOPIC" default:"events-dlq" desc:"topic poison records are sent to"`
	Partitions        int32    `envconfig:"TOPIC_PARTITIONS" default:"6" desc:"partitions of the events topic when tide creates it"`
	ReplicationFactor int16    `envconfig:"TOPIC_REPLICATION_FACTOR" default:"1" desc:"replication factor of the topics tide creates"`
	ClientID          string   `envconfig:"KAFKA_CLIENT_ID" default:"tide" desc:"client.id sent to the brokers"`
	Version           string   `envconfig:"KAFKA_VERSION" default:"3.9.0" desc:"Kafka protocol version sarama speaks (2.1.0 or later: Kafka 4 dropped older protocols)"`
	DialTimeoutMS     int      `envconfig:"KAFKA_DIAL_TIMEOUT_MS" default:"5000" desc:"timeout for connecting to a broker"`
	SASL
	TLS TLS `envconfig:"KAFKA_TLS"`
}

// SASL configures authentication to the brokers.
type SASL struct {
	Mechanism string `envconfig:"KAFKA_SASL_MECHANISM" desc:"empty (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	User      string `envconfig:"KAFKA_SASL_USER" desc:"SASL user name"`
	Password  string `envconfig:"KAFKA_SASL_PASSWORD" desc:"SASL password"`
}

// TLS configures transport security for a client.
type TLS struct {
	Enabled            bool   `envconfig:"ENABLED" default:"false" desc:"use TLS"`
	CAFile             string `envconfig:"CA_FILE" desc:"PEM file of the CA that signed the server certificate (system pool when empty)"`
	CertFile           string `envconfig:"CERT_FILE" desc:"client certificate (PEM) for mutual TLS"`
	KeyFile            string `envconfig:"KEY_FILE" desc:"client key (PEM) for mutual TLS"`
	InsecureSkipVerify bool   `envconfig:"INSECURE_SKIP_VERIFY" default:"false" desc:"skip server certificate verification (tests only)"`
}

// DialTimeout is KAFKA_DIAL_TIMEOUT_MS as a duration.
func (k Kafka) DialTimeout() time.Duration { return time.Duration(k.DialTimeoutMS) * time.Millisecond }

// Validate checks the values envconfig cannot.
func (k Kafka) Validate() error {
	return errors.Join(
		Positive("TOPIC_PARTITIONS", int64(k.Partitions)),
		Positive("TOPIC_REPLICATION_FACTOR", int64(k.ReplicationFactor)),
		Positive("KAFKA_DIAL_TIMEOUT_MS", int64(k.DialTimeoutMS)),
		OneOf("KAFKA_SASL_MECHANISM", k.SASL.Mechanism, "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
	)
}

// Redis is how every function reaches Redis.
type Redis struct {
	Addr     string `envconfig:"REDIS_ADDR" desc:"host:port of Redis; empty means the local runner starts an embedded Redis (functions require it)"`
	Username string `envconfig:"REDIS_USERNAME" desc:"ACL user name (Redis 6+)"`
	Password string `envconfig:"REDIS_PASSWORD" desc:"password (AUTH)"`
	DB       int    `envconfig:"REDIS_DB" default:"0" desc:"database number"`
	TLS      TLS    `envconfig:"REDIS_TLS"`
}

// Validate checks the values envconfig cannot. go-redis selects a database only when
// the number is above 0, so a negative REDIS_DB would quietly mean database 0.
func (r Redis) Validate() error {
	return NotNegative("REDIS_DB", int64(r.DB))
}

// Producer tunes the batching publisher ingest uses.
type Producer struct {
	BatchSize          int      `envconfig:"BATCH_SIZE" default:"1000" desc:"records per produce request at most (sarama Flush.Messages)"`
	BatchTimeoutMS     int      `envconfig:"BATCH_TIMEOUT_MS" default:"1" desc:"longest a record waits for its batch to fill before it is sent"`
	MaxBuffered        int      `envconfig:"PRODUCER_MAX_BUFFERED" default:"20000" desc:"records accepted but not yet acknowledged, at most; beyond it ingest answers 503"`
	MaxBufferedBytes   int64    `envconfig:"PRODUCER_MAX_BUFFERED_BYTES" default:"33554432" desc:"bytes of those records (key, value, headers and per-record overhead), at most; beyond it ingest answers 503, before reading the body when the publisher is already full"`
	AckTimeoutMS       int      `envconfig:"PRODUCER_ACK_TIMEOUT_MS" default:"10000" desc:"longest a request waits for Kafka's acknowledgement before ingest answers 503"`
	TransactionalTypes []string `envconfig:"TRANSACTIONAL_TYPES" desc:"comma-separated event types published inside Kafka transactions"`
	TransactionalID    string   `envconfig:"TRANSACTIONAL_ID" desc:"transactional.id prefix (default: KAFKA_CLIENT_ID plus the host name)"`
}

// BatchTimeout is BATCH_TIMEOUT_MS as a duration.
func (p Producer) BatchTimeout() time.Duration {
	return time.Duration(p.BatchTimeoutMS) * time.Millisecond
}

// AckTimeout is PRODUCER_ACK_TIMEOUT_MS as a duration.
func (p Producer) AckTimeout() time.Duration {
	return time.Duration(p.AckTimeoutMS) * time.Millisecond
}

// Validate checks the values envconfig cannot.
func (p Producer) Validate() error {
	return errors.Join(
		Positive("BATCH_SIZE", int64(p.BatchSize)),
		Positive("BATCH_TIMEOUT_MS", int64(p.BatchTimeoutMS)),
		Positive("PRODUCER_MAX_BUFFERED", int64(p.MaxBuffered)),
		Positive("PRODUCER_MAX_BUFFERED_BYTES", p.MaxBufferedBytes),
		Positive("PRODUCER_ACK_TIMEOUT_MS", int64(p.AckTimeoutMS)),
	)
}

// Consumer tunes one consumer group. Each function loads it under its own prefix
// (NOTIFICATION_, ANALYTICS_) over its own defaults (see the functions'
// ConsumerDefaults), so the real-time and the batch consumer are tuned apart: the
// fields have no default tags, and a variable that is not set keeps the default.
type Consumer struct {
	Group            string `envconfig:"GROUP" desc:"consumer group id"`
	InitialOffset    string `envconfig:"INITIAL_OFFSET" desc:"where a new group starts: latest or earliest (an existing group resumes from its commits)"`
	FetchMinBytes    int32  `envconfig:"FETCH_MIN_BYTES" desc:"fetch.min.bytes: the broker waits for this much data before answering a fetch"`
	FetchMaxWaitMS   int    `envconfig:"FETCH_MAX_WAIT_MS" desc:"fetch.max.wait.ms: the longest the broker holds a fetch waiting for FETCH_MIN_BYTES"`
	BatchSize        int    `envconfig:"BATCH_SIZE" desc:"records handed to the handler at once (1 = one at a time)"`
	BatchWaitMS      int    `envconfig:"BATCH_WAIT_MS" desc:"longest a partial batch waits for more records (0: take what is ready)"`
	CommitIntervalMS int    `envconfig:"COMMIT_INTERVAL_MS" desc:"how often marked offsets are committed (also on revoke and shutdown)"`
	MaxAttempts      int    `envconfig:"MAX_ATTEMPTS" desc:"attempts before a failing record goes to the dead-letter topic"`
	RetryBackoffMS   int    `envconfig:"RETRY_BACKOFF_MS" desc:"first retry delay; it doubles per attempt up to 5 s"`
}

// Validate checks the values envconfig cannot. The variable names are given without
// the function's prefix, which Load adds to the error.
func (c Consumer) Validate() error {
	return errors.Join(
		OneOf("INITIAL_OFFSET", c.InitialOffset, "latest", "earliest"),
		Positive("FETCH_MIN_BYTES", int64(c.FetchMinBytes)),
		Positive("FETCH_MAX_WAIT_MS", int64(c.FetchMaxWaitMS)),
		Positive("BATCH_SIZE", int64(c.BatchSize)),
		Positive("COMMIT_INTERVAL_MS", int64(c.CommitIntervalMS)),
		Positive("MAX_ATTEMPTS", int64(c.MaxAttempts)),
		Positive("RETRY_BACKOFF_MS", int64(c.RetryBackoffMS)),
	)
}

// Millis turns a millisecond count from the environment into a duration.
func Millis(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }
