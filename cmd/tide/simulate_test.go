package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"function/shared/scaling/sim"
)

func TestSimulateRejectsBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-fast"}},
		{"unknown trace", []string{"-trace", "tsunami"}},
		{"unknown profile", []string{"-partitions-trace", "-profile", "huge"}},
		{"stray argument", []string{"ramp"}},
		{"bad seed", []string{"-seed", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := simulate(t.Context(), tt.args, &out, &errOut)
			if !errors.Is(err, errUsage) {
				t.Fatalf("simulate(%q) = %v, want a usage error", tt.args, err)
			}
			if out.Len() != 0 {
				t.Fatalf("printed results on a usage error: %s", out.String())
			}
		})
	}
	var errOut bytes.Buffer
	if err := simulate(t.Context(), []string{"-h"}, &bytes.Buffer{}, &errOut); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-partitions-trace") {
		t.Fatalf("-h: %v, usage %q", err, errOut.String())
	}
}

func TestSimulatePrintsATablePerTrace(t *testing.T) {
	var out bytes.Buffer
	if err := simulate(t.Context(), nil, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, name := range sim.TraceNames() {
		if !strings.Contains(text, "\n"+name+" (") {
			t.Errorf("no table for trace %s", name)
		}
	}
	if n := strings.Count(text, "policy   replica changes  time to capacity  peak lag"); n != len(sim.TraceNames()) {
		t.Errorf("%d table headers, want %d:\n%s", n, len(sim.TraceNames()), text)
	}
	if !strings.Contains(text, "\nraw-lag ") || !strings.Contains(text, "\ntide ") || !strings.Contains(text, "replica changes in total") {
		t.Errorf("missing policies or total:\n%s", text)
	}
	if strings.Contains(text, "partition decisions") {
		t.Error("partition log printed without -partitions-trace")
	}
}

func TestSimulateJSON(t *testing.T) {
	var out bytes.Buffer
	if err := simulate(t.Context(), []string{"-trace", "sawtooth", "-json", "-partitions-trace"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []struct {
			Trace          string `json:"trace"`
			Policy         string `json:"policy"`
			ReplicaChanges int    `json:"replica_changes"`
			TimeToCapacity *int   `json:"time_to_capacity_s"`
		} `json:"results"`
		Partitions struct {
			Trace     string `json:"trace"`
			Decisions []struct {
				Action string `json:"action"`
				Reason string `json:"reason"`
			} `json:"decisions"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if len(rep.Results) != 2 || rep.Results[0].Trace != "sawtooth" || rep.Results[0].Policy != "raw-lag" || rep.Results[1].Policy != "tide" || rep.Results[0].TimeToCapacity == nil {
		t.Fatalf("results %+v", rep.Results)
	}
	grew := false
	for _, d := range rep.Partitions.Decisions {
		grew = grew || d.Action == "grow"
	}
	if rep.Partitions.Trace != sim.TraceRamp10x || !grew {
		t.Fatalf("partition report %+v lacks a growth on ramp10x", rep.Partitions)
	}
}

func TestSimulatePartitionLog(t *testing.T) {
	var out bytes.Buffer
	if err := simulate(t.Context(), []string{"-trace", "ramp10x", "-partitions-trace"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"partition decisions on ramp10x, profile normal", "grow", "sustained need", "below baseline", "without the planner"} {
		if !strings.Contains(text, want) {
			t.Errorf("partition log lacks %q:\n%s", want, text)
		}
	}
}
