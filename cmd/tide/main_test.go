package main

import (
	"bytes"
	"strings"
	"testing"
)

// Asking for help is not an error: tide help, tide -h and tide CMD -h exit 0 (help
// on stdout for tide's own); an unknown command or no command at all exits 2.
func TestHelpExitsZeroAndUnknownCommandsDoNot(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   string // the usage text, when it belongs on stdout
		stderrIn string
	}{
		{[]string{"help"}, 0, "usage: tide <command>", ""},
		{[]string{"-h"}, 0, "usage: tide <command>", ""},
		{[]string{"--help"}, 0, "usage: tide <command>", ""},
		{[]string{"help", "replay"}, 0, "", ""},
		{[]string{"help", "dlq"}, 0, "", ""},
		{[]string{"loadgen", "-h"}, 0, "", ""},
		{[]string{"partitions", "-h"}, 0, "", ""},
		{[]string{"dlq", "list", "-h"}, 0, "", ""},
		{nil, 2, "", "usage: tide <command>"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"replay", "-no-such-flag"}, 2, "", "flag provided but not defined"},
	} {
		var out, errOut bytes.Buffer
		code := runMain(t.Context(), tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("tide %s: exit %d, want %d\nstderr: %s", strings.Join(tc.args, " "), code, tc.code, errOut.String())
		}
		if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderrIn) {
			t.Errorf("tide %s: stdout %q (want %q in it), stderr %q (want %q in it)", strings.Join(tc.args, " "), out.String(), tc.stdout, errOut.String(), tc.stderrIn)
		}
	}
}
