package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"function/shared/partitions"
	"function/shared/scaling/sim"
)

func init() {
	register(command{
		name:    "simulate",
		summary: "compare raw-lag and tide autoscaling on traffic traces (deterministic simulation)",
		run:     runSimulate,
	})
}

func runSimulate(ctx context.Context, args []string) error {
	return simulate(ctx, args, os.Stdout, os.Stderr)
}

// simulateReport is the -json output.
type simulateReport struct {
	Config     sim.Config       `json:"-"`
	Results    []sim.Result     `json:"results"`
	Partitions *partitionReport `json:"partitions,omitempty"`
}

type partitionReport struct {
	Trace             string                `json:"trace"`
	Profile           string                `json:"profile"`
	InitialPartitions int                   `json:"initial_partitions"`
	FinalPartitions   int                   `json:"final_partitions"`
	FirstGrowthSec    int                   `json:"first_growth_s"`           // -1: never
	LagLimitSec       int                   `json:"lag_limit_s"`              // -1: never
	BaselineLagLimit  int                   `json:"baseline_lag_limit_s"`     // without the planner; -1: never
	PeakLag           int64                 `json:"peak_lag"`                 // with the planner
	BaselinePeakLag   int64                 `json:"baseline_peak_lag"`        // without the planner
	Decisions         []partitions.Decision `json:"decisions"`                // taken, and the first decline of each reason
	DecisionCount     int                   `json:"decision_count,omitempty"` // all decisions made
}

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trace := fs.String("trace", "", "run only this trace: "+strings.Join(sim.TraceNames(), ", ")+" (default all)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	partTrace := fs.Bool("partitions-trace", false, "also run "+sim.TraceRamp10x+" through the partition planner and print its decision log")
	profile := fs.String("profile", partitions.DefaultConfig().Profile, "partition profile for -partitions-trace: "+strings.Join(partitions.ProfileNames(), ", "))
	seed := fs.Uint64("seed", sim.DefaultConfig().Seed, "seed of the produce-rate jitter")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tide simulate [flags]\n\n"+
			"Runs each traffic trace twice through a model of KEDA and the HPA (30 s polling,\n"+
			"10%% tolerance, 300 s scale-down stabilization, %s pod start): once scaled on raw\n"+
			"consumer lag (KEDA's Kafka scaler), once on tide's signal (KEDA's metrics-api scaler).\n\n",
			sim.DefaultConfig().StartDelay)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	traces := sim.Traces()
	if *trace != "" {
		tr, ok := sim.TraceByName(*trace)
		if !ok {
			return fmt.Errorf("%w: -trace %q is none of %s", errUsage, *trace, strings.Join(sim.TraceNames(), ", "))
		}
		traces = []sim.Trace{tr}
	}
	if !slices.Contains(partitions.ProfileNames(), *profile) {
		return fmt.Errorf("%w: -profile %q is none of %s", errUsage, *profile, strings.Join(partitions.ProfileNames(), ", "))
	}

	cfg := sim.DefaultConfig()
	cfg.Seed = *seed
	rep := simulateReport{Config: cfg}
	for _, tr := range traces {
		if err := ctx.Err(); err != nil {
			return err
		}
		rs, err := sim.RunAll(cfg, []sim.Trace{tr})
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, rs...)
	}
	if *partTrace {
		pr, err := runPartitionTrace(cfg, *profile)
		if err != nil {
			return err
		}
		rep.Partitions = pr
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printResults(stdout, cfg, traces, rep.Results)
	if rep.Partitions != nil {
		printPartitions(stdout, cfg, rep.Partitions)
	}
	return nil
}

func runPartitionTrace(cfg sim.Config, profile string) (*partitionReport, error) {
	tr, _ := sim.TraceByName(sim.TraceRamp10x)
	pc := sim.DefaultPartitionConfig()
	pc.Planner.Profile = profile
	with, err := sim.RunPartitions(cfg, pc, tr)
	if err != nil {
		return nil, err
	}
	pc.Disabled = true
	without, err := sim.RunPartitions(cfg, pc, tr)
	if err != nil {
		return nil, err
	}
	return &partitionReport{
		Trace:             tr.Name,
		Profile:           profile,
		InitialPartitions: with.InitialPartitions,
		FinalPartitions:   with.FinalPartitions,
		FirstGrowthSec:    seconds(with.FirstGrowth),
		LagLimitSec:       seconds(with.LagLimit),
		BaselineLagLimit:  seconds(without.LagLimit),
		PeakLag:           with.Scaling.PeakLag,
		BaselinePeakLag:   without.Scaling.PeakLag,
		Decisions:         with.Log(),
		DecisionCount:     len(with.Decisions),
	}, nil
}

// seconds is d in whole seconds, -1 for a negative d (never).
func seconds(d time.Duration) int {
	if d < 0 {
		return -1
	}
	return int(d / time.Second)
}

func printResults(w io.Writer, cfg sim.Config, traces []sim.Trace, results []sim.Result) {
	fmt.Fprintf(w, "consumers %d ev/s each on %d partitions; KEDA poll %s, HPA sync %s, tolerance %g, scale-down window %s, pod start %s, rebalance pause %s, jitter ±%g%%, seed %d\n",
		cfg.ConsumerRate, cfg.Partitions, cfg.PollInterval, cfg.SyncPeriod, cfg.Tolerance, cfg.ScaleDownStabilization, cfg.StartDelay, cfg.RebalancePause, cfg.Jitter*100, cfg.Seed)
	totals := map[sim.Policy]int{}
	for _, tr := range traces {
		fmt.Fprintf(w, "\n%s (%s): %s\n", tr.Name, tr.Duration, tr.Description)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "policy\treplica changes\ttime to capacity\tpeak lag\tfinal lag\tmean replicas")
		for _, r := range results {
			if r.Trace != tr.Name {
				continue
			}
			totals[r.Policy] += r.ReplicaChanges
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.1f\n", r.Policy, r.ReplicaChanges, r.TimeToCapacity, r.PeakLag, r.FinalLag, r.MeanReplicas)
		}
		tw.Flush()
	}
	if raw := totals[sim.PolicyRawLag]; len(traces) > 1 && raw > 0 {
		tide := totals[sim.PolicyTide]
		fmt.Fprintf(w, "\nreplica changes in total: raw-lag %d, tide %d (%.0f%% fewer)\n", raw, tide, 100*(1-float64(tide)/float64(raw)))
	}
	fmt.Fprintln(w, "time to capacity: longest time the running capacity stayed below the rate after the rate rose above it")
}

func printPartitions(w io.Writer, cfg sim.Config, p *partitionReport) {
	fmt.Fprintf(w, "\npartition decisions on %s, profile %s (taken, and the first decline of each reason; %d decisions in all):\n", p.Trace, p.Profile, p.DecisionCount)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "at\taction\tpartitions\treason\trate/s\tlag\tdetail")
	for _, d := range p.Decisions {
		var lag int64
		for _, l := range d.LagByGroup {
			lag = max(lag, l)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d → %d\t%s\t%.0f\t%d\t%s\n", d.At.Sub(sim.Start), d.Action, d.Current, d.Target, d.Reason, d.ProduceRatePerSec, lag, d.Detail)
	}
	tw.Flush()
	never := func(s int) string {
		if s < 0 {
			return "never"
		}
		return (time.Duration(s) * time.Second).String()
	}
	fmt.Fprintf(w, "partitions %d → %d; first growth %s; lag (mean over %s) passed %d × partitions: %s, peak lag %d\n",
		p.InitialPartitions, p.FinalPartitions, never(p.FirstGrowthSec), cfg.Window, cfg.LagThreshold, never(p.LagLimitSec), p.PeakLag)
	fmt.Fprintf(w, "without the planner (%d partitions): lag passed it at %s, peak lag %d\n", p.InitialPartitions, never(p.BaselineLagLimit), p.BaselinePeakLag)
}
