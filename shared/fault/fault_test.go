package fault

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		want    map[string]int64
		wantErr bool
	}{
		{spec: "analytics-after-apply:3", want: map[string]int64{"analytics-after-apply": 3}},
		{spec: " a:1 , b:20 ,", want: map[string]int64{"a": 1, "b": 20}},
		{spec: "", want: map[string]int64{}},
		{spec: "a", wantErr: true},
		{spec: "a:0", wantErr: true},
		{spec: "a:-1", wantErr: true},
		{spec: ":2", wantErr: true},
		{spec: "a:x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := Parse(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, want error %v", tt.spec, err, tt.wantErr)
			}
			if !tt.wantErr && !maps.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.spec, got, tt.want)
			}
		})
	}
}

// TestPointKillsOnTheNthHit guards the counting: the kill comes exactly at the Nth
// hit of the armed point, never at another point's.
func TestPointKillsOnTheNthHit(t *testing.T) {
	oldKill, oldArmed, oldPoints := kill, armed, points
	t.Cleanup(func() { kill, armed, points = oldKill, oldArmed, oldPoints })
	kills := 0
	kill = func() { kills++ }
	arm(map[string]int64{"p": 3})
	for i := 1; i <= 5; i++ {
		Point("other")
		Point("p")
		want := 0
		if i >= 3 {
			want = 1
		}
		if kills != want {
			t.Fatalf("after %d hits: %d kills, want %d", i, kills, want)
		}
	}
}

func TestPointIsInertWhenUnarmed(t *testing.T) {
	oldKill, oldArmed, oldPoints := kill, armed, points
	t.Cleanup(func() { kill, armed, points = oldKill, oldArmed, oldPoints })
	kill = func() { t.Fatal("killed while unarmed") }
	armed, points = false, nil
	for range 3 {
		Point(AnalyticsAfterApply)
	}
}

// TestProcessDiesBySIGKILL runs this test binary again with TIDE_FAULT set: the
// child must die of SIGKILL at the armed point, the way the fault scenarios rely on.
func TestProcessDiesBySIGKILL(t *testing.T) {
	if os.Getenv("FAULT_TEST_CHILD") == "1" {
		for range 10 {
			Point(ConsumerAfterHandle)
		}
		os.Exit(0) // reached only when the hook did not fire
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcessDiesBySIGKILL$")
	cmd.Env = append(os.Environ(), "FAULT_TEST_CHILD=1", Env+"="+ConsumerAfterHandle+":2")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child exited with %v, want death by SIGKILL", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want death by SIGKILL", ee)
	}
}

func BenchmarkPointUnarmed(b *testing.B) {
	for b.Loop() {
		Point(ConsumerAfterHandle)
	}
}
