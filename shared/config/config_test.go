package config

import (
	"strings"
	"testing"
)

type spec struct {
	Size  int      `envconfig:"SIZE" default:"3" desc:"a size"`
	Mode  string   `envconfig:"MODE" default:"a" desc:"a mode"`
	Names []string `envconfig:"NAMES" desc:"names"`
}

func (s spec) Validate() error {
	if err := Positive("SIZE", int64(s.Size)); err != nil {
		return err
	}
	return OneOf("MODE", s.Mode, "a", "b")
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		prefix string
		want   string // substring of the error; "" for success
	}{
		{name: "defaults", env: nil},
		{name: "unparsable number", env: map[string]string{"SIZE": "ten"}, want: `SIZE="ten"`},
		{name: "out of range", env: map[string]string{"SIZE": "0"}, want: `SIZE="0": must be at least 1`},
		{name: "bad choice", env: map[string]string{"MODE": "c"}, want: `MODE="c": must be one of a, b`},
		{name: "prefixed variable named with its prefix", prefix: "NOTIFICATION", env: map[string]string{"NOTIFICATION_MODE": "z"}, want: `NOTIFICATION_MODE="z"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var s spec
			err := Load(tc.prefix, &s)
			if tc.want == "" {
				if err != nil || s.Size != 3 || s.Mode != "a" {
					t.Fatalf("Load = %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestUsageListsEachVariableOnceWithDefault(t *testing.T) {
	var b strings.Builder
	if err := Usage(&b, Section{Spec: &spec{}}, Section{Spec: &spec{}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "`SIZE`") != 1 {
		t.Fatalf("SIZE listed %d times:\n%s", strings.Count(out, "`SIZE`"), out)
	}
	if !strings.Contains(out, "| 3") || !strings.Contains(out, "a size") {
		t.Fatalf("default or description missing:\n%s", out)
	}
}

// TestRedisDBMustNotBeNegative: go-redis selects a database only above 0, so -1 would
// quietly be database 0.
func TestRedisDBMustNotBeNegative(t *testing.T) {
	t.Setenv("REDIS_DB", "-1")
	var r Redis
	if err := Load("", &r); err == nil || !strings.Contains(err.Error(), `REDIS_DB="-1"`) {
		t.Fatalf("Load with REDIS_DB=-1: %v, want an error naming REDIS_DB", err)
	}
	t.Setenv("REDIS_DB", "2")
	if err := Load("", &r); err != nil || r.DB != 2 {
		t.Fatalf("Load = %+v, %v", r, err)
	}
}

// TestOneOfListsTheChoices: an allowed empty value is said in words, not as a
// leading ", " in the list.
func TestOneOfListsTheChoices(t *testing.T) {
	err := OneOf("FALLBACK", "sideways", "", "local", "open")
	if err == nil || err.Error() != `FALLBACK="sideways": must be one of local, open (or empty)` {
		t.Fatalf("OneOf = %v", err)
	}
	if err := OneOf("FALLBACK", "", "", "local"); err != nil {
		t.Fatalf("empty allowed: %v", err)
	}
}
