package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeConfigurationTableIsTideConfig: the README promises that its
// Configuration table is what `tide config` prints, every variable included.
func TestReadmeConfigurationTableIsTideConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var table []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "|") {
			table = append(table, line)
		}
	}
	var b strings.Builder
	if err := writeConfig(&b); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if got := strings.Join(table, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("README's Configuration table differs from `go run ./cmd/tide config`; replace it with that output.\nREADME:\n%s\n\ntide config:\n%s", got, strings.Join(want, "\n"))
	}
	for _, v := range []string{"LOG_LEVEL", "LOG_FORMAT", "TIDE_HTTP_ADDR", "TIDE_FUNCTION", "REDIS_DB"} {
		if !strings.Contains(b.String(), "| `"+v+"`") {
			t.Errorf("tide config does not list %s", v)
		}
	}
}
