package kafka

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
)

// decodeViaBinding is DecodeRecord as it was before its fast path: the sdk-go
// binding only. The fast path must give the same event, or the same refusal.
func decodeViaBinding(r *sarama.ConsumerMessage) (*event.Event, error) {
	msg := kafka_sarama.NewMessageFromConsumerMessage(r)
	if msg.ReadEncoding() == binding.EncodingUnknown {
		return nil, ErrNotCloudEvent
	}
	e, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return nil, err
	}
	return e, e.Validate()
}

func consumed(t testing.TB, m *sarama.ProducerMessage) *sarama.ConsumerMessage {
	t.Helper()
	r := &sarama.ConsumerMessage{Topic: m.Topic, Partition: 3, Offset: 42}
	if m.Value != nil {
		r.Value, _ = m.Value.Encode()
	}
	if m.Key != nil {
		r.Key, _ = m.Key.Encode()
	}
	for _, h := range m.Headers {
		h := h
		r.Headers = append(r.Headers, &h)
	}
	return r
}

func header(k, v string) *sarama.RecordHeader {
	return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
}

// fullEvent has every attribute but dataschema, extensions of three types and JSON data.
func fullEvent(t testing.TB) event.Event {
	t.Helper()
	e := event.New()
	e.SetID("id-1")
	e.SetSource("https://github.com/o/r")
	e.SetType("dev.tide.push")
	e.SetSubject("main")
	e.SetTime(time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.UTC))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e.SetExtension("attempt", 3)
	e.SetExtension("urgent", true)
	if err := e.SetData("application/json", map[string]string{"hello": "world"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// minimalEvent has only the required attributes.
func minimalEvent() event.Event {
	e := event.New()
	e.SetID("2")
	e.SetSource("/s")
	e.SetType("t")
	return e
}

// encodeConsumed is e as ingest writes it (keyed by key) and a consumer reads it back.
func encodeConsumed(t testing.TB, e event.Event, key string) *sarama.ConsumerMessage {
	t.Helper()
	m, err := EncodeRecord(context.Background(), "events", &e, key)
	if err != nil {
		t.Fatal(err)
	}
	return consumed(t, m)
}

// ceRecord is a binary-mode record with the required ce_ headers, then extra.
func ceRecord(ts time.Time, extra ...*sarama.RecordHeader) *sarama.ConsumerMessage {
	r := &sarama.ConsumerMessage{Topic: "events", Partition: 1, Offset: 7, Value: []byte(`{"a":1}`), Timestamp: ts}
	r.Headers = append([]*sarama.RecordHeader{header("ce_specversion", "1.0"), header("ce_id", "9"), header("ce_source", "/s"), header("ce_type", "t")}, extra...)
	return r
}

func TestDecodeRecordFastPathMatchesTheBinding(t *testing.T) {
	full := fullEvent(t)
	full.SetDataSchema("https://example.com/schema")
	minimal := minimalEvent()
	own := minimal.Clone()
	own.SetExtension("partitionkey", "tenant-7")

	encode := func(e event.Event, key string) *sarama.ConsumerMessage { return encodeConsumed(t, e, key) }
	base := func(extra ...*sarama.RecordHeader) *sarama.ConsumerMessage { return ceRecord(time.Time{}, extra...) }
	structured := &sarama.ConsumerMessage{Topic: "events", Value: []byte(`{"specversion":"1.0","id":"s","source":"/s","type":"t"}`),
		Headers: []*sarama.RecordHeader{header("content-type", "application/cloudevents+json")}}
	upper := encode(full, "k")
	for _, h := range upper.Headers {
		h.Key = []byte(strings.ToUpper(string(h.Key)))
	}

	cases := []struct {
		name string
		rec  *sarama.ConsumerMessage
		fast bool // the fast path must take it (else: it must hand it to the binding)
	}{
		{"full event, tide's key", encode(full, "issue-1"), true},
		{"minimal event, no data", encode(minimal, "k"), true},
		{"event's own partitionkey", encode(own, "tenant-7"), true},
		{"upper-case header names", upper, true},
		{"a record's own kafkaoffset header loses to the real one", base(header("ce_kafkaoffset", "999")), true},
		{"empty subject", base(header("ce_subject", "")), true},
		{"structured mode", structured, false},
		{"version 0.3", func() *sarama.ConsumerMessage { r := base(); r.Headers[0] = header("ce_specversion", "0.3"); return r }(), false},
		// With a content-type header too, the binding would pick one in map order; the
		// fast path leaves a ce_datacontenttype header to the binding in any case.
		{"ce_datacontenttype header", base(header("ce_datacontenttype", "text/plain")), false},
		{"bad time", base(header("ce_time", "yesterday")), false},
		{"bad source", base(header("ce_source", "%zz")), false},
		{"empty id", base(header("ce_id", "")), false},
		{"bad extension name", base(header("ce_Not-Valid!", "x")), false},
		{"no type", func() *sarama.ConsumerMessage { r := base(); r.Headers = r.Headers[:3]; return r }(), true},
		{"not a CloudEvent", &sarama.ConsumerMessage{Topic: "events", Value: []byte("x")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, fast := decodeBinaryV1(c.rec)
			if fast != c.fast {
				t.Errorf("fast path taken=%v, want %v", fast, c.fast)
			}
			want, wantErr := decodeViaBinding(c.rec)
			got, err := DecodeRecord(context.Background(), c.rec)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("DecodeRecord error %v, the binding's %v", err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeRecord\n got %s\nwant %s", got, want)
			}
		})
	}
}

// BenchmarkDecodeRecord is one 1 KiB binary-mode record, as ingest writes it, read
// back into an event (what notification and analytics do per record).
func BenchmarkDecodeRecord(b *testing.B) {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("/bench/loadgen")
	e.SetType("dev.tide.bench")
	e.SetSubject("key-1")
	e.SetTime(time.Now())
	if err := e.SetData("application/json", []byte(fmt.Sprintf(`{"pad":"%s"}`, strings.Repeat("x", 1010)))); err != nil {
		b.Fatal(err)
	}
	m, err := EncodeRecord(context.Background(), "events", &e, "key-1")
	if err != nil {
		b.Fatal(err)
	}
	r := consumed(b, m)
	for _, tc := range []struct {
		name   string
		decode func() error
	}{
		{"DecodeRecord", func() error { _, err := DecodeRecord(context.Background(), r); return err }},
		{"binding-only", func() error { _, err := decodeViaBinding(r); return err }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
