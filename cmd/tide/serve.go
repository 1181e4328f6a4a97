package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"function"
)

func init() {
	register(command{name: "serve", summary: "run the functions named by TIDE_FUNCTION as one process against KAFKA_BROKERS / REDIS_ADDR (what a deployment runs)", run: runServe})
}

// runServe is one workload of a deployment: the functions TIDE_FUNCTION names, with
// their configuration from the environment, behind one HTTP server. Unlike `tide
// run` it starts nothing embedded, so separate processes (ingest, consumers) share
// a real Kafka and Redis and can be killed, restarted and scaled one by one.
func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", envOr("TIDE_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env TIDE_HTTP_ADDR)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "longest the first SIGTERM waits for requests, the producer and commits")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: serve takes no arguments (choose the functions with TIDE_FUNCTION)", errUsage)
	}
	opts, err := function.OptionsFromEnv(os.Getenv("TIDE_FUNCTION"))
	if err != nil {
		return err
	}
	if err := requireInfra(opts); err != nil {
		return err
	}
	log := opts.Logger
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set -addr or TIDE_HTTP_ADDR): %w", *addr, err)
	}
	function.TuneGC(opts)
	f := function.New()
	if err := f.StartWith(ctx, opts); err != nil {
		ln.Close()
		return err
	}
	srv := newServer(f)
	log.Info("serving", "functions", opts.Functions, "addr", ln.Addr().String())
	return serveUntil(ctx, log, srv, ln, *drain, f.Stop)
}

// requireInfra fails fast when a selected function has no Kafka or Redis to use:
// serve never starts embedded ones.
func requireInfra(o function.Options) error {
	for _, n := range o.Functions {
		switch {
		case n == function.Ingest && len(o.Ingest.Brokers) == 0,
			n == function.Notification && len(o.Notification.Brokers) == 0 && o.Notification.Mode == "pull",
			n == function.Analytics && len(o.Analytics.Brokers) == 0 && o.Analytics.Mode == "pull":
			return fmt.Errorf("%w: KAFKA_BROKERS is not set (%s needs a Kafka cluster; `tide run` starts an embedded one)", errUsage, n)
		case n == function.Notification && o.Notification.Redis.Addr == "",
			n == function.Analytics && o.Analytics.Redis.Addr == "":
			return fmt.Errorf("%w: REDIS_ADDR is not set (%s needs Redis; `tide run` starts an embedded one)", errUsage, n)
		}
	}
	return nil
}
