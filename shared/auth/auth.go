// Package auth checks the API keys clients present to ingest.
//
// Keys are never stored: the configuration holds the hex SHA-256 of each key with
// the event sources it may write (patterns where '*' matches any run of
// characters). A presented key is hashed and compared with every stored hash in
// constant time, so neither the answer's timing nor a log line reveals a key. A key
// is named by the first 12 hex digits of its hash (its ID), which is safe to log and
// to use as a rate-limit key: it cannot be turned back into the key.
package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// KeyPrefix starts every key Generate makes, so a leaked key is recognisable (secret
// scanners, logs) for what it is.
const KeyPrefix = "tide_"

// Key is one API key as configured: its hash and the sources it may write.
type Key struct {
	// ID is the first 12 hex digits of the hash: the name of the key in logs,
	// metrics and rate limits.
	ID       string
	hash     [sha256.Size]byte
	patterns []string
}

// Patterns are the source patterns the key may write.
func (k *Key) Patterns() []string { return append([]string(nil), k.patterns...) }

// Allows reports whether the key may write events whose source is source.
func (k *Key) Allows(source string) bool {
	for _, p := range k.patterns {
		if Match(p, source) {
			return true
		}
	}
	return false
}

// Keyring is the set of configured keys.
type Keyring struct {
	keys []*Key
}

// Len is the number of distinct keys.
func (r *Keyring) Len() int { return len(r.keys) }

// Parse reads keys from entries separated by commas or newlines, each
// SHA256HEX:SOURCE_PATTERN; a hash given several times gets every pattern. Blank
// entries and lines starting with '#' are skipped.
func Parse(spec string) (*Keyring, error) {
	r := &Keyring{}
	byHash := map[[sha256.Size]byte]*Key{}
	sc := bufio.NewScanner(strings.NewReader(spec))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		for n, entry := range strings.Split(text, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			// Errors name the entry by position, never by content: a key pasted
			// here by mistake must not reach a log.
			h, pattern, ok := strings.Cut(entry, ":")
			if !ok || pattern == "" {
				return nil, fmt.Errorf("line %d, entry %d: want SHA256HEX:SOURCE_PATTERN", line, n+1)
			}
			raw, err := hex.DecodeString(strings.ToLower(h))
			if err != nil || len(raw) != sha256.Size {
				return nil, fmt.Errorf("line %d, entry %d: the %d characters before ':' are not a hex SHA-256 (64 hex digits); store the hash of a key, not the key (tide apikey prints it)", line, n+1, len(h))
			}
			var sum [sha256.Size]byte
			copy(sum[:], raw)
			k := byHash[sum]
			if k == nil {
				k = &Key{ID: hex.EncodeToString(sum[:6]), hash: sum}
				byHash[sum] = k
				r.keys = append(r.keys, k)
			}
			k.patterns = append(k.patterns, pattern)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseFile is Parse of a file's content (for example a mounted Kubernetes Secret).
func ParseFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read API keys: %w", err)
	}
	r, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("API keys file %s: %w", path, err)
	}
	return r, nil
}

// Merge returns a keyring with the keys of r and o (patterns of a hash in both are
// joined).
func (r *Keyring) Merge(o *Keyring) *Keyring {
	out := &Keyring{}
	byHash := map[[sha256.Size]byte]*Key{}
	for _, src := range []*Keyring{r, o} {
		if src == nil {
			continue
		}
		for _, k := range src.keys {
			if have := byHash[k.hash]; have != nil {
				have.patterns = append(have.patterns, k.patterns...)
				continue
			}
			c := &Key{ID: k.ID, hash: k.hash, patterns: append([]string(nil), k.patterns...)}
			byHash[k.hash] = c
			out.keys = append(out.keys, c)
		}
	}
	return out
}

// Authenticate returns the configured key whose hash is the hash of presented, or
// nil. Every stored hash is compared, each in constant time, so the time taken
// does not depend on which key matched or how much of it.
func (r *Keyring) Authenticate(presented string) *Key {
	sum := sha256.Sum256([]byte(presented))
	var found *Key
	for _, k := range r.keys {
		if subtle.ConstantTimeCompare(sum[:], k.hash[:]) == 1 {
			found = k
		}
	}
	return found
}

// FromRequest returns the key the request presents: "Authorization: Bearer KEY", or
// the X-API-Key header.
func FromRequest(r *http.Request) (string, bool) {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, token, ok := strings.Cut(a, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token), true
		}
	}
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k, true
	}
	return "", false
}

// Accepted names the ways FromRequest takes a key, for answers that refuse a request.
const Accepted = "Authorization: Bearer KEY, or the X-API-Key header"

// knownSchemes are HTTP authentication schemes (IANA's registry and a few common
// others) by lower-case name. MissingReason names a scheme only when it is one of
// these, spelled as here: whatever else precedes the first space may be a key sent
// without a scheme, and must not be echoed.
var knownSchemes = map[string]string{}

func init() {
	for _, s := range []string{"Basic", "Bearer", "Concealed", "Digest", "DPoP", "GNAP", "HOBA", "Mutual", "Negotiate",
		"NTLM", "OAuth", "PrivateToken", "SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "AWS4-HMAC-SHA256", "Token", "ApiKey"} {
		knownSchemes[strings.ToLower(s)] = s
	}
}

// MissingReason says why FromRequest found no key in r, for the 401 answer: no
// credentials at all, an Authorization scheme tide does not accept (curl -u sends
// Basic), or a Bearer scheme without a token. It never repeats the header's value.
func MissingReason(r *http.Request) string {
	a := strings.TrimSpace(r.Header.Get("Authorization"))
	if a == "" {
		return "no API key: send it as " + Accepted
	}
	scheme, token, _ := strings.Cut(a, " ")
	name, known := knownSchemes[strings.ToLower(scheme)]
	switch {
	case name == "Bearer" && strings.TrimSpace(token) == "":
		return "the Authorization header has the Bearer scheme but no key: send Authorization: Bearer KEY, or the key in the X-API-Key header"
	case name == "Basic":
		return "the Authorization scheme Basic is not accepted (curl -u sends it): send the API key as " + Accepted
	case known:
		return "the Authorization scheme " + name + " is not accepted: send the API key as " + Accepted
	default:
		return "the Authorization header does not use an accepted scheme: send the API key as " + Accepted
	}
}

// Hash is the hex SHA-256 of key: the form the configuration stores.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Generate makes a new random key (256 bits, base64url, with KeyPrefix) and its hash.
func Generate() (key, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate API key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, Hash(key), nil
}

// Match reports whether s matches pattern, where '*' matches any run of characters
// (slashes included: sources are URIs) and every other character itself.
func Match(pattern, s string) bool {
	// The classic two-pointer wildcard match: linear in len(pattern)+len(s) per
	// backtrack, O(len(pattern)×len(s)) at worst, no recursion.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
