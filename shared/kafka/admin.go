package kafka

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
)

// TopicSpec is a topic tide creates when it is missing.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Config            map[string]*string
}

// EnsureTopic creates the topic when it does not exist and reports whether it did.
// An existing topic is left as it is, whatever its partition count: growing it is the
// partition manager's job, and shrinking is impossible.
func EnsureTopic(admin sarama.ClusterAdmin, t TopicSpec) (created bool, err error) {
	err = admin.CreateTopic(t.Name, &sarama.TopicDetail{
		NumPartitions:     t.Partitions,
		ReplicationFactor: t.ReplicationFactor,
		ConfigEntries:     t.Config,
	}, false)
	if err == nil {
		return true, nil
	}
	var te *sarama.TopicError
	if errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists || errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return false, nil
	}
	return false, fmt.Errorf("create topic %s (%d partitions, replication %d): %w", t.Name, t.Partitions, t.ReplicationFactor, err)
}

// PartitionCount asks the cluster how many partitions topic has now (not a cached
// answer: metadata is refreshed first).
func PartitionCount(client sarama.Client, topic string) (int, error) {
	if err := client.RefreshMetadata(topic); err != nil {
		return 0, fmt.Errorf("refresh metadata of %s: %w", topic, err)
	}
	ps, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return len(ps), nil
}

// AddPartitions grows topic to total partitions. It fails when the topic already has
// that many or more (Kafka cannot shrink a topic).
func AddPartitions(admin sarama.ClusterAdmin, topic string, total int32) error {
	if err := admin.CreatePartitions(topic, total, nil, false); err != nil {
		return fmt.Errorf("grow %s to %d partitions: %w", topic, total, err)
	}
	return nil
}

// TopicID returns the topic's unique ID (hex), which changes when a topic is deleted
// and created again under the same name. tide keys stored offsets by it, so a
// recreated topic never inherits the offsets of its predecessor.
func TopicID(client sarama.Client, topic string) (string, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		b := client.LeastLoadedBroker()
		if b == nil {
			return "", fmt.Errorf("topic id of %s: no broker reachable", topic)
		}
		req := sarama.NewMetadataRequest(client.Config().Version, []string{topic})
		if req.Version < 10 {
			req.Version = 10 // topic IDs arrived in Metadata v10 (Kafka 2.8)
		}
		resp, err := b.GetMetadata(req)
		if err != nil {
			// A stale connection answers with an error once; back off briefly and let
			// sarama reopen it.
			lastErr = err
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
			continue
		}
		for _, t := range resp.Topics {
			if t.Name != topic {
				continue
			}
			if t.Err != sarama.ErrNoError {
				return "", fmt.Errorf("topic id of %s: %w", topic, t.Err)
			}
			var zero sarama.Uuid
			if t.Uuid == zero {
				return "", fmt.Errorf("topic id of %s: the broker returned no topic ID (Kafka 2.8 or later is needed)", topic)
			}
			return hex.EncodeToString(t.Uuid[:]), nil
		}
		return "", fmt.Errorf("topic id of %s: topic not in metadata", topic)
	}
	return "", fmt.Errorf("topic id of %s: %w", topic, lastErr)
}

// EnsureTopics creates the events topic (TOPIC_PARTITIONS partitions) and the
// dead-letter topic when they are missing.
func EnsureTopics(k config.Kafka, sc *sarama.Config) error {
	admin, err := sarama.NewClusterAdmin(k.Brokers, sc)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	defer admin.Close()
	for _, t := range []TopicSpec{
		{Name: k.Topic, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor},
		{Name: k.DeadLetterTopic, Partitions: 1, ReplicationFactor: k.ReplicationFactor},
	} {
		if _, err := EnsureTopic(admin, t); err != nil {
			return err
		}
	}
	return nil
}

// Probe returns a health probe that asks the cluster for the topic's metadata.
func Probe(client sarama.Client, topic string) func(context.Context) error {
	return func(context.Context) error {
		return client.RefreshMetadata(topic)
	}
}
