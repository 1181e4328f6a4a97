package ingest

// CloudEvents HTTP parsing for ingest: content-mode detection, bounded body reading,
// a single-pass JSON reader for the structured and batched modes, and the attribute
// rules of CloudEvents 1.0 (spec.md "Type System" and "Context Attributes",
// formats/json-format.md, bindings/http-protocol-binding.md; cited as
// [spec], [json] and [http] below).
//
// Why a hand-written JSON reader: the SDK's reader (jsoniter) accepts wrong attribute
// types, truncates numbers, cannot say where a document is broken and copies data;
// encoding/json would scan every body twice (validate, then decode) and copy data
// again. This reader validates RFC 8259 syntax, extracts the attributes and keeps each
// event's data as a sub-slice of the body, in one pass. The fuzz targets check it
// against encoding/json.

import (
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/problem"
)

// Limits bound what one request may carry. A zero or negative field means its
// DefaultLimits value.
type Limits struct {
	MaxBodyBytes   int64 // whole request body
	MaxBatchEvents int   // events in one batch request
	MaxEventBytes  int   // one event, as encoded JSON (structured) or data+headers (binary)
}

// DefaultLimits returns MaxBodyBytes 16 MiB, MaxBatchEvents 5000 and MaxEventBytes
// 900 KiB, below Kafka's default message.max.bytes of 1 MiB so an accepted event
// always fits in one record with room for the record's own overhead.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 16 << 20, MaxBatchEvents: 5000, MaxEventBytes: 900 << 10}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxBatchEvents <= 0 {
		l.MaxBatchEvents = d.MaxBatchEvents
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = d.MaxEventBytes
	}
	return l
}

// Media types that select the content mode ([http] 3: "If the value is prefixed with
// the CloudEvents media type application/cloudevents ... structured mode ...
// application/cloudevents-batch ... batched mode. Otherwise it defaults to binary").
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
	mediaCEPrefix   = "application/cloudevents"
)

// maxDepth bounds JSON nesting inside data, as encoding/json does, so a hostile body
// cannot make the reader's stack grow without limit.
const maxDepth = 10000

// ParseRequest reads every CloudEvent in r, in binary, structured
// (application/cloudevents+json) or batch (application/cloudevents-batch+json) mode,
// and validates each. It never returns some events and an error: either all events,
// or a problem.
//
// The body is read at most to the limit that applies, never unbounded. In structured
// and batch mode a problem's Attribute is the JSON member at fault; in binary mode it
// is the header (ce-time, Content-Type). Every event returned passes Validate.
// Returned events keep their data as sub-slices of one body buffer: structured JSON
// data exactly as sent, binary bodies as bytes with their Content-Type.
func ParseRequest(r *http.Request, lim Limits) ([]event.Event, *problem.Problem) {
	return parseRequest(r, lim, nil)
}

// parseRequest is ParseRequest; with a non-nil body it reads the request body into a
// buffer from bodyPool and leaves it in *body, for the caller to put back with
// putBody once nothing refers to the events' data any more (ingest: once the records,
// which copy it, are made).
func parseRequest(r *http.Request, lim Limits, body *[]byte) ([]event.Event, *problem.Problem) {
	lim = lim.withDefaults()
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		// Reading a compressed body as the event would only yield a confusing
		// "not valid UTF-8" or a binary event of compressed bytes.
		return nil, problem.Newf(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMediaType,
			"Content-Encoding %q is not supported: send the body uncompressed", enc).WithAttribute("Content-Encoding")
	}
	ct := r.Header.Get("Content-Type")
	mt := mediaTypeOf(ct)
	switch {
	case mt == mediaStructured, mt == mediaBatch:
		if p := checkJSONContentType(ct); p != nil {
			return nil, p
		}
		b, p := readBody(r, lim.MaxBodyBytes, lim.MaxBodyBytes, "request body", body)
		if p != nil {
			return nil, p
		}
		if mt == mediaBatch {
			return parseBatch(b, lim)
		}
		return parseStructured(b, lim)
	case strings.HasPrefix(mt, mediaCEPrefix):
		// [http] 3: a receiver MAY forward an unknown event format as binary; tide
		// must read the attributes to route the event, so it refuses instead.
		return nil, problem.Newf(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMediaType,
			"event format %q is not supported: use application/cloudevents+json, application/cloudevents-batch+json or binary mode", mt).
			WithAttribute("Content-Type")
	default:
		return parseBinary(r, ct, lim, body)
	}
}

// mediaTypeOf returns the lower-cased type/subtype of a Content-Type value, without
// parameters, or "" when there is none.
func mediaTypeOf(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// checkJSONContentType rejects parameters that contradict JSON: RFC 8259 section 8.1
// requires UTF-8 for JSON exchanged between systems.
func checkJSONContentType(ct string) *problem.Problem {
	if !strings.Contains(ct, ";") {
		return nil
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
			"Content-Type %q is not a valid media type: %v", clip(ct), err).WithAttribute("Content-Type")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return problem.Newf(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMediaType,
			"charset %q is not supported: CloudEvents JSON must be UTF-8", clip(cs)).WithAttribute("Content-Type")
	}
	return nil
}

// Request bodies up to maxPooledBody are read into buffers reused across requests
// (parseRequest's body): under batched load the body was the largest allocation of a
// request, and the bytes allocated are what sets how often the GC runs.
const maxPooledBody = 1 << 20

var bodyPool sync.Pool // *[]byte with a capacity of at most maxPooledBody

// getBody returns an empty buffer of at least size bytes, from the pool when it has
// one large enough.
func getBody(size int64) []byte {
	if size <= maxPooledBody {
		if bp, _ := bodyPool.Get().(*[]byte); bp != nil && int64(cap(*bp)) >= size {
			return (*bp)[:0]
		}
	}
	return make([]byte, 0, size)
}

// putBody gives b back to the pool; nothing may use it afterwards.
func putBody(b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledBody {
		b = b[:0]
		bodyPool.Put(&b)
	}
}

// readBody reads r's body, refusing more than max bytes. limit and what are reported
// in the 413 (the body limit, or in binary mode the event limit). With a non-nil
// pooled, the buffer comes from getBody and is also left in *pooled.
func readBody(r *http.Request, max, limit int64, what string, pooled *[]byte) ([]byte, *problem.Problem) {
	tooLarge := func() *problem.Problem {
		p := problem.Newf(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
			"%s is larger than %d bytes", what, limit)
		p.Limit = limit
		return p
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, tooLarge()
	}
	// One allocation of the right size when the length is known; the extra byte
	// lets the final read see EOF without growing the buffer.
	size := int64(512)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	var buf []byte
	if pooled != nil {
		buf = getBody(size)
		defer func() { *pooled = buf }()
	} else {
		buf = make([]byte, 0, size)
	}
	lr := io.LimitReader(r.Body, max+1)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(len(buf), int(max+1)-len(buf)))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return nil, tooLarge()
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return nil, tooLarge()
			}
			return nil, bodyReadProblem(err)
		}
	}
}

// bodyReadProblem is the answer to a body that could not be read. The server's read
// timeout (a client that declared more than it sent) is 408; anything else is 400.
// Neither names the connection: a *net.OpError says "read tcp ADDR->ADDR: ...", and
// the server's addresses are not the client's business.
func bodyReadProblem(err error) *problem.Problem {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return problem.New(http.StatusRequestTimeout, problem.TypeRequestTimeout,
			"request body not received in time: the server's read timeout passed before the body was complete (was Content-Length more than the bytes sent?)")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return problem.New(http.StatusBadRequest, problem.TypeMalformed,
			"the request body ended before its declared length (Content-Length or chunked encoding)")
	}
	reason := err
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		reason = oe.Err // "connection reset by peer", without the addresses
	}
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed, "the request body could not be read: %v", reason)
}

// parseStructured reads one event in the JSON format ([json] 3).
func parseStructured(body []byte, lim Limits) ([]event.Event, *problem.Problem) {
	if p := checkUTF8(body); p != nil {
		return nil, p
	}
	if n := len(trimJSONSpace(body)); n > lim.MaxEventBytes {
		return nil, eventTooLarge(lim.MaxEventBytes, -1)
	}
	d := decoder{buf: body}
	d.ws()
	if d.eof() {
		return nil, problem.New(http.StatusBadRequest, problem.TypeMalformed,
			"request body is empty: structured mode needs one JSON object")
	}
	if c := d.peek(); c != '{' {
		if p := d.skipValue(); p != nil {
			return nil, p
		}
		if p := d.end(); p != nil {
			return nil, p
		}
		detail := "a structured-mode body must be one JSON object (the event), got " + kindName(c)
		if c == '[' {
			detail += ": send arrays with Content-Type " + mediaBatch
		}
		return nil, problem.New(http.StatusBadRequest, problem.TypeInvalidEvent, detail)
	}
	e, bad, syn := d.event()
	if syn != nil {
		return nil, syn
	}
	if p := d.end(); p != nil {
		return nil, p
	}
	if bad != nil {
		return nil, bad
	}
	return []event.Event{e}, nil
}

// parseBatch reads a JSON array of events ([json] 4). Syntax errors anywhere win over
// an invalid event, so a client always hears about broken JSON first; after the
// first invalid event the rest is only checked for syntax.
func parseBatch(body []byte, lim Limits) ([]event.Event, *problem.Problem) {
	if p := checkUTF8(body); p != nil {
		return nil, p
	}
	d := decoder{buf: body}
	d.ws()
	if d.eof() {
		return nil, problem.New(http.StatusBadRequest, problem.TypeMalformed,
			"request body is empty: batch mode needs a JSON array of events")
	}
	if c := d.peek(); c != '[' {
		if p := d.skipValue(); p != nil {
			return nil, p
		}
		if p := d.end(); p != nil {
			return nil, p
		}
		detail := "a batch must be a JSON array of events, got " + kindName(c)
		if c == '{' {
			detail += ": send a single event with Content-Type " + mediaStructured
		}
		return nil, problem.New(http.StatusBadRequest, problem.TypeInvalidBatch, detail)
	}
	d.pos++
	d.depth++
	d.ws()
	if d.peek() == ']' {
		d.pos++
		if p := d.end(); p != nil {
			return nil, p
		}
		// [json] 4.3 allows an empty batch; tide refuses it because accepting nothing
		// with 202 would hide a client bug, and ParseRequest always returns events
		// or a problem.
		return nil, problem.New(http.StatusBadRequest, problem.TypeInvalidBatch, "batch is empty")
	}
	type key struct{ source, id string }
	var (
		events []event.Event
		seen   map[key]int
		bad    *problem.Problem
	)
	for i := 0; ; i++ {
		if i >= lim.MaxBatchEvents {
			p := problem.Newf(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
				"batch has more than %d events", lim.MaxBatchEvents)
			p.Limit = int64(lim.MaxBatchEvents)
			return nil, p
		}
		d.ws()
		start := d.pos
		switch c := d.peek(); {
		case c != '{':
			if p := d.skipValue(); p != nil {
				return nil, p.AtIndex(i)
			}
			if bad == nil {
				bad = problem.Newf(http.StatusBadRequest, problem.TypeInvalidBatch,
					"batch element %d must be a JSON object (an event), got %s", i, kindName(c)).AtIndex(i)
			}
		case bad != nil:
			if p := d.skipValue(); p != nil {
				return nil, p.AtIndex(i)
			}
		default:
			e, evBad, syn := d.event()
			if syn != nil {
				return nil, syn.AtIndex(i)
			}
			switch {
			case d.pos-start > lim.MaxEventBytes:
				bad = eventTooLarge(lim.MaxEventBytes, i)
			case evBad != nil:
				bad = evBad.AtIndex(i)
			default:
				// [spec] id: "Consumers MAY assume that Events with identical source
				// and id are duplicates"; two in one request is a client bug.
				k := key{e.Source(), e.ID()}
				if first, dup := seen[k]; dup {
					bad = problem.Newf(http.StatusBadRequest, problem.TypeInvalidBatch,
						"events %d and %d have the same source and id (%q, %q)", first, i, clip(k.source), clip(k.id)).
						WithAttribute("id").AtIndex(i)
					break
				}
				if seen == nil {
					seen = make(map[key]int)
					// Size the slice from the first event: batches are usually alike.
					events = make([]event.Event, 0, min(lim.MaxBatchEvents, len(body)/(d.pos-start+1)+1))
				}
				seen[k] = i
				events = append(events, e)
			}
		}
		d.ws()
		if d.eof() {
			return nil, d.errEOF()
		}
		switch c := d.peek(); c {
		case ',':
			d.pos++
			continue
		case ']':
			d.pos++
		default:
			return nil, d.errChar(c, "after array element")
		}
		break
	}
	if p := d.end(); p != nil {
		return nil, p
	}
	if bad != nil {
		return nil, bad
	}
	return events, nil
}

func eventTooLarge(limit, index int) *problem.Problem {
	p := problem.Newf(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
		"event is larger than %d bytes", limit)
	p.Limit = int64(limit)
	if index >= 0 {
		p = p.AtIndex(index)
	}
	return p
}

func checkUTF8(body []byte) *problem.Problem {
	if utf8.Valid(body) {
		return nil
	}
	off := 0
	for off < len(body) {
		r, n := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		off += n
	}
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
		"request body is not valid UTF-8 (byte offset %d): JSON must be UTF-8", off)
}

func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
