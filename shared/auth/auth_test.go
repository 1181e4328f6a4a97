package auth

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "https://github.com/a/b", true},
		{"https://github.com/a/*", "https://github.com/a/b", true},
		{"https://github.com/a/*", "https://github.com/a/b/c", true},
		{"https://github.com/a/*", "https://github.com/ab", false},
		{"https://github.com/a/*", "https://github.com/a/", true},
		{"/demo", "/demo", true},
		{"/demo", "/demo2", false},
		{"/demo", "/dem", false},
		{"*/issues", "https://x/y/issues", true},
		{"*/issues", "https://x/y/issues/1", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a**", "a", true},
		{"", "", true},
		{"", "a", false},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestParseAndAuthenticate(t *testing.T) {
	keyA, hashA, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	keyB, hashB, _ := Generate()
	if !strings.HasPrefix(keyA, KeyPrefix) || len(hashA) != 64 || Hash(keyA) != hashA || keyA == keyB {
		t.Fatalf("Generate: key %q hash %q", keyA, hashA)
	}
	r, err := Parse("# comment\n" + strings.ToUpper(hashA) + ":https://github.com/a/*, " + hashB + ":/demo\n" + hashA + ":/other\n")
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 {
		t.Fatalf("%d keys, want 2 (a repeated hash adds a pattern)", r.Len())
	}
	a := r.Authenticate(keyA)
	if a == nil || a.ID != hashA[:12] {
		t.Fatalf("Authenticate(keyA) = %+v, want the key with ID %s", a, hashA[:12])
	}
	for src, want := range map[string]bool{"https://github.com/a/x": true, "/other": true, "/demo": false} {
		if a.Allows(src) != want {
			t.Errorf("key A allows %q = %v, want %v", src, !want, want)
		}
	}
	if b := r.Authenticate(keyB); b == nil || !b.Allows("/demo") || b.Allows("/demo/x") {
		t.Fatalf("key B: %+v", b)
	}
	for _, bad := range []string{"", hashA, keyA + "x", "tide_unknown"} {
		if k := r.Authenticate(bad); k != nil {
			t.Errorf("Authenticate(%q) = %s, want no key (the hash itself is not a key)", bad, k.ID)
		}
	}
}

func TestParseErrorsNeverEchoTheValue(t *testing.T) {
	secret := "tide_s3cr3tKEYvalueThatMustNotLeak"
	for _, spec := range []string{
		secret,                     // a key pasted without hash or pattern
		secret + ":/demo",          // a key instead of its hash
		Hash(secret) + ":",         // no pattern
		"abcd:/demo",               // short hash
		Hash(secret)[:63] + "g:/x", // not hex
	} {
		_, err := Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q): no error", spec)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("Parse error echoes the value: %v", err)
		}
	}
}

func TestParseFileAndMerge(t *testing.T) {
	k1, h1, _ := Generate()
	k2, h2, _ := Generate()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(h1+":/a\n\n# x\n"+h2+":/b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := Parse(h1 + ":/c")
	all := env.Merge(f)
	if all.Len() != 2 || !all.Authenticate(k1).Allows("/c") || !all.Authenticate(k1).Allows("/a") || !all.Authenticate(k2).Allows("/b") {
		t.Fatalf("merged keyring wrong: %d keys", all.Len())
	}
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		headers map[string]string
		want    string
		ok      bool
	}{
		{map[string]string{"Authorization": "Bearer abc"}, "abc", true},
		{map[string]string{"Authorization": "bearer  abc "}, "abc", true},
		{map[string]string{"X-API-Key": "xyz"}, "xyz", true},
		{map[string]string{"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": "xyz"}, "xyz", true},
		{map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, "", false},
		{map[string]string{"Authorization": "Bearer "}, "", false},
		{nil, "", false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		got, ok := FromRequest(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FromRequest(%v) = %q, %v; want %q, %v", tc.headers, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMissingReason: a 401 says why no key was found, naming an Authorization scheme
// only when it is a known one and never echoing what could be a key.
func TestMissingReason(t *testing.T) {
	key, _, _ := Generate()
	for _, tc := range []struct {
		authorization string
		want          string
	}{
		{"", "no API key: send it as " + Accepted},
		{"Basic dXNlcjprZXk=", "the Authorization scheme Basic is not accepted (curl -u sends it): send the API key as " + Accepted},
		{"digest username=\"u\"", "the Authorization scheme Digest is not accepted"},
		{"Bearer ", "the Authorization header has the Bearer scheme but no key"},
		{key, "the Authorization header does not use an accepted scheme"},
		{key + " more", "the Authorization header does not use an accepted scheme"},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		if tc.authorization != "" {
			r.Header.Set("Authorization", tc.authorization)
		}
		got := MissingReason(r)
		if !strings.HasPrefix(got, tc.want) || !strings.Contains(got, "Bearer KEY") || !strings.Contains(got, "X-API-Key") {
			t.Errorf("MissingReason(Authorization: %q) = %q, want it to start with %q and name both ways", tc.authorization, got, tc.want)
		}
		if strings.Contains(got, key[:10]) || strings.Contains(got, "dXNlcjprZXk") {
			t.Errorf("MissingReason echoes the credentials: %q", got)
		}
	}
}
