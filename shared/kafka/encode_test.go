package kafka

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// encodeViaBinding is what EncodeRecord wrote before its fast path.
func encodeViaBinding(t *testing.T, e *event.Event) *sarama.ProducerMessage {
	t.Helper()
	m := &sarama.ProducerMessage{Topic: "events"}
	ctx := kafka_sarama.WithSkipKeyMapping(binding.WithForceBinary(context.Background()))
	if err := kafka_sarama.WriteProducerMessage(ctx, (*binding.EventMessage)(e), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerList(m *sarama.ProducerMessage) []string {
	var out []string
	for _, h := range m.Headers {
		out = append(out, string(h.Key)+"="+string(h.Value))
	}
	return out
}

func valueOf(m *sarama.ProducerMessage) []byte {
	if m.Value == nil {
		return nil
	}
	b, _ := m.Value.Encode()
	return b
}

// The fast encoder must write exactly the record the sdk-go binding writes: the same
// headers in the same order (extensions, which the binding writes in map order,
// compared as a set), the same value, for every attribute present or blank.
func TestEncodeFastPathMatchesTheBinding(t *testing.T) {
	mk := func(f func(e *event.Event)) event.Event {
		e := event.New()
		e.SetID("id-1")
		e.SetSource("/s")
		e.SetType("t")
		f(&e)
		return e
	}
	uri := types.ParseURI("https://example.com/schema")
	cases := map[string]event.Event{
		"minimal, no data": mk(func(*event.Event) {}),
		"every attribute": mk(func(e *event.Event) {
			e.SetSource("https://github.com/o/r?x=1#f")
			e.SetSubject("main")
			e.SetTime(time.Date(2026, 11, 2, 9, 0, 0, 123456789, time.FixedZone("x", 3600)))
			e.SetDataSchema(uri.String())
			_ = e.SetData("application/json", []byte(`{"a":1}`))
		}),
		"extensions of every type": mk(func(e *event.Event) {
			e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			e.SetExtension("partitionkey", "tenant-7")
			e.SetExtension("attempt", 3)
			e.SetExtension("urgent", true)
			e.SetExtension("when", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			e.SetExtension("link", uri)
			e.SetExtension("blob", []byte{1, 2, 3})
		}),
		"binary data, no content type": mk(func(e *event.Event) { e.DataEncoded = []byte{0, 1, 2} }),
		"blank subject and content type": mk(func(e *event.Event) {
			e.SetSubject("")
			_ = e.SetData("", []byte("x"))
		}),
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			want := encodeViaBinding(t, &e)
			got := &sarama.ProducerMessage{Topic: "events"}
			if !encodeBinaryV1(&e, got, "") {
				t.Fatal("fast path refused a 1.0 event")
			}
			gh, wh := headerList(got), headerList(want)
			n := 0 // attribute headers come first, in a fixed order
			for n < len(wh) && n < len(gh) && len(wh[n]) > 0 && !isExtension(want.Headers[n].Key) {
				if gh[n] != wh[n] {
					t.Fatalf("header %d: %q, binding %q", n, gh[n], wh[n])
				}
				n++
			}
			sort.Strings(gh)
			sort.Strings(wh)
			if fmt.Sprint(gh) != fmt.Sprint(wh) {
				t.Fatalf("headers\n got %v\nwant %v", gh, wh)
			}
			if !bytes.Equal(valueOf(got), valueOf(want)) || (got.Value == nil) != (want.Value == nil) {
				t.Fatalf("value %q, binding %q", valueOf(got), valueOf(want))
			}
		})
	}
	old := event.New(event.CloudEventsVersionV03)
	if encodeBinaryV1(&old, &sarama.ProducerMessage{}, "") {
		t.Error("fast path took a 0.3 event")
	}
}

func isExtension(key []byte) bool {
	for _, a := range [][]byte{hdrID, hdrSource, hdrSpecVersion, hdrType, hdrContentType, hdrDataSchema, hdrSubject, hdrTime} {
		if bytes.Equal(key, a) {
			return false
		}
	}
	return true
}

// The record must own its value: ingest's events point into the request body.
func TestEncodeRecordCopiesTheData(t *testing.T) {
	e := event.New()
	e.SetID("1")
	e.SetSource("/s")
	e.SetType("t")
	body := []byte(`{"a":1}`)
	e.DataEncoded = body
	m, err := EncodeRecord(context.Background(), "events", &e, "k")
	if err != nil {
		t.Fatal(err)
	}
	body[2] = 'X'
	if v := valueOf(m); string(v) != `{"a":1}` {
		t.Fatalf("record value changed with the body: %s", v)
	}
}
