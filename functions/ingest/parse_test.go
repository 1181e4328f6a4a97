package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

const githubEvents = "../../../shared/data/github-events.jsonl"

// sampleLines returns the lines of the shared GitHub sample, or skips the test
// when the file is absent (fails in CI, where it must be present).
func sampleLines(tb testing.TB) [][]byte {
	tb.Helper()
	raw, err := os.ReadFile(githubEvents)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("sample events: %v", err)
		}
		tb.Skipf("sample events not available: %v", err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			lines = append(lines, bytes.Clone(line))
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(lines) == 0 {
		tb.Fatal("sample events file is empty")
	}
	return lines
}

func newRequest(contentType string, headers map[string]string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		r.Header.Add(k, v)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// want describes the event a valid request must yield; nil fields are not checked.
type want struct {
	id, source, typ string
	subject         *string
	time            *time.Time
	dct             *string
	dataschema      *string
	ext             map[string]any // nil: no extensions
	data            []byte         // nil: no data
	base64          bool
}

func checkEvent(t *testing.T, e event.Event, w want) {
	t.Helper()
	if e.SpecVersion() != "1.0" || e.ID() != w.id || e.Source() != w.source || e.Type() != w.typ {
		t.Errorf("got specversion %q id %q source %q type %q, want 1.0 %q %q %q",
			e.SpecVersion(), e.ID(), e.Source(), e.Type(), w.id, w.source, w.typ)
	}
	ec := e.Context.(*event.EventContextV1)
	if (ec.Subject == nil) != (w.subject == nil) || (w.subject != nil && *ec.Subject != *w.subject) {
		t.Errorf("subject = %v, want %v", ec.Subject, w.subject)
	}
	if (ec.Time == nil) != (w.time == nil) || (w.time != nil && !ec.Time.Equal(*w.time)) {
		t.Errorf("time = %v, want %v", ec.Time, w.time)
	}
	if (ec.DataContentType == nil) != (w.dct == nil) || (w.dct != nil && *ec.DataContentType != *w.dct) {
		t.Errorf("datacontenttype = %v, want %v", ec.DataContentType, w.dct)
	}
	if (ec.DataSchema == nil) != (w.dataschema == nil) || (w.dataschema != nil && ec.DataSchema.String() != *w.dataschema) {
		t.Errorf("dataschema = %v, want %v", ec.DataSchema, w.dataschema)
	}
	if !reflect.DeepEqual(ec.Extensions, w.ext) {
		t.Errorf("extensions = %#v, want %#v", ec.Extensions, w.ext)
	}
	if !bytes.Equal(e.DataEncoded, w.data) || (e.DataEncoded == nil) != (w.data == nil) || e.DataBase64 != w.base64 {
		t.Errorf("data = %q (base64 %v), want %q (base64 %v)", e.DataEncoded, e.DataBase64, w.data, w.base64)
	}
}

func TestParseRequestAcceptsValidEvents(t *testing.T) {
	const min = `"specversion":"1.0","id":"e1","source":"/s","type":"t"`
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	ce := func(kv ...string) map[string]string {
		h := map[string]string{"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/s", "ce-type": "t"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	cases := []struct {
		name        string
		contentType string
		headers     map[string]string
		body        string
		want        []want
	}{
		{"structured minimal event", mediaStructured, nil, `{` + min + `}`,
			[]want{{id: "e1", source: "/s", typ: "t"}}},
		{"structured with charset parameter", "Application/CloudEvents+JSON; charset=UTF-8", nil, `{` + min + `}`,
			[]want{{id: "e1", source: "/s", typ: "t"}}},
		{"structured keeps every optional attribute and extension", mediaStructured, nil,
			`{"specversion":"1.0","id":"e1","source":"https://github.com/o/r","type":"com.github.push",
			  "subject":"main","time":"2026-11-02T10:00:00+01:00","datacontenttype":"application/json",
			  "dataschema":"https://example.com/schema.json#/defs/push","partitionkey":"o/r",
			  "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			  "attempt":3,"neg":-2147483648,"urgent":false,
			  "data": { "ref" : "main",  "n": [1, 2.5e3, null] } }`,
			[]want{{id: "e1", source: "https://github.com/o/r", typ: "com.github.push", subject: ptr("main"),
				time: &at, dct: ptr("application/json"), dataschema: ptr("https://example.com/schema.json#/defs/push"),
				ext: map[string]any{"partitionkey": "o/r", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					"attempt": int32(3), "neg": int32(-2147483648), "urgent": false},
				data: []byte(`{ "ref" : "main",  "n": [1, 2.5e3, null] }`)}}},
		{"structured null attributes are unset", mediaStructured, nil,
			`{` + min + `,"subject":null,"time":null,"gone":null,"data_base64":null}`,
			[]want{{id: "e1", source: "/s", typ: "t"}}},
		{"structured data_base64 decodes to bytes", mediaStructured, nil,
			`{` + min + `,"datacontenttype":"application/octet-stream","data_base64":"AP8Q"}`,
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/octet-stream"), data: []byte{0, 0xff, 0x10}, base64: true}}},
		{"structured empty data_base64 is empty data", mediaStructured, nil, `{` + min + `,"data_base64":""}`,
			[]want{{id: "e1", source: "/s", typ: "t", data: []byte{}, base64: true}}},
		{"structured text data is the decoded string", mediaStructured, nil,
			`{` + min + `,"datacontenttype":"application/xml","data":"<a b=\"c\"/>\n\u00e9\ud83d\ude00"}`,
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/xml"), data: []byte("<a b=\"c\"/>\né😀")}}},
		{"structured JSON string data stays a JSON string", mediaStructured, nil, `{` + min + `,"data":"I'm just a string"}`,
			[]want{{id: "e1", source: "/s", typ: "t", data: []byte(`"I'm just a string"`)}}},
		{"structured JSON null data is an explicit null", mediaStructured, nil, `{` + min + `,"data":null}`,
			[]want{{id: "e1", source: "/s", typ: "t", data: []byte(`null`)}}},
		{"structured +json data stays JSON", mediaStructured, nil,
			`{` + min + `,"datacontenttype":"application/vnd.github+json; charset=utf-8","data":[true]}`,
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/vnd.github+json; charset=utf-8"), data: []byte(`[true]`)}}},
		{"structured datacontenttype type/subtype is stored lower-case", mediaStructured, nil,
			`{` + min + `,"datacontenttype":" Application/JSON ;Charset=UTF-8","data":{}}`,
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/json;Charset=UTF-8"), data: []byte(`{}`)}}},
		{"structured attribute order does not matter", mediaStructured, nil,
			`{"data":{"x":1},"type":"t","datacontenttype":"text/json","source":"/s","id":"e1","specversion":"1.0"}`,
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("text/json"), data: []byte(`{"x":1}`)}}},
		{"structured escaped member names are decoded", mediaStructured, nil,
			`{"spec\u0076ersion":"1.0","\u0069d":"e\u00311","source":"/s","type":"t"}`,
			[]want{{id: "e11", source: "/s", typ: "t"}}},
		{"structured source is kept byte for byte", mediaStructured, nil,
			`{"specversion":"1.0","id":"e1","source":"HTTP://Example.com/a%2fb?q#","type":"t"}`,
			[]want{{id: "e1", source: "HTTP://Example.com/a%2fb?q#", typ: "t"}}},
		{"structured accepts lower-case t and z and fractions", mediaStructured, nil,
			`{` + min + `,"time":"2026-11-02t09:00:00.000000000z"}`,
			[]want{{id: "e1", source: "/s", typ: "t", time: &at}}},
		{"structured accepts non-ASCII ids", mediaStructured, nil,
			`{"specversion":"1.0","id":"äöü-😀","source":"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66","type":"t"}`,
			[]want{{id: "äöü-😀", source: "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", typ: "t"}}},
		{"batch of two events", mediaBatch, nil,
			` [ {` + min + `,"data":1} ,
			    {"specversion":"1.0","id":"e2","source":"/s","type":"t2","data":2} ] `,
			[]want{{id: "e1", source: "/s", typ: "t", data: []byte(`1`)}, {id: "e2", source: "/s", typ: "t2", data: []byte(`2`)}}},
		{"batch allows the same id from different sources", mediaBatch, nil,
			`[{` + min + `},{"specversion":"1.0","id":"e1","source":"/other","type":"t"}]`,
			[]want{{id: "e1", source: "/s", typ: "t"}, {id: "e1", source: "/other", typ: "t"}}},
		{"binary JSON body stays JSON, as sent", "application/json", ce("ce-partitionkey", "k1"), "{\"a\": 1}\n",
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/json"), ext: map[string]any{"partitionkey": "k1"},
				data: []byte("{\"a\": 1}\n")}}},
		{"binary non-JSON body is kept as bytes", "application/octet-stream", ce(), "\x00\xff\xfe",
			[]want{{id: "e1", source: "/s", typ: "t", dct: ptr("application/octet-stream"), data: []byte{0, 0xff, 0xfe}, base64: true}}},
		{"binary text body is kept as bytes", "text/plain; charset=utf-8", ce("ce-subject", "s1"), "hello",
			[]want{{id: "e1", source: "/s", typ: "t", subject: ptr("s1"), dct: ptr("text/plain; charset=utf-8"), data: []byte("hello"), base64: true}}},
		{"binary without body or Content-Type has no data", "", ce(), "",
			[]want{{id: "e1", source: "/s", typ: "t"}}},
		{"binary body without Content-Type is bytes", "", ce(), "raw",
			[]want{{id: "e1", source: "/s", typ: "t", data: []byte("raw"), base64: true}}},
		{"binary header values are percent-decoded", "", ce("ce-id", "Euro%20%E2%82%AC%20%f0%9f%98%80", "ce-note", "100%25%22"),
			"", []want{{id: "Euro € 😀", source: "/s", typ: "t", ext: map[string]any{"note": `100%"`}}}},
		{"binary quoted-string header values are unquoted", "", ce("ce-note", `"a \"quoted\" value"`), "",
			[]want{{id: "e1", source: "/s", typ: "t", ext: map[string]any{"note": `a "quoted" value`}}}},
		{"binary header names are case-insensitive", "", map[string]string{
			"CE-SPECVERSION": "1.0", "Ce-Id": "e1", "ce-source": "/s", "CE-Type": "t", "Ce-TraceParent": "00-x"},
			"", []want{{id: "e1", source: "/s", typ: "t", ext: map[string]any{"traceparent": "00-x"}}}},
		{"binary time and dataschema", "", ce("ce-time", "2026-11-02T09:00:00Z", "ce-dataschema", "https://example.com/s"),
			"", []want{{id: "e1", source: "/s", typ: "t", time: &at, dataschema: ptr("https://example.com/s")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			events, p := ParseRequest(newRequest(c.contentType, c.headers, []byte(c.body)), DefaultLimits())
			if p != nil {
				t.Fatalf("unexpected problem: %v", p)
			}
			if len(events) != len(c.want) {
				t.Fatalf("got %d events, want %d", len(events), len(c.want))
			}
			for i := range events {
				checkEvent(t, events[i], c.want[i])
				checkAccepted(t, events[i])
			}
		})
	}
}

// checkAccepted asserts what every accepted event must satisfy: it passes Validate,
// re-encodes (as the SDK writes it) to JSON that ParseRequest reads back as the same
// event, and the SDK can read that JSON too.
//
// It calls e.MarshalJSON, not json.Marshal(e): encoding/json compacts and
// HTML-escapes a Marshaler's output, which would rewrite the data.
func checkAccepted(t testing.TB, e event.Event) {
	t.Helper()
	if p := Validate(&e); p != nil {
		t.Fatalf("accepted event fails Validate: %v\n%s", p, e)
	}
	encoded, err := e.MarshalJSON()
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	big := Limits{MaxBodyBytes: 1 << 30, MaxBatchEvents: 1, MaxEventBytes: 1 << 30}
	again, p := ParseRequest(newRequest(mediaStructured, nil, encoded), big)
	if p != nil {
		t.Fatalf("re-encoded event does not parse: %v\n%s", p, encoded)
	}
	if diff := eventDiff(e, again[0]); diff != "" {
		t.Fatalf("re-encoded event differs: %s\n%s", diff, encoded)
	}
	var sdk event.Event
	if err := json.Unmarshal(encoded, &sdk); err != nil {
		t.Fatalf("the SDK cannot read the re-encoded event: %v\n%s", err, encoded)
	}
	sdkData, data := sdk.DataEncoded, e.DataEncoded
	if !e.DataBase64 && sdkWritesJSON(e) {
		sdkData, data = trimJSONSpace(sdkData), trimJSONSpace(data)
	}
	if sdk.ID() != e.ID() || sdk.Type() != e.Type() || !bytes.Equal(sdkData, data) {
		t.Fatalf("the SDK reads the re-encoded event differently: %s\n%s", sdk, encoded)
	}
}

// eventDiff compares an event with its re-encoded and re-parsed form; "" means equal.
func eventDiff(a, b event.Event) string {
	ea, eb := a.Context.(*event.EventContextV1), b.Context.(*event.EventContextV1)
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	switch {
	case ea.ID != eb.ID, a.Source() != b.Source(), ea.Type != eb.Type:
		return "id, source or type"
	case !reflect.DeepEqual(str(ea.Subject), str(eb.Subject)):
		return "subject"
	case (ea.Time == nil) != (eb.Time == nil) || (ea.Time != nil && !ea.Time.Equal(eb.Time.Time)):
		return "time"
	case !reflect.DeepEqual(str(ea.DataContentType), str(eb.DataContentType)):
		return "datacontenttype"
	case a.DataSchema() != b.DataSchema():
		return "dataschema"
	case !reflect.DeepEqual(ea.Extensions, eb.Extensions):
		return "extensions"
	case a.DataBase64 != b.DataBase64:
		return "data_base64"
	}
	da, db := a.DataEncoded, b.DataEncoded
	if !a.DataBase64 && a.DataEncoded != nil && !sdkWritesJSON(a) {
		// sdk-go treats only application/json and text/json as JSON and writes
		// other data, */*+json included, as a JSON string: the bytes survive as the
		// string's content.
		var s string
		if json.Unmarshal(db, &s) == nil && isJSONMedia(mediaOf(a)) {
			db = []byte(s)
		}
	} else if !a.DataBase64 {
		da, db = trimJSONSpace(da), trimJSONSpace(db)
	}
	if !bytes.Equal(da, db) || (da == nil) != (db == nil) {
		return "data"
	}
	return ""
}

func mediaOf(e event.Event) string {
	mt, _, _ := mime.ParseMediaType(e.DataContentType())
	return mt
}

func sdkWritesJSON(e event.Event) bool {
	switch mediaOf(e) {
	case "", "application/json", "text/json", mediaStructured, mediaBatch:
		return true
	}
	return false
}

func TestParseRequestReadsEverySampleEventStructured(t *testing.T) {
	for i, line := range sampleLines(t) {
		events, p := ParseRequest(newRequest(mediaStructured, nil, line), DefaultLimits())
		if p != nil {
			t.Fatalf("line %d: %v", i+1, p)
		}
		if len(events) != 1 {
			t.Fatalf("line %d: %d events", i+1, len(events))
		}
		checkSample(t, i+1, line, events[0])
	}
}

func TestParseRequestReadsAllSampleEventsAsOneBatch(t *testing.T) {
	lines := sampleLines(t)
	body := append([]byte("[\n"), bytes.Join(lines, []byte(",\n"))...)
	body = append(body, "\n]"...)
	events, p := ParseRequest(newRequest(mediaBatch, nil, body), DefaultLimits())
	if p != nil {
		t.Fatal(p)
	}
	if len(events) != len(lines) {
		t.Fatalf("got %d events, want %d", len(events), len(lines))
	}
	for i, line := range lines {
		checkSample(t, i+1, line, events[i])
	}
}

// checkSample compares a parsed event with encoding/json's reading of the line.
func checkSample(t *testing.T, lineNo int, line []byte, e event.Event) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("line %d: %v", lineNo, err)
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	if e.ID() != str("id") || e.Source() != str("source") || e.Type() != str("type") || e.Subject() != str("subject") {
		t.Errorf("line %d: got id %q source %q type %q subject %q", lineNo, e.ID(), e.Source(), e.Type(), e.Subject())
	}
	if ts, err := time.Parse(time.RFC3339Nano, str("time")); err != nil || !e.Time().Equal(ts) {
		t.Errorf("line %d: time %v, want %s", lineNo, e.Time(), str("time"))
	}
	if e.DataContentType() != str("datacontenttype") {
		t.Errorf("line %d: datacontenttype %q", lineNo, e.DataContentType())
	}
	wantExt := map[string]any{}
	for k, v := range m {
		if _, core := attributeBit(k); core {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatalf("line %d: extension %s is not a string in the sample; extend this check", lineNo, k)
		}
		wantExt[k] = s
	}
	if got := e.Extensions(); len(wantExt) > 0 || len(got) > 0 {
		if !reflect.DeepEqual(map[string]any(got), wantExt) {
			t.Errorf("line %d: extensions %v, want %v", lineNo, got, wantExt)
		}
	}
	if !bytes.Equal(e.DataEncoded, m["data"]) || e.DataBase64 {
		t.Errorf("line %d: data not kept as sent", lineNo)
	}
	checkAccepted(t, e)
}

func attributeBit(name string) (uint16, bool) {
	_, bit := attribute([]byte(name))
	return bit, bit != 0
}

func TestValidate(t *testing.T) {
	valid := func() event.Event {
		e := event.New()
		e.SetID("e1")
		e.SetSource("/s")
		e.SetType("t")
		return e
	}
	cases := []struct {
		name   string
		modify func(e *event.Event)
		attr   string // "" means the event is valid
	}{
		{"an SDK-built event is valid", func(e *event.Event) {}, ""},
		{"SDK extension types are valid", func(e *event.Event) {
			e.SetExtension("count", 3)
			e.SetExtension("when", time.Now())
			e.SetExtension("where", types.URI{})
		}, ""},
		{"missing id", func(e *event.Event) { e.Context.(*event.EventContextV1).ID = "" }, "id"},
		{"missing source", func(e *event.Event) { e.Context.(*event.EventContextV1).Source = types.URIRef{} }, "source"},
		{"missing type", func(e *event.Event) { e.Context.(*event.EventContextV1).Type = "" }, "type"},
		{"specversion 0.3", func(e *event.Event) { e.SetSpecVersion("0.3") }, "specversion"},
		{"no context", func(e *event.Event) { e.Context = nil }, "-"},
		{"control character in type", func(e *event.Event) { e.SetType("a\x7fb") }, "type"},
		{"noncharacter in id", func(e *event.Event) { e.SetID("a\uFFFE") }, "id"},
		{"empty subject", func(e *event.Event) { e.Context.(*event.EventContextV1).Subject = ptr("") }, "subject"},
		{"relative dataschema", func(e *event.Event) { e.SetDataSchema("/schema") }, "dataschema"},
		{"source with a space", func(e *event.Event) {
			e.Context.(*event.EventContextV1).Source = types.URIRef{URL: url.URL{Opaque: "/a b"}}
		}, "source"},
		{"bad media type", func(e *event.Event) { e.SetDataContentType("json") }, "datacontenttype"},
		{"extension name too long", func(e *event.Event) { e.SetExtension("abcdefghijklmnopqrstu", "x") }, "abcdefghijklmnopqrstu"},
		{"upper-case extension name", func(e *event.Event) {
			e.Context.(*event.EventContextV1).Extensions = map[string]any{"Foo": "x"}
		}, "Foo"},
		{"extension named data", func(e *event.Event) { e.SetExtension("data", "x") }, "data"},
		{"extension holding a float64 put in the map directly", func(e *event.Event) {
			e.Context.(*event.EventContextV1).Extensions = map[string]any{"n": 1.5}
		}, "n"},
		{"the smallest bad extension is reported", func(e *event.Event) {
			e.SetExtension("zz", "\x01")
			e.SetExtension("aa", "\x01")
		}, "aa"},
		{"time beyond year 9999 in UTC", func(e *event.Event) {
			e.SetTime(time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)))
		}, "time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := valid()
			c.modify(&e)
			p := Validate(&e)
			switch {
			case c.attr == "" && p != nil:
				t.Fatalf("unexpected problem: %v", p)
			case c.attr == "":
			case p == nil:
				t.Fatal("no problem reported")
			case p.Status != http.StatusBadRequest || p.Detail == "" || (c.attr != "-" && p.Attribute != c.attr):
				t.Fatalf("got %d %q attribute %q, want 400 naming %q", p.Status, p.Detail, p.Attribute, c.attr)
			}
		})
	}
	if p := Validate(nil); p == nil {
		t.Fatal("nil event passes Validate")
	}
}

func TestLimitsZeroFieldsMeanDefaults(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("got %+v", got)
	}
	d := DefaultLimits()
	if d.MaxBodyBytes != 16<<20 || d.MaxBatchEvents != 5000 || d.MaxEventBytes != 900<<10 {
		t.Fatalf("defaults changed: %+v", d)
	}
	if d.MaxEventBytes >= 1<<20 {
		t.Fatal("an event must fit Kafka's default message.max.bytes of 1 MiB")
	}
}

func TestParseRequestNeverReadsPastTheLimit(t *testing.T) {
	body := &countingReader{r: strings.NewReader(`[` + strings.Repeat(" ", 10<<20) + `]`)}
	r := httptest.NewRequest(http.MethodPost, "/", body)
	r.ContentLength = -1 // length unknown, as with chunked transfer
	r.Header.Set("Content-Type", mediaBatch)
	_, p := ParseRequest(r, Limits{MaxBodyBytes: 1 << 20})
	if p == nil || p.Status != http.StatusRequestEntityTooLarge || p.Limit != 1<<20 {
		t.Fatalf("got %v", p)
	}
	if body.n > 1<<20+1 {
		t.Fatalf("read %d bytes of a body limited to %d", body.n, 1<<20)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func BenchmarkParseStructured(b *testing.B) {
	lines := sampleLines(b)
	line := lines[0]
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		r := newRequest(mediaStructured, nil, line)
		if _, p := ParseRequest(r, DefaultLimits()); p != nil {
			b.Fatal(p)
		}
	}
}

func BenchmarkParseBatch(b *testing.B) {
	lines := sampleLines(b)
	body := append([]byte("["), bytes.Join(lines, []byte(","))...)
	body = append(body, ']')
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := newRequest(mediaBatch, nil, body)
		if events, p := ParseRequest(r, DefaultLimits()); p != nil || len(events) != len(lines) {
			b.Fatal(p)
		}
	}
}

// BenchmarkSDKUnmarshalBatch is the baseline: the SDK's own reader on the same events
// (it checks less and copies data).
func BenchmarkSDKUnmarshalBatch(b *testing.B) {
	lines := sampleLines(b)
	body := append([]byte("["), bytes.Join(lines, []byte(","))...)
	body = append(body, ']')
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var events []event.Event
		if err := json.Unmarshal(body, &events); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseRequestNestingLimitMatchesEncodingJSON(t *testing.T) {
	nested := func(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }
	for _, c := range []struct {
		name, contentType string
		body              func(dataDepth int) string
	}{
		{"structured", mediaStructured, func(n int) string {
			return `{"specversion":"1.0","id":"e1","source":"/s","type":"t","data":` + nested(n) + `}`
		}},
		{"batch", mediaBatch, func(n int) string {
			return `[{"specversion":"1.0","id":"e1","source":"/s","type":"t","data":` + nested(n) + `}]`
		}},
	} {
		for _, depth := range []int{maxDepth - 3, maxDepth - 2, maxDepth - 1, maxDepth} {
			body := c.body(depth)
			_, p := ParseRequest(newRequest(c.contentType, nil, []byte(body)), DefaultLimits())
			if accepted, valid := p == nil, json.Valid([]byte(body)); accepted != valid {
				t.Errorf("%s, data nested %d deep: accepted %v, encoding/json valid %v (%v)", c.name, depth, accepted, valid, p)
			}
		}
	}
}
