package ingest_test

import (
	"strings"
	"testing"

	"function/functions/ingest"
)

// TestLoadConfigNamesBadValues: every value a user can get wrong stops LoadConfig with
// an error naming the variable, whether or not the feature it belongs to is on.
func TestLoadConfigNamesBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"REDIS_DB", "-1"},
		{"INGEST_RATE_LIMIT_FALLBACK", "sideways"}, // the rate limiter is off
		{"INGEST_RATE_LIMIT_OVERRIDES", "garbage"},
		{"LOG_LEVEL", "bogus"},
		{"LOG_FORMAT", "xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := ingest.LoadConfig()
			if want := tc.name + `="` + tc.value + `"`; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("LoadConfig with %s=%s: %v, want an error naming %s", tc.name, tc.value, err, want)
			}
		})
	}
	for _, ok := range []struct{ name, value string }{{"LOG_LEVEL", "DEBUG"}, {"LOG_LEVEL", "warn"}, {"LOG_FORMAT", "text"}, {"REDIS_DB", "3"}} {
		t.Setenv(ok.name, ok.value)
	}
	if _, err := ingest.LoadConfig(); err != nil {
		t.Fatalf("LoadConfig with good values: %v", err)
	}
}
