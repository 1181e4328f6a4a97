package ingest

// Structured-mode events: JSON members to CloudEvents attributes and extensions.

import (
	"encoding/base64"
	"net/url"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"function/shared/problem"
)

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
		// A copy of its own: taking s's address would move s to the heap on every
		// call, whichever attribute it is (an allocation per attribute per event).
		sub := s
		ec.Subject = &sub
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
