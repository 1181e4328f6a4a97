// Package problem writes RFC 9457 problem details (application/problem+json), the
// error body of every tide HTTP API.
package problem

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the media type of a problem details body.
const ContentType = "application/problem+json"

// Type URIs of the problems tide reports. Clients may switch on them; the titles are
// for people.
const (
	TypeMalformed            = "https://tide.dev/problems/malformed-request"
	TypeInvalidEvent         = "https://tide.dev/problems/invalid-event"
	TypeInvalidBatch         = "https://tide.dev/problems/invalid-batch"
	TypeTooLarge             = "https://tide.dev/problems/too-large"
	TypeUnsupportedMediaType = "https://tide.dev/problems/unsupported-media-type"
	TypeUnavailable          = "https://tide.dev/problems/unavailable"
	TypeRateLimited          = "https://tide.dev/problems/rate-limited"
	TypeUnauthorized         = "https://tide.dev/problems/unauthorized"
	TypeForbidden            = "https://tide.dev/problems/forbidden"
	TypeNotFound             = "https://tide.dev/problems/not-found"
	TypeMethodNotAllowed     = "https://tide.dev/problems/method-not-allowed"
	TypeBadParameter         = "https://tide.dev/problems/bad-parameter"
	TypeRequestTimeout       = "https://tide.dev/problems/request-timeout"
)

// Problem is one problem details object. It is also an error, so parsing code can
// return it and the HTTP layer can write it unchanged.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Index is the position of the offending event in a batch request.
	Index *int `json:"index,omitempty"`
	// Attribute names the CloudEvents attribute or header at fault.
	Attribute string `json:"attribute,omitempty"`
	// Limit is the limit that was exceeded (bytes or events), for 413 answers.
	Limit int64 `json:"limit,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string {
	s := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	if p.Index != nil {
		s += fmt.Sprintf(" (event %d)", *p.Index)
	}
	return s
}

// New makes a problem of the given type and status; detail says what is wrong and where.
func New(status int, typ, detail string) *Problem {
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(status int, typ, format string, args ...any) *Problem {
	return New(status, typ, fmt.Sprintf(format, args...))
}

// AtIndex returns a copy of p that names the batch position i.
func (p *Problem) AtIndex(i int) *Problem {
	c := *p
	c.Index = &i
	return &c
}

// WithAttribute returns p naming the attribute at fault.
func (p *Problem) WithAttribute(name string) *Problem {
	p.Attribute = name
	return p
}

// Write sends p as the response.
func Write(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if p.RetryAfter > 0 {
		secs := int64((p.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
