package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
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
	pkHeader := "" // the key as ce_partitionkey, when no extension carries it
	if key != "" {
		if _, ok := e.Extensions()[partitionKeyExtension]; !ok {
			pkHeader = key
		}
	}
	if !encodeBinaryV1(e, m, pkHeader) {
		// The binding's own key mapping is skipped: it runs as a transformer that
		// looks the extension up through an error path (fmt.Errorf per missing
		// extension), only to have its key replaced below. The extension still keys
		// a record the caller gave no key.
		ctx = kafka_sarama.WithSkipKeyMapping(binding.WithForceBinary(ctx))
		if err := kafka_sarama.WriteProducerMessage(ctx, (*binding.EventMessage)(e), m); err != nil {
			return nil, fmt.Errorf("encode event %s: %w", e.ID(), err)
		}
		if pkHeader != "" {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: hdrPartitionKey, Value: []byte(pkHeader)})
		}
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
	}
	return m, nil
}

// partitionKeyExtension is the CloudEvents extension the Kafka binding maps to the
// record key.
const partitionKeyExtension = "partitionkey"

// DecodeRecord reads the CloudEvent a record carries, in binary or structured mode
// (a record produced by any CloudEvents-aware client, kcat included).
func DecodeRecord(ctx context.Context, r *sarama.ConsumerMessage) (*event.Event, error) {
	if e, ok := decodeBinaryV1(r); ok {
		if err := e.Validate(); err == nil {
			return e, nil
		}
		// An invalid event: the binding's path below names the error.
	}
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

// ceV1 is CloudEvents 1.0 with the Kafka binding's ce_ header prefix.
var ceV1 = spec.WithPrefix(ceHeaderPrefix).Version(event.CloudEventsVersionV1)

const (
	ceHeaderPrefix    = "ce_"
	contentTypeHeader = "content-type"
)

// decodeBinaryV1 is DecodeRecord's fast path for the records tide writes: binary-mode
// CloudEvents 1.0. It sets every attribute and extension through the same spec setters
// the sdk-go binding uses, so the same values are accepted and refused and the event
// is the same (the binding's kafkaoffset, kafkapartition and kafkatopic extensions
// included), but without the binding's per-record header map and message wrapper,
// which made decoding half of the analytics consumer's CPU (see BENCHMARKS.md). It
// reports false for anything else (structured mode, another version, a
// ce_datacontenttype header competing with content-type, a value a setter refuses),
// and DecodeRecord then takes the binding's path.
func decodeBinaryV1(r *sarama.ConsumerMessage) (*event.Event, bool) {
	v1 := false
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		switch {
		case strings.EqualFold(string(h.Key), ceHeaderPrefix+"specversion"):
			if string(h.Value) != event.CloudEventsVersionV1 {
				return nil, false
			}
			v1 = true
		case strings.EqualFold(string(h.Key), ceHeaderPrefix+"datacontenttype"):
			return nil, false
		case strings.EqualFold(string(h.Key), contentTypeHeader) && format.Lookup(string(h.Value)) != nil:
			return nil, false // structured mode
		}
	}
	if !v1 {
		return nil, false
	}
	e := event.New()
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		var err error
		switch k := lowerASCII(h.Key); {
		case strings.HasPrefix(k, ceHeaderPrefix):
			if a := ceV1.Attribute(k); a != nil {
				if a.Kind() != spec.SpecVersion {
					err = a.Set(e.Context, string(h.Value))
				}
			} else {
				err = e.Context.SetExtension(k[len(ceHeaderPrefix):], string(h.Value))
			}
		case k == contentTypeHeader:
			err = ceV1.AttributeFromKind(spec.DataContentType).Set(e.Context, string(h.Value))
		}
		if err != nil {
			return nil, false
		}
	}
	// As the binding does, after the headers (so they win over same-named headers).
	for _, x := range [...]struct{ name, value string }{
		{"kafkaoffset", strconv.FormatInt(r.Offset, 10)},
		{"kafkapartition", strconv.FormatInt(int64(r.Partition), 10)},
		{"kafkatopic", r.Topic},
	} {
		if err := e.Context.SetExtension(x.name, x.value); err != nil {
			return nil, false
		}
	}
	if len(r.Value) > 0 {
		e.DataEncoded = r.Value
	}
	return &e, true
}

// lowerASCII returns b as a lower-case string, converting only when needed.
func lowerASCII(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return strings.ToLower(string(b))
		}
	}
	return string(b)
}

// Header names of the CloudEvents 1.0 attributes in the Kafka binding, in the order
// the sdk-go binding writes them; shared by every record (sarama only reads them).
var (
	hdrID          = []byte(ceHeaderPrefix + "id")
	hdrSource      = []byte(ceHeaderPrefix + "source")
	hdrSpecVersion = []byte(ceHeaderPrefix + "specversion")
	hdrType        = []byte(ceHeaderPrefix + "type")
	hdrContentType = []byte(contentTypeHeader)
	hdrDataSchema  = []byte(ceHeaderPrefix + "dataschema")
	hdrSubject     = []byte(ceHeaderPrefix + "subject")
	hdrTime        = []byte(ceHeaderPrefix + "time")

	hdrPartitionKey = []byte(ceHeaderPrefix + partitionKeyExtension)
)

// encodeBinaryV1 is EncodeRecord's fast path for CloudEvents 1.0: the record the
// sdk-go binding writes in binary mode (the same headers in the same order, a blank
// attribute left out, the time in RFC 3339 with nanoseconds, extensions formatted by
// the SDK, the data copied), written directly from the event's context. The binding
// reaches each attribute through boxed getters, a generic formatter and
// concatenated header names, which made encoding a fifth of ingest's CPU under
// batched load (see BENCHMARKS.md). Every header value and the data are copied into
// one buffer of the record's own, so a record costs a few allocations instead of one
// per header (garbage collection was a third of ingest's CPU under batched load),
// and still never keeps a request body alive. It reports false, having written
// nothing, for any other version or a value the SDK cannot format; the binding then
// does it. A non-empty pkHeader is written last as the ce_partitionkey header.
func encodeBinaryV1(e *event.Event, m *sarama.ProducerMessage, pkHeader string) bool {
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok || ec == nil {
		return false
	}
	type ext struct{ name, value string }
	var exts []ext // formatted first: a value the SDK cannot format sends the event to the binding
	size := 0
	if len(ec.Extensions) > 0 {
		exts = make([]ext, 0, len(ec.Extensions))
		for k, v := range ec.Extensions {
			s, err := types.Format(v)
			if err != nil {
				return false
			}
			exts = append(exts, ext{k, s})
			size += len(s)
		}
	}
	var t time.Time
	if ec.Time != nil {
		t = ec.Time.Time.UTC()
	}
	source, dataSchema := ec.Source.String(), ec.GetDataSchema()
	size += len(ec.ID) + len(source) + len(event.CloudEventsVersionV1) + len(ec.Type) + len(ec.GetDataContentType()) +
		len(dataSchema) + len(ec.GetSubject()) + len(time.RFC3339Nano) + len(pkHeader) + len(e.Data())
	// A copy, as the binding makes: the record must not keep the request body alive.
	buf := make([]byte, 0, size)
	h := make([]sarama.RecordHeader, 0, 8+len(ec.Extensions)+1) // +1: EncodeRecord's ce_partitionkey
	add := func(key []byte, v string) {
		if v != "" {
			n := len(buf)
			buf = append(buf, v...)
			h = append(h, sarama.RecordHeader{Key: key, Value: buf[n:len(buf):len(buf)]})
		}
	}
	add(hdrID, ec.ID)
	add(hdrSource, source)
	add(hdrSpecVersion, event.CloudEventsVersionV1)
	add(hdrType, ec.Type)
	add(hdrContentType, ec.GetDataContentType())
	add(hdrDataSchema, dataSchema)
	add(hdrSubject, ec.GetSubject())
	if !t.IsZero() {
		n := len(buf)
		buf = t.AppendFormat(buf, time.RFC3339Nano) // types.FormatTime, without its string
		h = append(h, sarama.RecordHeader{Key: hdrTime, Value: buf[n:len(buf):len(buf)]})
	}
	for _, x := range exts {
		add([]byte(ceHeaderPrefix+x.name), x.value)
	}
	add(hdrPartitionKey, pkHeader)
	m.Headers = h
	if data := e.Data(); len(data) > 0 {
		n := len(buf)
		buf = append(buf, data...)
		m.Value = sarama.ByteEncoder(buf[n:len(buf):len(buf)])
	}
	return true
}
