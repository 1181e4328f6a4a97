package ratelimit

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of draft-ietf-httpapi-ratelimit-headers-06 ("RateLimit Fields for
// HTTP", December 2022). Each value is a Structured Field: an Integer, or for the
// policy a List of Integers with a "w" (window, seconds) parameter.
const (
	HeaderLimit     = "RateLimit-Limit"
	HeaderRemaining = "RateLimit-Remaining"
	HeaderReset     = "RateLimit-Reset"
	HeaderPolicy    = "RateLimit-Policy"
)

// Headers sets the RateLimit-* fields of d on h: the quota (Burst events) over the
// policy's window (Burst/Rate seconds, so the policy is Rate events per second),
// what is left of it now, and in how many seconds it is whole again. Retry-After,
// for a refused request, is the caller's (it goes with the 429 body).
func Headers(h http.Header, d Decision) {
	if d.Limit.Burst <= 0 {
		return
	}
	h.Set(HeaderLimit, strconv.Itoa(d.Limit.Burst))
	h.Set(HeaderRemaining, strconv.Itoa(max(d.Remaining, 0)))
	h.Set(HeaderReset, strconv.Itoa(Seconds(d.ResetAfter)))
	h.Set(HeaderPolicy, fmt.Sprintf("%d;w=%d", d.Limit.Burst, d.Limit.Window()))
}

// Seconds rounds d up to whole seconds, never below 0: the unit of Retry-After and
// RateLimit-Reset.
func Seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// ParseOverrides reads per-key limits: comma-separated KEY=RATE/BURST entries, where
// KEY is a client key as the caller builds it (the last "=" of an entry separates
// it, so a key may contain "=").
func ParseOverrides(s string) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndex(item, "=")
		if i <= 0 {
			return nil, fmt.Errorf("%q: want KEY=RATE/BURST", item)
		}
		key, spec := item[:i], item[i+1:]
		r, b, ok := strings.Cut(spec, "/")
		if !ok {
			return nil, fmt.Errorf("%q: want KEY=RATE/BURST", item)
		}
		rate, err1 := strconv.Atoi(r)
		burst, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || rate < 1 || burst < 1 {
			return nil, fmt.Errorf("%q: RATE and BURST must be whole numbers of at least 1", item)
		}
		out[key] = Limit{Rate: rate, Burst: burst}
	}
	return out, nil
}
