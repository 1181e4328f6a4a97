package ingest

// Attribute rules of CloudEvents 1.0 shared by every content mode.

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"function/shared/problem"
)

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
