package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// ErrNotCloudEvent is returned by DecodeRecord for a record that carries neither the
// binary-mode ce_ headers nor a structured-mode content type.
var ErrNotCloudEvent = errors.New("record is not a CloudEvent")

// EncodeRecord turns e into a record in the CloudEvents Kafka protocol binding's
// binary mode: attributes as ce_ headers, data as the value, datacontenttype as the
// content-type header, and key as the record key (the binding's partitionkey mapping
// is overridden by the key tide chose, which equals it when the extension is set).
//
// When e has no partitionkey extension, the record also carries key as its
// ce_partitionkey header: the binding's name for the key, and the only way the key
// reaches a push-mode consumer, since a KafkaSource forwards the CloudEvent in the
// record (its headers), not the record key.
func EncodeRecord(ctx context.Context, topic string, e *event.Event, key string) (*sarama.ProducerMessage, error) {
	m := &sarama.ProducerMessage{Topic: topic}
	// The binding's own key mapping is skipped: it runs as a transformer that looks
	// the extension up through an error path (fmt.Errorf per missing extension) on
	// every record, about a tenth of the encoding's CPU, only to have its key
	// replaced below. The extension still keys a record the caller gave no key.
	ctx = kafka_sarama.WithSkipKeyMapping(binding.WithForceBinary(ctx))
	if err := kafka_sarama.WriteProducerMessage(ctx, (*binding.EventMessage)(e), m); err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID(), err)
	}
	if key == "" {
		if v, ok := e.Extensions()[partitionKeyExtension]; ok {
			s, err := types.Format(v)
			if err != nil {
				return nil, fmt.Errorf("encode event %s: partitionkey: %w", e.ID(), err)
			}
			m.Key = sarama.StringEncoder(s)
		}
	}
	if key != "" {
		m.Key = sarama.StringEncoder(key)
		if _, ok := e.Extensions()[partitionKeyExtension]; !ok {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte("ce_" + partitionKeyExtension), Value: []byte(key)})
		}
	}
	return m, nil
}

// partitionKeyExtension is the CloudEvents extension the Kafka binding maps to the
// record key.
const partitionKeyExtension = "partitionkey"

// DecodeRecord reads the CloudEvent a record carries, in binary or structured mode
// (a record produced by any CloudEvents-aware client, kcat included).
func DecodeRecord(ctx context.Context, r *sarama.ConsumerMessage) (*event.Event, error) {
	msg := kafka_sarama.NewMessageFromConsumerMessage(r)
	if msg.ReadEncoding() == binding.EncodingUnknown {
		return nil, ErrNotCloudEvent
	}
	e, err := binding.ToEvent(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("decode CloudEvent: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return e, nil
}

// Header returns the value of the record header named key, or nil.
func Header(r *sarama.ConsumerMessage, key string) []byte {
	for _, h := range r.Headers {
		if h != nil && string(h.Key) == key {
			return h.Value
		}
	}
	return nil
}
