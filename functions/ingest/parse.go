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
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

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
	lim = lim.withDefaults()
	ct := r.Header.Get("Content-Type")
	mt := mediaTypeOf(ct)
	switch {
	case mt == mediaStructured, mt == mediaBatch:
		if p := checkJSONContentType(ct); p != nil {
			return nil, p
		}
		body, p := readBody(r, lim.MaxBodyBytes, lim.MaxBodyBytes, "request body")
		if p != nil {
			return nil, p
		}
		if mt == mediaBatch {
			return parseBatch(body, lim)
		}
		return parseStructured(body, lim)
	case strings.HasPrefix(mt, mediaCEPrefix):
		// [http] 3: a receiver MAY forward an unknown event format as binary; tide
		// must read the attributes to route the event, so it refuses instead.
		return nil, problem.Newf(http.StatusUnsupportedMediaType, problem.TypeUnsupportedMediaType,
			"event format %q is not supported: use application/cloudevents+json, application/cloudevents-batch+json or binary mode", mt).
			WithAttribute("Content-Type")
	default:
		return parseBinary(r, ct, lim)
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

// readBody reads r's body, refusing more than max bytes. limit and what are reported
// in the 413 (the body limit, or in binary mode the event limit).
func readBody(r *http.Request, max, limit int64, what string) ([]byte, *problem.Problem) {
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
	buf := make([]byte, 0, size)
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
			return nil, problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
				"reading the request body: %v", err)
		}
	}
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

// decoder walks one JSON document held in memory (RFC 8259). Offsets in its
// problems are byte offsets into that document.
type decoder struct {
	buf   []byte
	pos   int
	depth int    // containers open around the value being read
	stack []byte // closing brackets of the containers open in skipValue
}

func (d *decoder) eof() bool { return d.pos >= len(d.buf) }

// peek returns the next byte, or 0 at the end.
func (d *decoder) peek() byte {
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

func (d *decoder) ws() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// end checks that only whitespace follows the value just read.
func (d *decoder) end() *problem.Problem {
	d.ws()
	if d.eof() {
		return nil
	}
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
		"malformed JSON at byte offset %d: unexpected data after the JSON value", d.pos)
}

func (d *decoder) errEOF() *problem.Problem {
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
		"malformed JSON at byte offset %d: unexpected end of JSON input", len(d.buf))
}

func (d *decoder) errChar(c byte, context string) *problem.Problem {
	if d.eof() {
		return d.errEOF()
	}
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
		"malformed JSON at byte offset %d: invalid character %s %s", d.pos, describeByte(c), context)
}

func (d *decoder) errAt(off int, msg string) *problem.Problem {
	return problem.Newf(http.StatusBadRequest, problem.TypeMalformed,
		"malformed JSON at byte offset %d: %s", off, msg)
}

func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// strPlain marks bytes that may appear unescaped in a JSON string (RFC 8259 7).
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether none of the 8 bytes in x is '"', '\\' or below 0x20,
// using the "has zero byte" bit trick: (v-0x01..)&^v&0x80.. is non-zero exactly
// when some byte of v is zero (or, for the 0x20 test, below 0x20).
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return ((q-ones)&^q|(bs-ones)&^bs|(x-ones*0x20)&^x)&highs == 0
}

// skipString moves past the string at d.pos, checking its escapes, and reports
// whether it holds any. Most of a body is string bytes, so runs of ordinary bytes
// are skipped a word at a time.
func (d *decoder) skipString() (escaped bool, p *problem.Problem) {
	i := d.pos + 1
	for {
		for i+8 <= len(d.buf) && plainWord(binary.LittleEndian.Uint64(d.buf[i:])) {
			i += 8
		}
		for i < len(d.buf) && strPlain[d.buf[i]] {
			i++
		}
		if i >= len(d.buf) {
			return false, d.errEOF()
		}
		switch c := d.buf[i]; c {
		case '"':
			d.pos = i + 1
			return escaped, nil
		case '\\':
			escaped = true
			if i+1 >= len(d.buf) {
				return false, d.errEOF()
			}
			switch d.buf[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d.buf) {
					return false, d.errEOF()
				}
				for j := i + 2; j < i+6; j++ {
					if _, ok := unhex(d.buf[j]); !ok {
						return false, d.errAt(j, "invalid character "+describeByte(d.buf[j])+" in \\u escape")
					}
				}
				i += 6
			default:
				return false, d.errAt(i+1, "invalid escape \\"+string(rune(d.buf[i+1]&0x7f)))
			}
		default:
			return false, d.errAt(i, "control character "+describeByte(c)+" in string")
		}
	}
}

// readString reads the string at d.pos. ok is false when an escape encodes an
// unpaired UTF-16 surrogate, which no CloudEvents String may hold ([spec] Type
// System); the string then carries U+FFFD in its place.
func (d *decoder) readString() (s string, ok bool, p *problem.Problem) {
	start := d.pos
	escaped, p := d.skipString()
	if p != nil {
		return "", false, p
	}
	raw := d.buf[start+1 : d.pos-1]
	if !escaped {
		return string(raw), true, nil
	}
	b, ok := unescape(raw)
	return string(b), ok, nil
}

// unescape decodes the body of a syntactically valid JSON string.
func unescape(raw []byte) (b []byte, ok bool) {
	ok = true
	b = make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if r < 0xdc00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := hex4(raw[i+2:]); r2 >= 0xdc00 && r2 < 0xe000 {
						b = utf8.AppendRune(b, utf16.DecodeRune(r, r2))
						i += 6
						continue
					}
				}
				ok = false
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // '"', '\\', '/'
			b = append(b, raw[i+1])
		}
		i += 2
	}
	return b, ok
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		v, _ := unhex(c)
		r = r<<4 | rune(v)
	}
	return r
}

// number moves past the number at d.pos and reports whether it is an integer
// (no fraction or exponent).
func (d *decoder) number() (isInt bool, p *problem.Problem) {
	b, i := d.buf, d.pos
	digits := func() bool {
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		d.pos = i
		return false, d.errChar(d.peek(), "in numeric literal")
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		i++
		isInt = false
		if !digits() {
			d.pos = i
			return false, d.errChar(d.peek(), "after decimal point in numeric literal")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		isInt = false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			d.pos = i
			return false, d.errChar(d.peek(), "in exponent of numeric literal")
		}
	}
	d.pos = i
	return isInt, nil
}

func (d *decoder) literal(lit string) *problem.Problem {
	for i := 0; i < len(lit); i++ {
		if d.pos+i >= len(d.buf) {
			return d.errEOF()
		}
		if d.buf[d.pos+i] != lit[i] {
			d.pos += i
			return d.errChar(d.buf[d.pos], "in literal "+lit)
		}
	}
	d.pos += len(lit)
	return nil
}

// objectKey moves past `"key" :` inside an object being skipped.
func (d *decoder) objectKey() *problem.Problem {
	d.ws()
	if d.peek() != '"' {
		return d.errChar(d.peek(), "looking for beginning of object key string")
	}
	if _, p := d.skipString(); p != nil {
		return p
	}
	d.ws()
	if d.peek() != ':' {
		return d.errChar(d.peek(), "after object key")
	}
	d.pos++
	return nil
}

// skipValue moves past one JSON value, validating it. It keeps its own stack of
// open containers instead of recursing, so deep nesting costs one byte per level.
func (d *decoder) skipValue() *problem.Problem {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		d.ws()
		if d.eof() {
			return d.errEOF()
		}
		switch c := d.buf[d.pos]; c {
		case '{', '[':
			if len(stack)+d.depth >= maxDepth {
				return d.errAt(d.pos, fmt.Sprintf("nesting deeper than %d levels", maxDepth))
			}
			d.pos++
			d.ws()
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if d.peek() == closer {
				d.pos++
				break
			}
			stack = append(stack, closer)
			if c == '{' {
				if p := d.objectKey(); p != nil {
					return p
				}
			}
			continue
		case '"':
			if _, p := d.skipString(); p != nil {
				return p
			}
		case 't':
			if p := d.literal("true"); p != nil {
				return p
			}
		case 'f':
			if p := d.literal("false"); p != nil {
				return p
			}
		case 'n':
			if p := d.literal("null"); p != nil {
				return p
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return d.errChar(c, "looking for beginning of value")
			}
			if _, p := d.number(); p != nil {
				return p
			}
		}
		// A value ended: close containers until one expects another element.
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			if d.eof() {
				return d.errEOF()
			}
			c, top := d.buf[d.pos], stack[len(stack)-1]
			if c == top {
				d.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				if top == '}' {
					return d.errChar(c, "after object key:value pair")
				}
				return d.errChar(c, "after array element")
			}
			d.pos++
			if top == '}' {
				if p := d.objectKey(); p != nil {
					return p
				}
			}
			break
		}
	}
}

// value is one attribute value as read from JSON.
type value struct {
	kind  byte   // first byte: '"', '-' (any number), 't', 'f', 'n', '{', '['
	str   string // decoded, for strings
	strOK bool   // false: the string held an unpaired surrogate escape
	isInt bool   // for numbers
	raw   []byte // the value as written
}

func (d *decoder) readValue() (v value, p *problem.Problem) {
	start := d.pos
	c := d.peek()
	switch {
	case c == '"':
		v.kind = '"'
		v.str, v.strOK, p = d.readString()
	case c == '-' || ('0' <= c && c <= '9'):
		v.kind = '-'
		v.isInt, p = d.number()
	case c == 't':
		v.kind, p = c, d.literal("true")
	case c == 'f':
		v.kind, p = c, d.literal("false")
	case c == 'n':
		v.kind, p = c, d.literal("null")
	default:
		v.kind = c
		p = d.skipValue()
	}
	v.raw = d.buf[start:d.pos]
	return v, p
}

func kindName(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == '-' || ('0' <= c && c <= '9'):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	}
	return "an invalid value"
}

// Bits for attributes seen in one event object.
const (
	attrSpecversion uint16 = 1 << iota
	attrID
	attrSource
	attrType
	attrSubject
	attrTime
	attrDataContentType
	attrDataSchema
	attrData
	attrDataBase64
)

// attribute maps a member name to its bit (0 for extensions) and returns the name
// as a string, without allocating for the names every event has.
func attribute(b []byte) (string, uint16) {
	switch string(b) {
	case "specversion":
		return "specversion", attrSpecversion
	case "id":
		return "id", attrID
	case "source":
		return "source", attrSource
	case "type":
		return "type", attrType
	case "subject":
		return "subject", attrSubject
	case "time":
		return "time", attrTime
	case "datacontenttype":
		return "datacontenttype", attrDataContentType
	case "dataschema":
		return "dataschema", attrDataSchema
	case "data":
		return "data", attrData
	case "data_base64":
		return "data_base64", attrDataBase64
	}
	return string(b), 0
}

// event reads one event object at d.pos. syn is a syntax problem (the document is
// broken, stop); bad is the first rule the event breaks (keep reading for syntax).
// After the first broken rule values are skipped, not decoded.
func (d *decoder) event() (e event.Event, bad, syn *problem.Problem) {
	ec := &event.EventContextV1{}
	var (
		seen, set uint16 // members seen; members with a non-null value
		specBad   *problem.Problem
		data      value
		b64       []byte
		dctJSON   = true // [json] 3.1.1: no datacontenttype means application/json
		nulls     int    // extensions set to null, dropped at the end
	)
	d.pos++ // '{'
	d.depth++
	defer func() { d.depth-- }()
	d.ws()
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			if d.peek() != '"' {
				return e, nil, d.errChar(d.peek(), "looking for beginning of object key string")
			}
			kstart := d.pos
			escaped, p := d.skipString()
			if p != nil {
				return e, nil, p
			}
			raw, nameOK := d.buf[kstart+1:d.pos-1], true
			if escaped {
				raw, nameOK = unescape(raw)
			}
			name, bit := attribute(raw)
			d.ws()
			if d.peek() != ':' {
				return e, nil, d.errChar(d.peek(), "after object key")
			}
			d.pos++
			d.ws()
			if d.eof() {
				return e, nil, d.errEOF()
			}
			// [spec]: "Each context attribute MUST only appear at most once".
			dup := seen&bit != 0
			if bit == 0 && ec.Extensions != nil {
				_, dup = ec.Extensions[name]
			}
			seen |= bit
			switch {
			case name == "specversion":
				// Checked even after another problem: a wrong version explains all.
				v, p := d.readValue()
				if p != nil {
					return e, nil, p
				}
				if specBad == nil {
					switch {
					case dup:
						specBad = duplicate(name)
					case v.kind == 'n':
					case v.kind != '"':
						specBad = wrongType(name, "a string", v.kind)
					case v.str != event.CloudEventsVersionV1:
						specBad = badSpecversion(v.str)
					default:
						set |= bit
					}
				}
			case bad != nil:
				if p := d.skipValue(); p != nil {
					return e, nil, p
				}
			case !nameOK:
				bad = invalid(clip(name), "attribute name %q holds an unpaired UTF-16 surrogate escape", clip(name))
				if p := d.skipValue(); p != nil {
					return e, nil, p
				}
			case dup:
				bad = duplicate(name)
				if p := d.skipValue(); p != nil {
					return e, nil, p
				}
			case bit == attrData:
				// Kept as written; decoded only if datacontenttype says it is text.
				data.kind, data.raw = d.peek(), d.buf[d.pos:]
				if p := d.skipValue(); p != nil {
					return e, nil, p
				}
				data.raw = data.raw[:len(data.raw)-(len(d.buf)-d.pos)]
				set |= bit
			default:
				v, p := d.readValue()
				if p != nil {
					return e, nil, p
				}
				if v.kind == 'n' {
					// [json] 2.2: null "MUST be treated as the equivalent of unset".
					if bit == 0 {
						if bad = checkExtensionName(name); bad != nil {
							break
						}
						if ec.Extensions == nil {
							ec.Extensions = make(map[string]any, 2)
						}
						ec.Extensions[name] = nil // remembered only to catch duplicates
						nulls++
					}
					break
				}
				set |= bit
				if bit == 0 {
					bad = setExtension(ec, name, v)
					break
				}
				if v.kind != '"' {
					bad = wrongType(name, "a string", v.kind)
					break
				}
				if !v.strOK {
					bad = invalid(name, "attribute %q holds an unpaired UTF-16 surrogate escape", name)
					break
				}
				switch bit {
				case attrDataBase64:
					b64, bad = decodeBase64(v.str)
				case attrDataContentType:
					mt, dct, p := checkMediaType(name, v.str)
					bad, dctJSON, ec.DataContentType = p, p == nil && isJSONMedia(mt), &dct
				default:
					bad = setAttribute(ec, bit, name, v.str)
				}
			}
			d.ws()
			switch c := d.peek(); c {
			case ',':
				d.pos++
				d.ws()
				continue
			case '}':
				d.pos++
			default:
				return e, nil, d.errChar(c, "after object key:value pair")
			}
			break
		}
	}

	switch {
	case specBad != nil:
		return e, specBad, nil
	case set&attrSpecversion == 0:
		return e, required("specversion"), nil
	case bad != nil:
		return e, bad, nil
	case set&attrID == 0:
		return e, required("id"), nil
	case set&attrSource == 0:
		return e, required("source"), nil
	case set&attrType == 0:
		return e, required("type"), nil
	case seen&attrData != 0 && seen&attrDataBase64 != 0:
		// [json] 3.1.1: "the presence of the data and data_base64 members is mutually exclusive".
		return e, invalid("data_base64", "an event may carry data or data_base64, not both"), nil
	}
	if nulls > 0 {
		for k, v := range ec.Extensions {
			if v == nil {
				delete(ec.Extensions, k)
			}
		}
		if len(ec.Extensions) == 0 {
			ec.Extensions = nil
		}
	}
	e.Context = ec
	switch {
	case b64 != nil:
		e.DataEncoded, e.DataBase64 = b64, true
	case set&attrData == 0:
	case dctJSON:
		// [json] 3.1.2: JSON data is a JSON value; keep it exactly as written.
		e.DataEncoded = data.raw
	case data.kind == 'n':
		// A null with a non-JSON datacontenttype: no payload.
	case data.kind != '"':
		// [json] 3.1.2: with a non-JSON datacontenttype "An implementation MAY fail
		// to deserialize the event if the data member is not a string".
		return e, invalid("data", "data must be a JSON string when datacontenttype %q is not JSON, got %s",
			clip(*ec.DataContentType), kindName(data.kind)), nil
	default:
		b, ok := unescape(data.raw[1 : len(data.raw)-1])
		if !ok {
			return e, invalid("data", "data holds an unpaired UTF-16 surrogate escape, which has no UTF-8 encoding"), nil
		}
		e.DataEncoded = b
	}
	return e, nil, nil
}

// setAttribute checks and stores a string-typed context attribute.
func setAttribute(ec *event.EventContextV1, bit uint16, name, s string) *problem.Problem {
	switch bit {
	case attrID:
		ec.ID = s
		return checkNonEmpty(name, s)
	case attrType:
		ec.Type = s
		return checkNonEmpty(name, s)
	case attrSubject:
		ec.Subject = &s
		return checkNonEmpty(name, s)
	case attrSource:
		u, p := parseURIRef(name, s, false)
		if p == nil {
			ec.Source = types.URIRef{URL: keepText(u, s)}
		}
		return p
	case attrDataSchema:
		u, p := parseURIRef(name, s, true)
		if p == nil {
			ec.DataSchema = &types.URI{URL: keepText(u, s)}
		}
		return p
	case attrTime:
		t, p := parseTime(name, s)
		if p == nil {
			ec.Time = &types.Timestamp{Time: t}
		}
		return p
	}
	return nil
}

// setExtension checks and stores one extension attribute read from JSON.
func setExtension(ec *event.EventContextV1, name string, v value) *problem.Problem {
	if p := checkExtensionName(name); p != nil {
		return p
	}
	var val any
	switch v.kind {
	case '"':
		if !v.strOK {
			return invalid(name, "extension attribute %q holds an unpaired UTF-16 surrogate escape", name)
		}
		if p := checkChars(name, v.str); p != nil {
			return p
		}
		val = v.str
	case 't', 'f':
		val = v.kind == 't'
	case '-':
		// [json] 2.2: Integer is a JSON number "only the integer component optionally
		// prefixed with a minus sign"; [spec] Type System: 32-bit range.
		n, err := strconv.ParseInt(string(v.raw), 10, 32)
		if !v.isInt || err != nil {
			return invalid(name, "extension attribute %q must be an integer from -2147483648 to 2147483647, got %s",
				name, clip(string(v.raw)))
		}
		val = int32(n)
	default:
		return wrongType(name, "a string, integer or boolean", v.kind)
	}
	if ec.Extensions == nil {
		ec.Extensions = make(map[string]any, 2)
	}
	ec.Extensions[name] = val
	return nil
}

func decodeBase64(s string) ([]byte, *problem.Problem) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid("data_base64", "data_base64 must be base64 (RFC 4648): %v", err)
	}
	if b == nil {
		b = []byte{} // present but empty is still data
	}
	return b, nil
}

// keepText returns u, or when u would not print as s (url.URL lower-cases the scheme
// and re-escapes some parts), a URL that prints s unchanged: source is half of the
// (source, id) identity, so it must reach Kafka byte for byte as sent.
func keepText(u *url.URL, s string) url.URL {
	if u.String() == s {
		return *u
	}
	return url.URL{Opaque: s}
}

// parseBinary reads one event in binary content mode ([http] 3.1): attributes in
// ce- headers, data in the body with its own Content-Type.
func parseBinary(r *http.Request, ct string, lim Limits) ([]event.Event, *problem.Problem) {
	type header struct{ name, value string }
	var (
		hs          []header
		headerBytes = len(ct)
		hasSpec     bool
	)
	for k, vs := range r.Header {
		if len(k) < 3 || k[0]|0x20 != 'c' || k[1]|0x20 != 'e' || k[2] != '-' {
			continue
		}
		name := strings.ToLower(k[3:])
		hasSpec = hasSpec || name == "specversion"
		for _, v := range vs {
			hs = append(hs, header{name, v})
			headerBytes += len(k) + len(v)
		}
	}
	if !hasSpec {
		return nil, missingSpecversion(r, ct)
	}
	if headerBytes > lim.MaxEventBytes {
		return nil, eventTooLarge(lim.MaxEventBytes, -1)
	}
	// specversion first (it decides how the rest reads), then by name, so the
	// problem reported does not depend on map order.
	slices.SortFunc(hs, func(a, b header) int {
		if (a.name == "specversion") != (b.name == "specversion") {
			if a.name == "specversion" {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	ec := &event.EventContextV1{}
	var set uint16
	for i, h := range hs {
		hname := "ce-" + h.name
		if i > 0 && hs[i-1].name == h.name {
			return nil, invalid(hname, "header %s appears more than once", hname)
		}
		s, p := decodeHeaderValue(hname, h.value)
		if p != nil {
			return nil, p
		}
		_, bit := attribute([]byte(h.name))
		set |= bit
		switch bit {
		case 0:
			if p := checkExtensionName(h.name); p != nil {
				return nil, onHeader(p, hname)
			}
			if p := checkChars(h.name, s); p != nil {
				return nil, onHeader(p, hname)
			}
			if ec.Extensions == nil {
				ec.Extensions = make(map[string]any, len(hs))
			}
			ec.Extensions[h.name] = s
		case attrSpecversion:
			if s != event.CloudEventsVersionV1 {
				return nil, onHeader(badSpecversion(s), hname)
			}
		case attrDataContentType:
			// [http] 3.1.1: "a ce-datacontenttype HTTP header MUST NOT also be present".
			return nil, invalid(hname, "binary mode carries datacontenttype in Content-Type; remove the %s header", hname)
		case attrData, attrDataBase64:
			return nil, invalid(hname, "%s is not an attribute: in binary mode the data is the request body", hname)
		default:
			if p := setAttribute(ec, bit, h.name, s); p != nil {
				return nil, onHeader(p, hname)
			}
		}
	}
	for _, req := range []struct {
		name string
		bit  uint16
	}{{"id", attrID}, {"source", attrSource}, {"type", attrType}} {
		if set&req.bit == 0 {
			return nil, onHeader(required(req.name), "ce-"+req.name)
		}
	}
	dataJSON := false
	if ct != "" {
		mt, dct, p := checkMediaType("datacontenttype", ct)
		if p != nil {
			return nil, onHeader(p, "Content-Type")
		}
		ec.DataContentType = &dct
		dataJSON = isJSONMedia(mt)
	}
	// The body is the event's data: read no more than the event may hold.
	max := int64(lim.MaxEventBytes - headerBytes)
	what, limit := "event (body and ce- headers)", int64(lim.MaxEventBytes)
	if lim.MaxBodyBytes < max {
		max, what, limit = lim.MaxBodyBytes, "request body", lim.MaxBodyBytes
	}
	body, p := readBody(r, max, limit, what)
	if p != nil {
		return nil, p
	}
	e := event.Event{Context: ec}
	if len(body) > 0 {
		e.DataEncoded = body
		// Data declared as JSON must be JSON: it is written as a JSON value in the
		// structured format ([json] 3.1.1) and consumers decode it. Other data is
		// opaque bytes, carried as data_base64 in JSON so every byte survives.
		e.DataBase64 = !dataJSON
		if dataJSON {
			if !utf8.Valid(body) {
				return nil, onHeader(checkUTF8(body), "data")
			}
			d := decoder{buf: body}
			p := d.skipValue()
			if p == nil {
				p = d.end()
			}
			if p != nil {
				p.Detail = fmt.Sprintf("Content-Type %q declares JSON data, but the body is not JSON: %s", clip(ct), p.Detail)
				return nil, p.WithAttribute("data")
			}
		}
	}
	return []event.Event{e}, nil
}

// missingSpecversion explains a request that is in no content mode, with a hint when
// its body looks like a structured event sent with the wrong Content-Type.
func missingSpecversion(r *http.Request, ct string) *problem.Problem {
	detail := "binary mode needs a ce-specversion header: send the attributes as ce- headers, " +
		"or the whole event with Content-Type " + mediaStructured
	if r.Body != nil && r.Body != http.NoBody {
		head, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		head = trimJSONSpace(head)
		if len(head) > 0 && (head[0] == '{' || head[0] == '[') && bytes.Contains(head, []byte(`"specversion"`)) {
			detail = fmt.Sprintf("the body looks like a structured CloudEvent, but Content-Type is %q and there is no "+
				"ce-specversion header: send it with Content-Type %s (or %s for an array), or use ce- headers (binary mode)",
				clip(ct), mediaStructured, mediaBatch)
		}
	}
	return problem.New(http.StatusBadRequest, problem.TypeInvalidEvent, detail).WithAttribute("ce-specversion")
}

// decodeHeaderValue applies [http] 3.1.3.2: unescape a double-quoted string (RFC 7230
// 3.2.6), then one round of percent-decoding; the result must be UTF-8.
func decodeHeaderValue(hname, v string) (string, *problem.Problem) {
	if len(v) > 0 && v[0] == '"' {
		var b strings.Builder
		i := 1
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' {
				i++
				if i == len(v) {
					break
				}
			}
			b.WriteByte(v[i])
		}
		if i != len(v)-1 {
			return "", invalid(hname, "header %s has a malformed quoted string", hname)
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') >= 0 {
		b := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			if v[i] != '%' {
				b = append(b, v[i])
				continue
			}
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return "", invalid(hname, "header %s has an invalid percent-encoding at position %d", hname, i)
			}
			hi, _ := unhex(v[i+1])
			lo, _ := unhex(v[i+2])
			b = append(b, hi<<4|lo)
			i += 2
		}
		v = string(b)
	}
	if !utf8.ValidString(v) {
		return "", invalid(hname, "header %s is not UTF-8 once percent-decoded", hname)
	}
	return v, nil
}

// onHeader makes p name the binary-mode header at fault.
func onHeader(p *problem.Problem, hname string) *problem.Problem {
	p.Attribute = strings.ToValidUTF8(hname, "\uFFFD")
	return p
}

// Validate checks one event beyond what parsing checks: the CloudEvents 1.0 rules
// for each context attribute's value, whatever built the event. ParseRequest applies
// the same checks as it reads, so what it returns always passes. Data is not
// inspected; its JSON syntax is the parser's job.
func Validate(e *event.Event) *problem.Problem {
	if e == nil || e.Context == nil {
		return problem.New(http.StatusBadRequest, problem.TypeInvalidEvent, "the event has no context attributes")
	}
	if sv := e.SpecVersion(); sv != event.CloudEventsVersionV1 {
		return badSpecversion(sv)
	}
	ec, ok := e.Context.(*event.EventContextV1)
	if !ok {
		return badSpecversion(e.SpecVersion())
	}
	if p := checkNonEmpty("id", ec.ID); p != nil {
		return p
	}
	src := ec.Source.String()
	if src == "" {
		return required("source")
	}
	if _, p := parseURIRef("source", src, false); p != nil {
		return p
	}
	if p := checkNonEmpty("type", ec.Type); p != nil {
		return p
	}
	if ec.Subject != nil {
		if p := checkNonEmpty("subject", *ec.Subject); p != nil {
			return p
		}
	}
	if ec.Time != nil {
		if y := ec.Time.UTC().Year(); y < 0 || y > 9999 {
			return invalid("time", "attribute \"time\" must fall in years 0000 to 9999 (UTC), got %d", y)
		}
	}
	if ec.DataContentType != nil {
		if _, _, p := checkMediaType("datacontenttype", *ec.DataContentType); p != nil {
			return p
		}
	}
	if ec.DataSchema != nil {
		if _, p := parseURIRef("dataschema", ec.DataSchema.String(), true); p != nil {
			return p
		}
	}
	// Report the smallest bad name, so the answer does not depend on map order.
	var worst string
	var wp *problem.Problem
	for name, v := range ec.Extensions {
		if wp != nil && name > worst {
			continue
		}
		if p := checkExtension(name, v); p != nil {
			worst, wp = name, p
		}
	}
	return wp
}

func checkExtension(name string, v any) *problem.Problem {
	if p := checkExtensionName(name); p != nil {
		return p
	}
	switch v := v.(type) {
	case string:
		return checkChars(name, v)
	case int32, bool, []byte, types.URI, types.URIRef, types.Timestamp:
		// The SDK's canonical forms of the other CloudEvents types.
		return nil
	default:
		return invalid(name, "extension attribute %q must be a string, integer or boolean, got %T", name, v)
	}
}

// reserved are names an extension may not take: the context attributes of
// CloudEvents 1.0, and data ([spec]: "attributes MUST NOT have the name data").
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true,
}

// checkExtensionName applies [spec] "Attribute Naming Convention": lower-case ASCII
// letters and digits; tide also enforces the "SHOULD NOT exceed 20 characters".
func checkExtensionName(name string) *problem.Problem {
	ok := len(name) > 0 && len(name) <= 20
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
	}
	if !ok {
		return invalid(clip(name), "extension attribute name %q is invalid: names are 1 to 20 characters, "+
			"lower-case letters a-z and digits 0-9 only", clip(name))
	}
	if reserved[name] {
		return invalid(name, "attribute name %q is reserved and cannot be an extension", name)
	}
	return nil
}

func checkNonEmpty(name, s string) *problem.Problem {
	if s == "" {
		return invalid(name, "attribute %q must be a non-empty string", name)
	}
	return checkChars(name, s)
}

// checkChars applies [spec] Type System, String: no control characters
// (U+0000-U+001F, U+007F-U+009F), no noncharacters, no unpaired surrogates.
func checkChars(name, s string) *problem.Problem {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		var why string
		switch {
		case r == utf8.RuneError && n == 1:
			why = "invalid UTF-8"
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			why = fmt.Sprintf("control character %U", r)
		case (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe:
			why = fmt.Sprintf("noncharacter %U", r)
		}
		if why != "" {
			return invalid(name, "attribute %q contains %s at byte %d, which CloudEvents strings may not hold", name, why, i)
		}
		i += n
	}
	return nil
}

// uriChar marks the bytes RFC 3986 allows anywhere in a URI-reference besides '%'
// (which must start an escape) and '#' (which may appear once).
var uriChar = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?[]@!$&'()*+,;=") {
		t[c] = true
	}
	return t
}()

// parseURIRef checks that s is an RFC 3986 URI-reference ([spec]: source is a
// URI-reference, dataschema a URI) and parses it. net/url alone is too lenient: it
// takes spaces, control characters and non-ASCII, so the characters are checked first.
func parseURIRef(name, s string, absolute bool) (*url.URL, *problem.Problem) {
	what := "a URI-reference (RFC 3986)"
	if absolute {
		what = "an absolute URI (RFC 3986)"
	}
	fail := func(why string) *problem.Problem {
		return invalid(name, "attribute %q must be %s, got %q: %s", name, what, clip(s), why)
	}
	if s == "" {
		return nil, invalid(name, "attribute %q must be a non-empty string", name)
	}
	hashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case uriChar[c]:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return nil, fail(fmt.Sprintf("bad percent-escape at byte %d", i))
			}
		case c == '#' && hashes == 0:
			hashes++
		case c == '#':
			return nil, fail(fmt.Sprintf("second '#' at byte %d", i))
		case c == ' ':
			return nil, fail(fmt.Sprintf("space at byte %d (percent-encode it as %%20)", i))
		case c >= 0x80:
			return nil, fail(fmt.Sprintf("non-ASCII byte at %d (percent-encode it)", i))
		default:
			return nil, fail(fmt.Sprintf("character %s at byte %d is not allowed in a URI", describeByte(c), i))
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fail(err.Error())
	}
	if absolute && u.Scheme == "" {
		return nil, fail("it has no scheme")
	}
	return u, nil
}

// parseTime applies [spec] time: "MUST adhere to the format specified in RFC 3339".
// time.Parse alone also takes a comma before the fraction and offsets of +24:00, and
// refuses the lower-case 't' and 'z' that RFC 3339 5.6 allows, so the shape is
// checked here first.
func parseTime(name, s string) (time.Time, *problem.Problem) {
	fail := func() (time.Time, *problem.Problem) {
		return time.Time{}, invalid(name, "attribute %q must be an RFC 3339 timestamp, got %q", name, clip(s))
	}
	if !isRFC3339(s) {
		return fail()
	}
	if s[10] == 't' || s[len(s)-1] == 'z' {
		s = strings.ToUpper(s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fail()
	}
	// The SDK writes times in UTC; a year outside 0000-9999 there has no RFC 3339 form.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, invalid(name, "attribute %q must fall in years 0000 to 9999 (UTC), got %q", name, clip(s))
	}
	return t, nil
}

// isRFC3339 matches date-time of RFC 3339 section 5.6:
// YYYY-MM-DD T HH:MM:SS [.frac] (Z | +HH:MM | -HH:MM).
func isRFC3339(s string) bool {
	digits := func(i, n int) bool {
		if i+n > len(s) {
			return false
		}
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2) ||
		(s[10] != 'T' && s[10] != 't') || !digits(11, 2) || s[13] != ':' || !digits(14, 2) || s[16] != ':' ||
		!digits(17, 2) {
		return false
	}
	i := 19
	if s[i] == '.' {
		i++
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	switch {
	case i == len(s)-1 && (s[i] == 'Z' || s[i] == 'z'):
		return true
	case i == len(s)-6 && (s[i] == '+' || s[i] == '-') && digits(i+1, 2) && s[i+3] == ':' && digits(i+4, 2):
		return s[i+1:i+3] <= "23" && s[i+4:i+6] <= "59"
	}
	return false
}

// checkMediaType applies [spec] datacontenttype: "MUST adhere to the format specified
// in RFC 2046". It returns the lower-cased type/subtype, and s with that part
// lower-cased and trimmed: the case carries no meaning (RFC 2045 5.1), but sdk-go's
// reader compares it as written and would then misread JSON data that its own writer
// put as JSON.
func checkMediaType(name, s string) (mt, canonical string, p *problem.Problem) {
	if s == "application/json" {
		return s, s, nil
	}
	if p := checkChars(name, s); p != nil {
		return "", "", p
	}
	mt, _, err := mime.ParseMediaType(s)
	if err != nil || !strings.Contains(mt, "/") {
		return "", "", invalid(name, "attribute %q must be a media type such as application/json (RFC 2046), got %q", name, clip(s))
	}
	i := strings.IndexByte(s, ';')
	if i < 0 {
		i = len(s)
	}
	if s[:i] != mt {
		s = mt + s[i:]
	}
	return mt, s, nil
}

// isJSONMedia applies [json] 3.1.1: JSON content is "*/json or */*+json".
func isJSONMedia(mt string) bool {
	sub := mt[strings.IndexByte(mt, '/')+1:]
	return sub == "json" || strings.HasSuffix(sub, "+json")
}

// invalid reports a broken rule. Names and values come from the client, so the text
// is made valid UTF-8 before it is JSON-encoded into the answer.
func invalid(attr, format string, args ...any) *problem.Problem {
	p := problem.Newf(http.StatusBadRequest, problem.TypeInvalidEvent, format, args...)
	p.Detail = strings.ToValidUTF8(p.Detail, "\uFFFD")
	return p.WithAttribute(strings.ToValidUTF8(attr, "\uFFFD"))
}

func required(name string) *problem.Problem {
	return invalid(name, "attribute %q is required", name)
}

func duplicate(name string) *problem.Problem {
	return invalid(clip(name), "attribute %q appears more than once", clip(name))
}

func wrongType(name, want string, kind byte) *problem.Problem {
	return invalid(name, "attribute %q must be %s, got %s", name, want, kindName(kind))
}

func badSpecversion(got string) *problem.Problem {
	return invalid("specversion", "attribute \"specversion\" must be \"1.0\" (tide accepts only CloudEvents 1.0), got %q", clip(got))
}

// clip shortens s for a problem detail, so a huge bad value is not echoed back.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
