package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"function/shared/config"
)

func TestValidateNamesTheVariable(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string // "" for valid
	}{
		{Options{}, ""},
		{Options{Level: "debug", Format: "json"}, ""},
		{Options{Level: "WARN", Format: "Text"}, ""},
		{Options{Level: "error"}, ""},
		{Options{Level: "bogus"}, `LOG_LEVEL="bogus"`},
		{Options{Level: "verbose"}, `LOG_LEVEL="verbose"`},
		{Options{Format: "xml"}, `LOG_FORMAT="xml"`},
	} {
		err := tc.o.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestLoadFromEnvironment: config.Load reads and checks both variables, so a program
// that embeds Options in its configuration refuses to start on a bad value.
func TestLoadFromEnvironment(t *testing.T) {
	t.Setenv("LOG_LEVEL", "bogus")
	var o Options
	if err := config.Load("", &o); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Fatalf("Load with LOG_LEVEL=bogus: %v", err)
	}
	t.Setenv("LOG_LEVEL", "debug")
	t.Setenv("LOG_FORMAT", "text")
	if err := config.Load("", &o); err != nil || o.Level != "debug" || o.Format != "text" {
		t.Fatalf("Load = %+v, %v", o, err)
	}
}

func TestNewHonoursFormatAndLevel(t *testing.T) {
	var b bytes.Buffer
	New(&b, Options{Format: "JSON", Level: "warn"}).Info("hidden")
	New(&b, Options{Format: "JSON", Level: "warn"}).Warn("shown")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Fatalf("JSON at warn: %q (%v)", b.String(), err)
	}
	b.Reset()
	l := New(&b, Options{Format: "text", Level: "debug"})
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug level not enabled")
	}
	l.Debug("hello")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Fatalf("text format: %q", b.String())
	}
}
