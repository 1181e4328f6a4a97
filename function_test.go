package function

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFunctions(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "ingest", want: []string{Ingest}},
		{in: "all", want: []string{Ingest, Notification, Analytics}},
		{in: "notification, analytics", want: []string{Notification, Analytics}},
		{in: "", wantErr: "TIDE_FUNCTION is not set"},
		{in: "ingest,billing", wantErr: `"billing" is not`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseFunctions(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestOptionsFromEnvStopsOnBadVariable(t *testing.T) {
	t.Setenv("ANALYTICS_BATCH_SIZE", "lots")
	_, err := OptionsFromEnv("analytics")
	if err == nil || !strings.Contains(err.Error(), "ANALYTICS_BATCH_SIZE") {
		t.Fatalf("err = %v, want one naming ANALYTICS_BATCH_SIZE", err)
	}
}

// TestEveryFunctionNamesBadSharedValues: Redis's database and the logging variables
// are checked with each function's configuration, so a bad one stops start-up naming
// it, whichever function runs.
func TestEveryFunctionNamesBadSharedValues(t *testing.T) {
	for _, fn := range []string{Ingest, Notification, Analytics} {
		for _, tc := range []struct{ name, value string }{
			{"REDIS_DB", "-1"},
			{"LOG_LEVEL", "bogus"},
			{"LOG_FORMAT", "xml"},
		} {
			t.Run(fn+"/"+tc.name, func(t *testing.T) {
				t.Setenv(tc.name, tc.value)
				_, err := OptionsFromEnv(fn)
				if want := tc.name + `="` + tc.value + `"`; err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s with %s=%s: %v, want an error naming %s", fn, tc.name, tc.value, err, want)
				}
			})
		}
		if _, err := OptionsFromEnv(fn); err != nil {
			t.Fatalf("%s with the defaults: %v", fn, err)
		}
	}
}
