package kafka

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"
)

// factsOf is what analytics took of a record before FactsDecoder: DecodeRecord's event.
func factsOf(r *sarama.ConsumerMessage) (Facts, error) {
	e, err := DecodeRecord(context.Background(), r)
	if err != nil {
		return Facts{}, err
	}
	return Facts{Source: e.Source(), ID: e.ID(), Type: e.Type(), Subject: e.Subject(), Time: e.Time()}, nil
}

// sameAsDecodeRecord fails t unless a decoder gives r the facts, or the error,
// DecodeRecord gives it, also the second time (from what it remembered), and returns
// whether the header-only path took the record.
func sameAsDecodeRecord(t *testing.T, r *sarama.ConsumerMessage) bool {
	t.Helper()
	want, wantErr := factsOf(r)
	d := NewFactsDecoder()
	_, fast := d.binaryV1(r)
	if fast && wantErr != nil {
		t.Fatalf("header-only path took a record DecodeRecord refuses: %v", wantErr)
	}
	for i := range 2 {
		got, err := d.Decode(context.Background(), r)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("decode %d: error %v, DecodeRecord's %v", i, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) || !got.Time.Equal(want.Time) {
			t.Fatalf("decode %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	return fast
}

func TestFactsDecoderMatchesDecodeRecord(t *testing.T) {
	full := fullEvent(t)
	schema := full.Clone()
	schema.SetDataSchema("https://example.com/schema")
	minimal := minimalEvent()
	encode := func(e event.Event, key string) *sarama.ConsumerMessage { return encodeConsumed(t, e, key) }
	base := func(extra ...*sarama.RecordHeader) *sarama.ConsumerMessage {
		return ceRecord(time.Unix(1e9, 0), extra...)
	}
	upper := encode(full, "k")
	for _, h := range upper.Headers {
		h.Key = []byte(strings.ToUpper(string(h.Key)))
	}
	cases := []struct {
		name string
		rec  *sarama.ConsumerMessage
		fast bool // the header-only path must take it (else: leave it to DecodeRecord)
	}{
		{"full event, tide's key", encode(full, "issue-1"), true},
		{"minimal event, no data", encode(minimal, "k"), true},
		{"upper-case header names", upper, true},
		{"blank subject", base(header("ce_subject", "  ")), true},
		{"subject with spaces around", base(header("ce_subject", " main ")), true},
		{"type with spaces around", base(header("ce_type", " t ")), true},
		{"the last id wins", base(header("ce_id", "10")), true},
		{"time with an offset", base(header("ce_time", "2026-01-01T10:00:30.5+02:00")), true},
		{"the zero time", base(header("ce_time", "0001-01-01T00:00:00Z")), true},
		{"source the URL parser rewrites", base(header("ce_source", "/a b?x=1#f")), true},
		{"an extension", base(header("ce_tenant", "7")), true},
		{"a nil header", base(nil), true},
		{"a content type with parameters", base(header("content-type", "text/plain; charset=utf-8")), true},
		{"a blank content type", base(header("content-type", " ")), true},
		{"a content type that is no media type", base(header("content-type", "text/;;")), false},
		{"dataschema", encode(schema, "k"), false},
		{"ce_datacontenttype header", base(header("ce_datacontenttype", "text/plain")), false},
		{"structured mode", &sarama.ConsumerMessage{Topic: "events", Value: []byte(`{"specversion":"1.0","id":"s","source":"/s","type":"t"}`),
			Headers: []*sarama.RecordHeader{header("content-type", "application/cloudevents+json")}}, false},
		{"version 0.3", func() *sarama.ConsumerMessage { r := base(); r.Headers[0] = header("ce_specversion", "0.3"); return r }(), false},
		{"no specversion", func() *sarama.ConsumerMessage { r := base(); r.Headers = r.Headers[1:]; return r }(), false},
		{"bad time", base(header("ce_time", "yesterday")), false},
		{"empty time", base(header("ce_time", "")), false},
		{"bad source", base(header("ce_source", "%zz")), false},
		{"blank source (escaped by the URL parser)", base(header("ce_source", " ")), true},
		{"blank id after a good one", base(header("ce_id", " ")), false},
		{"no id", func() *sarama.ConsumerMessage {
			r := base()
			r.Headers = append(r.Headers[:1], r.Headers[2:]...)
			return r
		}(), false},
		{"blank type", base(header("ce_type", " ")), false},
		{"no type", func() *sarama.ConsumerMessage { r := base(); r.Headers = r.Headers[:3]; return r }(), false},
		{"bad extension name", base(header("ce_Not-Valid!", "x")), false},
		{"non-ASCII header name", base(header("ce_\u212aey", "x")), false},
		{"not a CloudEvent", &sarama.ConsumerMessage{Topic: "events", Value: []byte("x")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := sameAsDecodeRecord(t, c.rec); fast != c.fast {
				t.Errorf("header-only path taken=%v, want %v", fast, c.fast)
			}
		})
	}
}

// FuzzFactsDecoderMatchesDecodeRecord adds two headers of any name and value to a
// valid record: the decoder must still agree with DecodeRecord.
func FuzzFactsDecoderMatchesDecodeRecord(f *testing.F) {
	for _, s := range [][4]string{
		{"ce_time", "2026-01-01T10:00:00Z", "ce_subject", "x"},
		{"ce_source", "https://a/b c", "content-type", "application/json"},
		{"CE_ID", " ", "ce_type", "t2"},
		{"ce_specversion", "0.3", "ce_x", "y"},
		{"content-type", "application/cloudevents+json", "ce_dataschema", "::"},
		{"ce_partitionkey", "k", "Content-Type", "a/b; c=d"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		r := &sarama.ConsumerMessage{Topic: "events", Partition: 1, Offset: 7, Value: []byte(`{}`)}
		r.Headers = []*sarama.RecordHeader{header("ce_specversion", "1.0"), header("ce_id", "9"), header(k1, v1),
			header("ce_source", "/s"), header("ce_type", "t"), header(k2, v2)}
		sameAsDecodeRecord(t, r)
	})
}

// BenchmarkFactsDecoder is BenchmarkDecodeRecord's record through the decoder
// analytics uses.
func BenchmarkFactsDecoder(b *testing.B) {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("/bench/loadgen")
	e.SetType("dev.tide.bench")
	e.SetSubject("key-1")
	e.SetTime(time.Now())
	if err := e.SetData("application/json", []byte(`{"pad":"`+strings.Repeat("x", 1010)+`"}`)); err != nil {
		b.Fatal(err)
	}
	m, err := EncodeRecord(context.Background(), "events", &e, "key-1")
	if err != nil {
		b.Fatal(err)
	}
	r := consumed(b, m)
	d := NewFactsDecoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}
