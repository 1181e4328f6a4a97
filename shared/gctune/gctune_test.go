package gctune

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDecide(t *testing.T) {
	const mib = 1 << 20
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, c := range []struct {
		name      string
		s         Settings
		env       map[string]string
		container int64
		want      Applied
	}{
		{"no container limit: the setting", Settings{400, 100 * mib}, nil, 0, Applied{400, 100 * mib, "setting"}},
		{"container limit: 90 % of it", Settings{400, 100 * mib}, nil, 512 * mib, Applied{400, 512 * mib / 10 * 9, "container"}},
		{"operator's GOGC wins", Settings{400, 100 * mib}, map[string]string{"GOGC": "100"}, 0, Applied{0, 100 * mib, "setting"}},
		{"operator's GOMEMLIMIT wins, GOGC still raised", Settings{400, 100 * mib}, map[string]string{"GOMEMLIMIT": "1GiB"}, 0, Applied{400, 0, ""}},
		{"both set by the operator", Settings{400, 100 * mib}, map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, 0, Applied{}},
		{"tuning off", Settings{0, 100 * mib}, nil, 512 * mib, Applied{}},
		{"no limit anywhere: GOGC left alone", Settings{400, 0}, nil, 0, Applied{}},
	} {
		if got := decide(c.s, env(c.env), c.container); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestContainerLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2max, v1none, v1 := write("v2", "max\n"), write("v1none", "9223372036854771712\n"), write("v1", "536870912\n")
	if got := containerLimit([]string{v2max, v1none}); got != 0 {
		t.Errorf("no limit in either file: %d, want 0", got)
	}
	if got := containerLimit([]string{filepath.Join(dir, "missing"), v2max, v1}); got != 536870912 {
		t.Errorf("v1 limit: %d, want 536870912", got)
	}
}
