package kafka

import (
	"context"
	"mime"
	"net/url"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Facts are the attributes of a record's CloudEvent that analytics counts.
type Facts struct {
	Source  string
	ID      string
	Type    string
	Subject string    // "" when the event has none
	Time    time.Time // zero when the event has none
}

// FactsDecoder reads Facts from records: what DecodeRecord would give, for the same
// records and with the same errors, without building the event. One decoder serves
// one goroutine (a batch): it remembers the sources and content types it checked.
//
// Binary-mode CloudEvents 1.0 records (what ingest writes) are read straight from the
// headers, checked as DecodeRecord's fast path and the event's Validate check them
// (specversion, a non-blank id and type, source a URI reference, time RFC 3339, the
// content type a media type, extension names); anything else (structured mode,
// another version, ce_dataschema or ce_datacontenttype headers, a header name that is
// not ASCII, any value it would refuse) goes through DecodeRecord, so an error, and
// so what is dead-lettered, is DecodeRecord's. Decoding was the larger part of the
// analytics consumer's CPU (see BENCHMARKS.md).
type FactsDecoder struct {
	sources      map[string]string // raw ce_source -> the event's Source()
	contentTypes map[string]bool   // trimmed content-type -> a valid media type
}

// NewFactsDecoder returns a decoder.
func NewFactsDecoder() *FactsDecoder {
	return &FactsDecoder{sources: map[string]string{}, contentTypes: map[string]bool{}}
}

// maxRemembered bounds what a decoder remembers, for a batch of many sources.
const maxRemembered = 1024

// Decode returns the facts of r's CloudEvent, or DecodeRecord's error.
func (d *FactsDecoder) Decode(ctx context.Context, r *sarama.ConsumerMessage) (Facts, error) {
	if f, ok := d.binaryV1(r); ok {
		return f, nil
	}
	e, err := DecodeRecord(ctx, r)
	if err != nil {
		return Facts{}, err
	}
	return Facts{Source: e.Source(), ID: e.ID(), Type: e.Type(), Subject: e.Subject(), Time: e.Time()}, nil
}

// binaryV1 reads the facts of a binary-mode CloudEvents 1.0 record, reporting false
// for anything DecodeRecord's fast path and Validate would not both accept; the
// header that comes last wins, as it does there.
func (d *FactsDecoder) binaryV1(r *sarama.ConsumerMessage) (Facts, bool) {
	var f Facts
	v1, hasID, contentType := false, false, ""
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		k := h.Key
		if !isASCII(k) {
			return f, false
		}
		if len(k) >= len(ceHeaderPrefix) && equalFoldASCII(k[:len(ceHeaderPrefix)], ceHeaderPrefix) {
			name := k[len(ceHeaderPrefix):]
			switch {
			case equalFoldASCII(name, "specversion"):
				if string(h.Value) != event.CloudEventsVersionV1 {
					return f, false
				}
				v1 = true
			case equalFoldASCII(name, "id"):
				if f.ID = strings.TrimSpace(string(h.Value)); f.ID == "" {
					return f, false
				}
				hasID = true
			case equalFoldASCII(name, "source"):
				s, ok := d.source(h.Value)
				if !ok {
					return f, false
				}
				f.Source = s
			case equalFoldASCII(name, "type"):
				f.Type = strings.TrimSpace(string(h.Value))
			case equalFoldASCII(name, "subject"):
				f.Subject = strings.TrimSpace(string(h.Value))
			case equalFoldASCII(name, "time"):
				t, err := time.Parse(time.RFC3339Nano, string(h.Value))
				if err != nil {
					return f, false
				}
				f.Time = t
			case equalFoldASCII(name, "partitionkey"):
				// The extension ingest writes on every record: a valid name.
			default:
				// datacontenttype, dataschema: left to DecodeRecord; anything else is
				// an extension, whose name the SDK checks.
				if equalFoldASCII(name, "datacontenttype") || equalFoldASCII(name, "dataschema") ||
					!event.IsExtensionNameValid(string(name)) {
					return f, false
				}
			}
		} else if equalFoldASCII(k, contentTypeHeader) {
			if format.Lookup(string(h.Value)) != nil {
				return f, false // structured mode
			}
			contentType = strings.TrimSpace(string(h.Value))
		}
	}
	if !v1 || !hasID || strings.TrimSpace(f.Source) == "" || f.Type == "" {
		return f, false
	}
	if contentType != "" && !d.mediaType(contentType) {
		return f, false
	}
	return f, true
}

// source returns what the event's Source() would be for the header value v.
func (d *FactsDecoder) source(v []byte) (string, bool) {
	if s, ok := d.sources[string(v)]; ok {
		return s, true
	}
	u, err := url.Parse(string(v))
	if err != nil {
		return "", false
	}
	s := (&types.URIRef{URL: *u}).String()
	if len(d.sources) >= maxRemembered {
		clear(d.sources)
	}
	d.sources[string(v)] = s
	return s, true
}

// mediaType reports whether ct (trimmed) is a media type Validate accepts.
func (d *FactsDecoder) mediaType(ct string) bool {
	if ok, seen := d.contentTypes[ct]; seen {
		return ok
	}
	_, _, err := mime.ParseMediaType(ct)
	if len(d.contentTypes) >= maxRemembered {
		clear(d.contentTypes)
	}
	d.contentTypes[ct] = err == nil
	return err == nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// equalFoldASCII reports whether b equals the lower-case ASCII s, ignoring case.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
