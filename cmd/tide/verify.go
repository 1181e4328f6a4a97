package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"function/shared/logging"
	"function/test/verify"
)

func init() {
	register(command{name: "verify", summary: "send numbered events through ingest and prove each came out exactly once, in order per key", run: runVerify})
}

func runVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var c verify.Config
	fs.StringVar(&c.Scenario, "scenario", "steady", "name of the run in the report")
	fs.StringVar(&c.URL, "url", envOr("TIDE_URL", "http://127.0.0.1:8080"), "ingest URL (env TIDE_URL)")
	fs.StringVar(&c.ReadURL, "read-url", "", "URL serving /v1/notifications and /v1/stats (default: -url)")
	fs.IntVar(&c.Keys, "keys", 40, "partition keys; each is its own source and notification channel")
	fs.IntVar(&c.EventsPerKey, "events", 50, "events per key (at most 1000)")
	fs.Float64Var(&c.Rate, "rate", 500, "attempts per second over all keys (0: no limit)")
	fs.DurationVar(&c.RetryFor, "retry-for", 2*time.Minute, "how long one refused event is retried before giving up on it")
	fs.DurationVar(&c.Settle, "settle", 2*time.Minute, "longest wait for the outputs to become final")
	fs.IntVar(&c.MinAcked, "min-acked", 1000, "fail when fewer events were acknowledged")
	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers, to read the topic back as ground truth (env KAFKA_BROKERS; empty: judge from the outputs alone)")
	fs.StringVar(&c.Topic, "topic", envOr("KAFKA_TOPIC", "events"), "events topic (env KAFKA_TOPIC)")
	groups := fs.String("groups", "", "comma-separated consumer groups that must have no lag before the outputs count as final (needs -brokers)")
	report := fs.String("report", "", "JSON report file (default: tide-verify-<run>.json in the temporary directory)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: verify takes no arguments", errUsage)
	}
	c.Brokers = splitList(*brokers)
	c.Groups = splitList(*groups)
	c.Log = logging.New(os.Stderr, logging.Options{Format: "text", Level: envOr("LOG_LEVEL", "info")})

	rep, verr := verify.Verify(ctx, c)
	if rep == nil {
		return verr
	}
	rep.Summary(os.Stdout)
	suite := verify.NewSuite(rep)
	path := *report
	if path == "" {
		path = filepath.Join(os.TempDir(), "tide-verify-"+rep.RunID+".json")
	}
	if err := suite.WriteJSON(path); err != nil {
		return err
	}
	fmt.Printf("report: %s\n", path)
	suite.Lines(os.Stdout)
	return verr
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
