package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"

	"function/shared/config"
)

func init() {
	// sarama records go-metrics histograms for every request by default; nobody reads
	// them here (tide exports its own Prometheus metrics) and they cost CPU on the hot
	// path. This must be set before any sarama.Config is made.
	metrics.UseNilMetrics = true
}

// MinVersion is the oldest protocol version tide speaks: Kafka 4 removed the request
// versions older than 2.1, so sarama's default (2.1.0 today, older before) is never
// relied on.
var MinVersion = sarama.V2_1_0_0

// NewConfig returns the sarama configuration shared by producers, consumers and the
// admin client: client id, pinned protocol version, dial timeout, TLS and SASL.
func NewConfig(k config.Kafka) (*sarama.Config, error) {
	c := sarama.NewConfig()
	c.ClientID = k.ClientID
	v, err := sarama.ParseKafkaVersion(k.Version)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_VERSION=%q: %w", k.Version, err)
	}
	if !v.IsAtLeast(MinVersion) {
		return nil, fmt.Errorf("KAFKA_VERSION=%q: must be %s or later (Kafka 4 dropped older protocols)", k.Version, MinVersion)
	}
	c.Version = v
	c.Net.DialTimeout = k.DialTimeout()
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	// Partitions are added at run time by the partition manager; a minute is the
	// longest a producer keeps an old count when nobody tells it (see
	// Publisher.RefreshPartitions for the immediate path).
	c.Metadata.RefreshFrequency = time.Minute
	if k.TLS.Enabled {
		tc, err := TLSConfig(k.TLS)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_*: %w", err)
		}
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = tc
	}
	if k.SASL.Mechanism != "" {
		if err := configureSASL(c, k.SASL); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ProducerConfig returns c set up for tide's idempotent, acks=all producer. Throughput
// comes from batching (Flush.*), because idempotence needs MaxOpenRequests = 1.
func ProducerConfig(c *sarama.Config, p config.Producer) *sarama.Config {
	pc := *c
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Idempotent = true
	pc.Net.MaxOpenRequests = 1
	pc.Producer.Retry.Max = 10
	pc.Producer.Retry.Backoff = 200 * time.Millisecond
	pc.Producer.Return.Successes = true
	pc.Producer.Return.Errors = true
	pc.Producer.Partitioner = sarama.NewMurmur2Partitioner
	pc.Producer.Flush.Messages = p.BatchSize
	pc.Producer.Flush.MaxMessages = p.BatchSize
	pc.Producer.Flush.Frequency = p.BatchTimeout()
	pc.Producer.Timeout = 10 * time.Second
	pc.ChannelBufferSize = 1024
	return &pc
}

// ConsumerConfig returns c set up for a tide consumer group: manual commits,
// read_committed, the group's fetch tuning and starting position.
func ConsumerConfig(c *sarama.Config, cc config.Consumer) *sarama.Config {
	gc := *c
	gc.Consumer.Offsets.AutoCommit.Enable = false
	gc.Consumer.Offsets.Initial = sarama.OffsetNewest
	if cc.InitialOffset == "earliest" {
		gc.Consumer.Offsets.Initial = sarama.OffsetOldest
	}
	gc.Consumer.IsolationLevel = sarama.ReadCommitted
	gc.Consumer.Fetch.Min = cc.FetchMinBytes
	gc.Consumer.MaxWaitTime = config.Millis(cc.FetchMaxWaitMS)
	gc.Consumer.Return.Errors = true
	// sarama issues a partition's next fetch only once the last one's records are all
	// in its Messages channel (ChannelBufferSize deep, 256 by default). A batch handler
	// takes up to BATCH_SIZE records at once, so with a shallower channel the next
	// fetch waited for the handler (the Redis round trip) on every batch: two batches
	// deep lets fetching overlap handling. Bounded, as records are ~1 KiB each.
	gc.ChannelBufferSize = min(max(256, 2*cc.BatchSize), 4096)
	gc.Consumer.Group.Session.Timeout = 10 * time.Second
	gc.Consumer.Group.Heartbeat.Interval = time.Second
	gc.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	return &gc
}

// TLSConfig builds a client TLS configuration from files.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func configureSASL(c *sarama.Config, s config.SASL) error {
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.User = s.User
	c.Net.SASL.Password = s.Password
	switch s.Mechanism {
	case "PLAIN":
		c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "SCRAM-SHA-256":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		c.Net.SASL.SCRAMClientGeneratorFunc = scramSHA256
	case "SCRAM-SHA-512":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		c.Net.SASL.SCRAMClientGeneratorFunc = scramSHA512
	default:
		return fmt.Errorf("KAFKA_SASL_MECHANISM=%q: unsupported", s.Mechanism)
	}
	return nil
}
