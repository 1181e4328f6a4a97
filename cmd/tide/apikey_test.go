package main

import (
	"bytes"
	"strings"
	"testing"

	"function/shared/auth"
)

// TestAPIKey: the printed entry configures a keyring that accepts the printed key
// on the given source and no other.
func TestAPIKey(t *testing.T) {
	var out, info bytes.Buffer
	if err := apiKey(nil, &out, &info, "/demo/*", false); err != nil {
		t.Fatal(err)
	}
	var key, entry string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "key:"); ok {
			key = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "entry:"); ok {
			entry = strings.TrimSpace(v)
		}
	}
	r, err := auth.Parse(entry)
	if err != nil {
		t.Fatalf("the printed entry does not parse: %v\n%s", err, out.String())
	}
	k := r.Authenticate(key)
	if k == nil || !k.Allows("/demo/x") || k.Allows("/other") {
		t.Fatalf("the printed key and entry do not match:\n%s", out.String())
	}
	if strings.Contains(info.String(), key) {
		t.Error("the key is repeated on stderr")
	}

	out.Reset()
	if err := apiKey(strings.NewReader(key+"\n"), &out, &info, "/demo/*", true); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != entry {
		t.Fatalf("-hash printed %q, want %q", got, entry)
	}
}
