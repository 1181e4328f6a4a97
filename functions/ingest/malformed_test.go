package ingest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"function/shared/problem"
)

// malformedCase is one request ingest must refuse, and the answer it must give.
// The corpus assumes DefaultLimits, so the full HTTP handler can replay it.
type malformedCase struct {
	group       string // one of corpusGroups
	name        string // the behaviour the case guards
	method      string // "" means POST
	contentType string
	headers     [][2]string // added in order; a name may repeat
	body        string
	chunked     bool // hide the length, as a chunked upload does

	status    int
	typ       string
	index     *int   // batch position the problem must name; nil: none
	attribute string // attribute or header the problem must name; "": not checked
}

// request builds the HTTP request the case describes.
func (c malformedCase) request() *http.Request {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, "/", strings.NewReader(c.body))
	if c.contentType != "" {
		r.Header.Set("Content-Type", c.contentType)
	}
	for _, h := range c.headers {
		r.Header.Add(h[0], h[1])
	}
	if c.chunked {
		r.ContentLength = -1
		r.Body = io.NopCloser(strings.NewReader(c.body))
	}
	return r
}

const (
	groupJSON      = "broken JSON"
	groupRequired  = "missing or empty required attributes"
	groupValues    = "wrong attribute types or values"
	groupExtension = "bad extension names"
	groupBinary    = "binary-mode header problems"
	groupBatch     = "batch problems"
	groupSize      = "size and encoding problems"
)

var corpusGroups = []string{groupJSON, groupRequired, groupValues, groupExtension, groupBinary, groupBatch, groupSize}

// Building blocks of the corpus.
const (
	ceJSON  = "application/cloudevents+json"
	ceBatch = "application/cloudevents-batch+json"
	attrs   = `"specversion":"1.0","id":"e1","source":"/s","type":"t"` // a valid event's attributes
	good    = `{` + attrs + `}`
)

func at(i int) *int { return &i }

// ceHeaders are a valid binary-mode event's headers, with extra ones appended.
func ceHeaders(extra ...string) [][2]string {
	h := [][2]string{{"ce-specversion", "1.0"}, {"ce-id", "e1"}, {"ce-source", "/s"}, {"ce-type", "t"}}
	for i := 0; i+1 < len(extra); i += 2 {
		h = append(h, [2]string{extra[i], extra[i+1]})
	}
	return h
}

// without returns ceHeaders minus the named one.
func without(name string) [][2]string {
	var h [][2]string
	for _, kv := range ceHeaders() {
		if kv[0] != name {
			h = append(h, kv)
		}
	}
	return h
}

// batchOf joins events into a batch body.
func batchOf(events ...string) string { return "[" + strings.Join(events, ",") + "]" }

// event returns a valid event with the given id.
func eventWithID(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/s","type":"t"}`, id)
}

// manyEvents returns a batch of n valid, distinct events.
func manyEvents(n int) string {
	events := make([]string, n)
	for i := range events {
		events[i] = eventWithID(fmt.Sprint(i))
	}
	return batchOf(events...)
}

// withData returns a valid event whose data string makes it about size bytes.
func withData(size int) string {
	return `{` + attrs + `,"data":"` + strings.Repeat("x", size) + `"}`
}

var (
	lim         = DefaultLimits()
	overBody    = `[` + strings.Repeat(" ", int(lim.MaxBodyBytes)) + good + `]`
	overEvent   = withData(lim.MaxEventBytes)
	underEvent  = withData(1000)
	overBatch   = manyEvents(lim.MaxBatchEvents + 1)
	overHeader  = strings.Repeat("h", lim.MaxEventBytes)
	halfHeader  = strings.Repeat("h", lim.MaxEventBytes/2)
	binaryOver  = strings.Repeat("b", lim.MaxEventBytes+1)
	binaryUnder = strings.Repeat("b", lim.MaxEventBytes-200)
)

var malformedCorpus = []malformedCase{
	// Broken JSON: the document itself cannot be read.
	{group: groupJSON, name: "truncated object", contentType: ceJSON, body: `{"specversion":"1.0","id":"e1"`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "missing colon", contentType: ceJSON, body: `{"specversion" "1.0"}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "trailing comma", contentType: ceJSON, body: `{` + attrs + `,}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "single-quoted strings", contentType: ceJSON, body: `{'specversion':'1.0'}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "unquoted member name", contentType: ceJSON, body: `{specversion:"1.0"}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "second document after the event", contentType: ceJSON, body: good + good,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "trailing garbage after the event", contentType: ceJSON, body: good + "\n;",
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "invalid escape in a string", contentType: ceJSON, body: `{` + attrs + `,"x":"\q"}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "raw newline inside a string", contentType: ceJSON, body: "{" + attrs + ",\"x\":\"a\nb\"}",
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "number with a leading zero in data", contentType: ceJSON, body: `{` + attrs + `,"data":01}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "misspelled literal in data", contentType: ceJSON, body: `{` + attrs + `,"data":tru}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "NaN is not JSON", contentType: ceJSON, body: `{` + attrs + `,"data":NaN}`,
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "empty structured body", contentType: ceJSON, body: "",
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "whitespace-only structured body", contentType: ceJSON, body: " \n\t ",
		status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "broken JSON wins over an invalid event before it", contentType: ceJSON,
		body: `{"specversion":"1.0","id":5,"data":[1,}`, status: 400, typ: problem.TypeMalformed},
	{group: groupJSON, name: "binary body is not the JSON its Content-Type declares", contentType: "application/json",
		headers: ceHeaders(), body: `{"a":`, status: 400, typ: problem.TypeMalformed, attribute: "data"},
	{group: groupJSON, name: "byte order mark before the event", contentType: ceJSON, body: "\xef\xbb\xbf" + good,
		status: 400, typ: problem.TypeMalformed},

	// Missing or empty required attributes.
	{group: groupRequired, name: "missing id", contentType: ceJSON, body: `{"specversion":"1.0","source":"/s","type":"t"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupRequired, name: "empty id", contentType: ceJSON, body: `{"specversion":"1.0","id":"","source":"/s","type":"t"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupRequired, name: "null id counts as missing", contentType: ceJSON,
		body: `{"specversion":"1.0","id":null,"source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupRequired, name: "missing source", contentType: ceJSON, body: `{"specversion":"1.0","id":"e1","type":"t"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupRequired, name: "empty source", contentType: ceJSON, body: `{"specversion":"1.0","id":"e1","source":"","type":"t"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupRequired, name: "missing type", contentType: ceJSON, body: `{"specversion":"1.0","id":"e1","source":"/s"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "type"},
	{group: groupRequired, name: "empty type", contentType: ceJSON, body: `{"specversion":"1.0","id":"e1","source":"/s","type":""}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "type"},
	{group: groupRequired, name: "missing specversion", contentType: ceJSON, body: `{"id":"e1","source":"/s","type":"t"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "specversion"},
	{group: groupRequired, name: "empty object", contentType: ceJSON, body: `{}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "specversion"},
	{group: groupRequired, name: "empty subject", contentType: ceJSON, body: `{` + attrs + `,"subject":""}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "subject"},
	{group: groupRequired, name: "binary mode without ce-id", headers: without("ce-id"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-id"},
	{group: groupRequired, name: "binary mode with an empty ce-type", headers: append(without("ce-type"), [2]string{"ce-type", ""}),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-type"},

	// Wrong attribute types or values.
	{group: groupValues, name: "specversion 0.3 is not accepted", contentType: ceJSON,
		body: `{"specversion":"0.3","id":"e1","source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "specversion"},
	{group: groupValues, name: "specversion as a number", contentType: ceJSON,
		body: `{"specversion":1.0,"id":"e1","source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "specversion"},
	{group: groupValues, name: "wrong specversion wins over later problems", contentType: ceJSON,
		body: `{"id":7,"specversion":"0.3"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "specversion"},
	{group: groupValues, name: "id as a number", contentType: ceJSON,
		body: `{"specversion":"1.0","id":42,"source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupValues, name: "type as an object", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"e1","source":"/s","type":{"a":1}}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "type"},
	{group: groupValues, name: "subject as a boolean", contentType: ceJSON, body: `{` + attrs + `,"subject":true}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "subject"},
	{group: groupValues, name: "time in words", contentType: ceJSON, body: `{` + attrs + `,"time":"yesterday"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "time"},
	{group: groupValues, name: "time without a zone", contentType: ceJSON, body: `{` + attrs + `,"time":"2026-11-02T09:00:00"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "time"},
	{group: groupValues, name: "time with a space separator", contentType: ceJSON, body: `{` + attrs + `,"time":"2026-11-02 09:00:00Z"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "time"},
	{group: groupValues, name: "time offset of 24 hours", contentType: ceJSON, body: `{` + attrs + `,"time":"2026-11-02T09:00:00+24:00"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "time"},
	{group: groupValues, name: "time on February 30th", contentType: ceJSON, body: `{` + attrs + `,"time":"2026-02-30T09:00:00Z"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "time"},
	{group: groupValues, name: "source with a space", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"e1","source":"/a b","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupValues, name: "source with a control character", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"e1","source":"/a\u0000","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupValues, name: "source with a broken percent-escape", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"e1","source":"/a%zz","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupValues, name: "source with a colon in the first relative segment", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"e1","source":"1a:b","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "source"},
	{group: groupValues, name: "relative dataschema", contentType: ceJSON, body: `{` + attrs + `,"dataschema":"/schema.json"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "dataschema"},
	{group: groupValues, name: "datacontenttype that is not a media type", contentType: ceJSON,
		body: `{` + attrs + `,"datacontenttype":"json"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "datacontenttype"},
	{group: groupValues, name: "data and data_base64 together", contentType: ceJSON,
		body: `{` + attrs + `,"data":{},"data_base64":"AA=="}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "data_base64"},
	{group: groupValues, name: "data_base64 that is not base64", contentType: ceJSON,
		body: `{` + attrs + `,"data_base64":"not base64!"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "data_base64"},
	{group: groupValues, name: "object data with a non-JSON datacontenttype", contentType: ceJSON,
		body: `{` + attrs + `,"datacontenttype":"text/plain","data":{"a":1}}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "data"},
	{group: groupValues, name: "attribute given twice", contentType: ceJSON, body: `{` + attrs + `,"id":"e2"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupValues, name: "unpaired surrogate in id", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"\ud800","source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupValues, name: "control character in id", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"a\u0007","source":"/s","type":"t"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "id"},
	{group: groupValues, name: "extension value that is an object", contentType: ceJSON, body: `{` + attrs + `,"meta":{"a":1}}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "meta"},
	{group: groupValues, name: "extension value that is an array", contentType: ceJSON, body: `{` + attrs + `,"tags":["a"]}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "tags"},
	{group: groupValues, name: "extension value with a fraction", contentType: ceJSON, body: `{` + attrs + `,"ratio":1.5}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ratio"},
	{group: groupValues, name: "extension integer beyond 32 bits", contentType: ceJSON, body: `{` + attrs + `,"big":2147483648}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "big"},
	{group: groupValues, name: "structured body that is an array", contentType: ceJSON, body: `[` + good + `]`,
		status: 400, typ: problem.TypeInvalidEvent},

	// Bad extension names.
	{group: groupExtension, name: "upper-case extension name", contentType: ceJSON, body: `{` + attrs + `,"partitionKey":"k"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "partitionKey"},
	{group: groupExtension, name: "underscore in an extension name", contentType: ceJSON, body: `{` + attrs + `,"trace_id":"x"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "trace_id"},
	{group: groupExtension, name: "hyphen in an extension name", contentType: ceJSON, body: `{` + attrs + `,"trace-id":"x"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "trace-id"},
	{group: groupExtension, name: "extension name of 21 characters", contentType: ceJSON,
		body: `{` + attrs + `,"abcdefghijklmnopqrstu":"x"}`, status: 400, typ: problem.TypeInvalidEvent, attribute: "abcdefghijklmnopqrstu"},
	{group: groupExtension, name: "empty extension name", contentType: ceJSON, body: `{` + attrs + `,"":"x"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: ""},
	{group: groupExtension, name: "non-ASCII extension name", contentType: ceJSON, body: `{` + attrs + `,"grüße":"x"}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "grüße"},
	{group: groupExtension, name: "invalid extension name with a null value", contentType: ceJSON, body: `{` + attrs + `,"Bad":null}`,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "Bad"},
	{group: groupExtension, name: "binary header with an underscore in the name", headers: ceHeaders("ce-trace_id", "x"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-trace_id"},
	{group: groupExtension, name: "binary header ce-data uses a reserved name", headers: ceHeaders("ce-data", "x"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-data"},
	{group: groupExtension, name: "binary header with a 21-character name", headers: ceHeaders("ce-abcdefghijklmnopqrstu", "x"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-abcdefghijklmnopqrstu"},

	// Binary-mode header problems.
	{group: groupBinary, name: "structured event sent as application/json", contentType: "application/json", body: good,
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-specversion"},
	{group: groupBinary, name: "no CloudEvents headers at all", contentType: "text/plain", body: "hello",
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-specversion"},
	{group: groupBinary, name: "ce-specversion 0.3", headers: append(without("ce-specversion"), [2]string{"ce-specversion", "0.3"}),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-specversion"},
	{group: groupBinary, name: "ce-datacontenttype next to Content-Type", contentType: "text/plain",
		headers: ceHeaders("ce-datacontenttype", "text/plain"), body: "x", status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-datacontenttype"},
	{group: groupBinary, name: "broken percent-encoding", headers: ceHeaders("ce-note", "100%"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-note"},
	{group: groupBinary, name: "overlong UTF-8 once percent-decoded", headers: ceHeaders("ce-note", "%C0%A0"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-note"},
	{group: groupBinary, name: "raw bytes that are not UTF-8", headers: ceHeaders("ce-note", "\xff\xfe"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-note"},
	{group: groupBinary, name: "percent-encoded newline", headers: ceHeaders("ce-note", "a%0Ab"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-note"},
	{group: groupBinary, name: "ce-id sent twice", headers: ceHeaders("ce-id", "e2"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-id"},
	{group: groupBinary, name: "unterminated quoted string", headers: ceHeaders("ce-note", `"abc`),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-note"},
	{group: groupBinary, name: "ce-time not RFC 3339", headers: ceHeaders("ce-time", "Mon, 02 Nov 2026 09:00:00 GMT"),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-time"},
	{group: groupBinary, name: "ce-source with a percent-encoded space", headers: append(without("ce-source"), [2]string{"ce-source", "/a%20b"}),
		status: 400, typ: problem.TypeInvalidEvent, attribute: "ce-source"},
	{group: groupBinary, name: "Content-Type that is not a media type", contentType: "not a type", headers: ceHeaders(), body: "x",
		status: 400, typ: problem.TypeInvalidEvent, attribute: "Content-Type"},

	// Batch problems.
	{group: groupBatch, name: "object instead of an array", contentType: ceBatch, body: good,
		status: 400, typ: problem.TypeInvalidBatch},
	{group: groupBatch, name: "string instead of an array", contentType: ceBatch, body: `"events"`,
		status: 400, typ: problem.TypeInvalidBatch},
	{group: groupBatch, name: "empty array", contentType: ceBatch, body: `[]`,
		status: 400, typ: problem.TypeInvalidBatch},
	{group: groupBatch, name: "element that is a number", contentType: ceBatch, body: batchOf(good, `5`),
		status: 400, typ: problem.TypeInvalidBatch, index: at(1)},
	{group: groupBatch, name: "element that is null", contentType: ceBatch, body: batchOf(`null`, good),
		status: 400, typ: problem.TypeInvalidBatch, index: at(0)},
	{group: groupBatch, name: "nested array", contentType: ceBatch, body: batchOf(eventWithID("a"), `[`+good+`]`),
		status: 400, typ: problem.TypeInvalidBatch, index: at(1)},
	{group: groupBatch, name: "one bad event rejects the batch", contentType: ceBatch,
		body:   batchOf(eventWithID("a"), eventWithID("b"), `{"specversion":"1.0","id":"c","source":"/s"}`, eventWithID("d")),
		status: 400, typ: problem.TypeInvalidEvent, index: at(2), attribute: "type"},
	{group: groupBatch, name: "the first bad event is reported", contentType: ceBatch,
		body:   batchOf(eventWithID("a"), `{"specversion":"1.0","id":"b","source":"/s","type":"t","time":"noon"}`, `{}`),
		status: 400, typ: problem.TypeInvalidEvent, index: at(1), attribute: "time"},
	{group: groupBatch, name: "duplicate source and id names the second", contentType: ceBatch,
		body:   batchOf(eventWithID("a"), eventWithID("b"), eventWithID("c"), eventWithID("b")),
		status: 400, typ: problem.TypeInvalidBatch, index: at(3), attribute: "id"},
	{group: groupBatch, name: "version 0.3 event inside a batch", contentType: ceBatch,
		body:   batchOf(eventWithID("a"), `{"specversion":"0.3","id":"b","source":"/s","type":"t"}`),
		status: 400, typ: problem.TypeInvalidEvent, index: at(1), attribute: "specversion"},
	{group: groupBatch, name: "broken JSON inside the third event", contentType: ceBatch,
		body: `[` + good + `,` + eventWithID("x") + `,{"specversion":"1.0",,}]`, status: 400, typ: problem.TypeMalformed, index: at(2)},
	{group: groupBatch, name: "broken JSON after a bad event still wins", contentType: ceBatch,
		body: `[{"id":1},` + good + ` ` + good + `]`, status: 400, typ: problem.TypeMalformed},
	{group: groupBatch, name: "unclosed batch", contentType: ceBatch, body: `[` + good,
		status: 400, typ: problem.TypeMalformed},

	// Size and encoding problems.
	{group: groupSize, name: "invalid UTF-8 in a structured body", contentType: ceJSON,
		body: `{"specversion":"1.0","id":"` + "\xc3\x28" + `","source":"/s","type":"t"}`, status: 400, typ: problem.TypeMalformed},
	{group: groupSize, name: "invalid UTF-8 in a batch body", contentType: ceBatch, body: batchOf(good, `{"x":"`+"\xff"+`"}`),
		status: 400, typ: problem.TypeMalformed},
	{group: groupSize, name: "UTF-16 body", contentType: ceJSON, body: "\xff\xfe{\x00}\x00",
		status: 400, typ: problem.TypeMalformed},
	{group: groupSize, name: "charset other than UTF-8", contentType: ceJSON + "; charset=iso-8859-1", body: good,
		status: 415, typ: problem.TypeUnsupportedMediaType, attribute: "Content-Type"},
	{group: groupSize, name: "XML event format", contentType: "application/cloudevents+xml", body: "<event/>",
		status: 415, typ: problem.TypeUnsupportedMediaType, attribute: "Content-Type"},
	{group: groupSize, name: "Avro batch format", contentType: "application/cloudevents-batch+avro", body: "x",
		status: 415, typ: problem.TypeUnsupportedMediaType, attribute: "Content-Type"},
	{group: groupSize, name: "body over the limit with a known length", contentType: ceBatch, body: overBody,
		status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "body over the limit sent chunked", contentType: ceBatch, body: overBody, chunked: true,
		status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "structured event over the event limit", contentType: ceJSON, body: overEvent,
		status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "one event in a batch over the event limit", contentType: ceBatch,
		body: batchOf(underEvent, strings.Replace(overEvent, `"e1"`, `"e2"`, 1)), status: 413, typ: problem.TypeTooLarge, index: at(1)},
	{group: groupSize, name: "batch with one event too many", contentType: ceBatch, body: overBatch,
		status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "binary body over the event limit", contentType: "application/octet-stream", headers: ceHeaders(),
		body: binaryOver, status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "binary body and headers together over the event limit", contentType: "application/octet-stream",
		headers: ceHeaders("ce-note", strings.Repeat("n", 400)), body: binaryUnder, chunked: true, status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "one ce- header over the event limit", headers: ceHeaders("ce-note", overHeader),
		status: 413, typ: problem.TypeTooLarge},
	{group: groupSize, name: "many ce- headers together over the event limit", headers: ceHeaders("ce-a", halfHeader, "ce-b", halfHeader, "ce-c", "x"),
		status: 413, typ: problem.TypeTooLarge},
}

func TestMalformedCorpusCoversEveryGroup(t *testing.T) {
	counts := map[string]int{}
	for _, c := range malformedCorpus {
		counts[c.group]++
	}
	for _, g := range corpusGroups {
		if counts[g] < 5 {
			t.Errorf("group %q has %d cases, want at least 5", g, counts[g])
		}
		t.Logf("%-40s %d cases", g, counts[g])
		delete(counts, g)
	}
	if len(counts) > 0 {
		t.Errorf("cases in unknown groups: %v", counts)
	}
	if len(malformedCorpus) < 60 {
		t.Errorf("corpus has %d cases, want at least 60", len(malformedCorpus))
	}
}

func TestParseRequestRejectsMalformedCorpus(t *testing.T) {
	names := map[string]bool{}
	for _, c := range malformedCorpus {
		if names[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		names[c.name] = true
		t.Run(c.group+"/"+c.name, func(t *testing.T) {
			events, p := ParseRequest(c.request(), DefaultLimits())
			if p == nil {
				t.Fatalf("accepted %d events", len(events))
			}
			if events != nil {
				t.Errorf("returned %d events along with the problem", len(events))
			}
			if p.Status != c.status || p.Type != c.typ {
				t.Errorf("got %d %s, want %d %s (%s)", p.Status, p.Type, c.status, c.typ, p.Detail)
			}
			if p.Detail == "" || p.Title == "" {
				t.Errorf("problem without title or detail: %+v", p)
			}
			switch {
			case c.index == nil && p.Index != nil:
				t.Errorf("problem names index %d, want none", *p.Index)
			case c.index != nil && (p.Index == nil || *p.Index != *c.index):
				t.Errorf("problem names index %v, want %d (%s)", p.Index, *c.index, p.Detail)
			}
			if c.attribute != "" && p.Attribute != c.attribute {
				t.Errorf("problem names attribute %q, want %q (%s)", p.Attribute, c.attribute, p.Detail)
			}
			if c.status == http.StatusRequestEntityTooLarge && p.Limit <= 0 {
				t.Errorf("413 without the limit")
			}
			t.Log(p.Detail)
		})
	}
}
