package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/config"
	"function/shared/kafka"
)

// DirectTarget publishes through tide's own kafka.Publisher (what ingest uses), with
// no HTTP in front: each request is one Publish of Batch records of Events.Size bytes
// of payload, as kafka-producer-perf-test sends them, so the two compare like for like.
type DirectTarget struct {
	pub    *kafka.Publisher
	topic  string
	keys   int
	values [][]byte // a few payloads, reused: perf-test reuses its payloads too
	// CloudEvents, when set, makes each record the one ingest writes for the same
	// event (kafka.EncodeRecord: ce_ headers, content-type, ce_partitionkey) instead
	// of a bare key and value, so the broker's share can be told apart from the
	// HTTP front's: the broker parses every record's headers.
	CloudEvents bool
	events      Events
}

// NewDirectTarget connects a Publisher to the loopback brokers k names, configured
// from p exactly as ingest configures its own (idempotent, acks=all, BATCH_SIZE,
// BATCH_TIMEOUT_MS, PRODUCER_MAX_BUFFERED), and creates k.Topic when missing.
func NewDirectTarget(k config.Kafka, p config.Producer, size, keys int) (*DirectTarget, error) {
	for _, b := range k.Brokers {
		if err := CheckLoopback(b); err != nil {
			return nil, err
		}
	}
	base, err := kafka.NewConfig(k)
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdmin(k.Brokers, base)
	if err != nil {
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	_, err = kafka.EnsureTopic(admin, kafka.TopicSpec{Name: k.Topic, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor})
	_ = admin.Close()
	if err != nil {
		return nil, err
	}
	pub, err := kafka.NewPublisher(k.Brokers, kafka.ProducerConfig(base, p), kafka.PublisherOptions{MaxBuffered: p.MaxBuffered, AckTimeout: p.AckTimeout()})
	if err != nil {
		return nil, err
	}
	t := &DirectTarget{pub: pub, topic: k.Topic, keys: max(keys, 1), events: Events{Size: size, Keys: keys}.withDefaults()}
	for i := range 16 {
		t.values = append(t.values, []byte(strings.Repeat(string(rune('a'+i)), max(size, 1))))
	}
	return t, nil
}

// Send publishes records [first, first+n) and waits for Kafka's acknowledgement.
func (t *DirectTarget) Send(ctx context.Context, first int64, n int, at time.Time) (string, error) {
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		seq := first + int64(i)
		if t.CloudEvents {
			m, err := t.cloudEvent(ctx, seq, at)
			if err != nil {
				return "error", err
			}
			msgs[i] = m
			continue
		}
		msgs[i] = &sarama.ProducerMessage{
			Topic: t.topic,
			Key:   sarama.StringEncoder(Events{Keys: t.keys}.Subject(seq)),
			Value: sarama.ByteEncoder(t.values[seq%int64(len(t.values))]),
		}
	}
	err := t.pub.Publish(ctx, msgs)
	switch {
	case err == nil:
		return "ok", nil
	case errors.Is(err, kafka.ErrBufferFull):
		return "buffer-full", err
	case errors.Is(err, kafka.ErrAckTimeout):
		return "timeout", err
	default:
		return "error", err
	}
}

// cloudEvent is event seq as ingest would write it to Kafka.
func (t *DirectTarget) cloudEvent(ctx context.Context, seq int64, at time.Time) (*sarama.ProducerMessage, error) {
	ev := t.events
	e := event.New()
	e.SetID(ev.ID(seq))
	e.SetSource(ev.SourceOf(seq))
	e.SetType(ev.Type)
	e.SetSubject(ev.Subject(seq))
	e.SetTime(at)
	if err := e.SetData(event.ApplicationJSON, ev.AppendData(nil, seq)); err != nil {
		return nil, err
	}
	return kafka.EncodeRecord(ctx, t.topic, &e, e.Subject())
}

// Close flushes and closes the publisher.
func (t *DirectTarget) Close(ctx context.Context) error { return t.pub.Close(ctx) }
