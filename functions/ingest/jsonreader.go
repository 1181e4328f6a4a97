package ingest

// The JSON reader: one pass over the body, with problems that name byte offsets.

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"function/shared/problem"
)

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
		// The values nearly every event repeats, without an allocation each.
		switch string(raw) {
		case "1.0":
			return "1.0", true, nil
		case "application/json":
			return "application/json", true, nil
		}
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
