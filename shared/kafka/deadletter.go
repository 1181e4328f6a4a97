package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// Headers tide adds to a dead-lettered record; the original headers (the ce_
// attributes included) are kept, so a dead letter is still the CloudEvent it was and
// can be re-driven as it is.
const (
	HeaderDLQError     = "tide_dlq_error"
	HeaderDLQAttempts  = "tide_dlq_attempts"
	HeaderDLQTopic     = "tide_dlq_topic"
	HeaderDLQPartition = "tide_dlq_partition"
	HeaderDLQOffset    = "tide_dlq_offset"
	HeaderDLQGroup     = "tide_dlq_group"
	HeaderDLQTime      = "tide_dlq_time"
)

// DeadLetters produces poison records to a dead-letter topic and waits for Kafka's
// acknowledgement, so a record is marked only once its dead letter is durable.
type DeadLetters struct {
	topic    string
	producer sarama.SyncProducer
}

// NewDeadLetters connects an idempotent synchronous producer for topic.
func NewDeadLetters(brokers []string, cfg *sarama.Config, topic string) (*DeadLetters, error) {
	pc := *cfg
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Idempotent = true
	pc.Net.MaxOpenRequests = 1
	pc.Producer.Retry.Max = 10
	pc.Producer.Return.Successes = true
	pc.Producer.Return.Errors = true
	pc.Producer.Partitioner = sarama.NewMurmur2Partitioner
	p, err := sarama.NewSyncProducer(brokers, &pc)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &DeadLetters{topic: topic, producer: p}, nil
}

// DeadLetter writes r to the dead-letter topic with the cause, the attempt count and
// its original coordinates in headers.
func (d *DeadLetters) DeadLetter(_ context.Context, group string, r *sarama.ConsumerMessage, cause error, attempts int) error {
	headers := make([]sarama.RecordHeader, 0, len(r.Headers)+7)
	for _, h := range r.Headers {
		if h != nil {
			headers = append(headers, *h)
		}
	}
	headers = append(headers,
		sarama.RecordHeader{Key: []byte(HeaderDLQError), Value: []byte(cause.Error())},
		sarama.RecordHeader{Key: []byte(HeaderDLQAttempts), Value: []byte(strconv.Itoa(attempts))},
		sarama.RecordHeader{Key: []byte(HeaderDLQTopic), Value: []byte(r.Topic)},
		sarama.RecordHeader{Key: []byte(HeaderDLQPartition), Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		sarama.RecordHeader{Key: []byte(HeaderDLQOffset), Value: []byte(strconv.FormatInt(r.Offset, 10))},
		sarama.RecordHeader{Key: []byte(HeaderDLQGroup), Value: []byte(group)},
		sarama.RecordHeader{Key: []byte(HeaderDLQTime), Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	// The original timestamp is kept (tide_dlq_time says when it was set aside), so a
	// re-driven record is bucketed by analytics where it would have been.
	msg := &sarama.ProducerMessage{Topic: d.topic, Headers: headers, Value: sarama.ByteEncoder(r.Value), Timestamp: r.Timestamp}
	if r.Key != nil {
		msg.Key = sarama.ByteEncoder(r.Key)
	}
	if _, _, err := d.producer.SendMessage(msg); err != nil {
		return fmt.Errorf("dead-letter %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// Close closes the producer.
func (d *DeadLetters) Close() error { return d.producer.Close() }
