package ingest

// Binary mode: attributes from ce- headers, the body as the data.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/problem"
)

// parseBinary reads one event in binary content mode ([http] 3.1): attributes in
// ce- headers, data in the body with its own Content-Type.
func parseBinary(r *http.Request, ct string, lim Limits, pooled *[]byte) ([]event.Event, *problem.Problem) {
	type header struct{ name, value string }
	var (
		hs          = make([]header, 0, 8)
		headerBytes = len(ct)
		hasSpec     bool
	)
	for k, vs := range r.Header {
		if len(k) < 3 || k[0]|0x20 != 'c' || k[1]|0x20 != 'e' || k[2] != '-' {
			continue
		}
		name := lowerAttribute(k[3:])
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
		// The header's name ("ce-" + h.name) is built only for a problem, not per event.
		if i > 0 && hs[i-1].name == h.name {
			return nil, invalid("ce-"+h.name, "header %s appears more than once", "ce-"+h.name)
		}
		s, p := decodeHeaderValue(h.name, h.value)
		if p != nil {
			return nil, p
		}
		_, bit := attribute([]byte(h.name))
		set |= bit
		switch bit {
		case 0:
			if p := checkExtensionName(h.name); p != nil {
				return nil, onHeader(p, "ce-"+h.name)
			}
			if p := checkChars(h.name, s); p != nil {
				return nil, onHeader(p, "ce-"+h.name)
			}
			if ec.Extensions == nil {
				ec.Extensions = make(map[string]any, len(hs))
			}
			ec.Extensions[h.name] = s
		case attrSpecversion:
			if s != event.CloudEventsVersionV1 {
				return nil, onHeader(badSpecversion(s), "ce-"+h.name)
			}
		case attrDataContentType:
			// [http] 3.1.1: "a ce-datacontenttype HTTP header MUST NOT also be present".
			return nil, invalid("ce-"+h.name, "binary mode carries datacontenttype in Content-Type; remove the %s header", "ce-"+h.name)
		case attrData, attrDataBase64:
			return nil, invalid("ce-"+h.name, "%s is not an attribute: in binary mode the data is the request body", "ce-"+h.name)
		default:
			if p := setAttribute(ec, bit, h.name, s); p != nil {
				return nil, onHeader(p, "ce-"+h.name)
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
	body, p := readBody(r, max, limit, what, pooled)
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
// 3.2.6), then one round of percent-decoding; the result must be UTF-8. name is the
// attribute's (the header is ce-name).
func decodeHeaderValue(name, v string) (string, *problem.Problem) {
	hname := func() string { return "ce-" + name }
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
			return "", invalid(hname(), "header %s has a malformed quoted string", hname())
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
				return "", invalid(hname(), "header %s has an invalid percent-encoding at position %d", hname(), i)
			}
			hi, _ := unhex(v[i+1])
			lo, _ := unhex(v[i+2])
			b = append(b, hi<<4|lo)
			i += 2
		}
		v = string(b)
	}
	if !utf8.ValidString(v) {
		return "", invalid(hname(), "header %s is not UTF-8 once percent-decoded", hname())
	}
	return v, nil
}

// onHeader makes p name the binary-mode header at fault.
func onHeader(p *problem.Problem, hname string) *problem.Problem {
	p.Attribute = strings.ToValidUTF8(hname, "\uFFFD")
	return p
}

// lowerAttribute is the attribute name of a ce- header name without "ce-", lower-cased
// ([http] 3.1.3.1: header names are case-insensitive). net/http hands over canonical
// names (Ce-Specversion), so the attributes of nearly every event are returned
// without an allocation each.
func lowerAttribute(k string) string {
	switch k {
	case "Specversion":
		return "specversion"
	case "Id":
		return "id"
	case "Source":
		return "source"
	case "Type":
		return "type"
	case "Subject":
		return "subject"
	case "Time":
		return "time"
	case "Dataschema":
		return "dataschema"
	}
	return strings.ToLower(k)
}
