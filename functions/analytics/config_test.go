package analytics

import (
	"strings"
	"testing"
)

// TestLoadConfigNamesBadValues: Redis's database and the logging variables are checked
// with the rest of the configuration, so a bad one stops start-up naming it.
func TestLoadConfigNamesBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"REDIS_DB", "-1"},
		{"LOG_LEVEL", "bogus"},
		{"LOG_FORMAT", "xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := LoadConfig()
			if want := tc.name + `="` + tc.value + `"`; err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("LoadConfig with %s=%s: %v, want an error naming %s", tc.name, tc.value, err, want)
			}
		})
	}
	if _, err := LoadConfig(); err != nil {
		t.Fatalf("LoadConfig with the defaults: %v", err)
	}
}
