package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"function"
	"function/shared/embedded"
)

func init() {
	register(command{name: "run", summary: "run the whole pipeline locally (embedded Kafka and Redis unless KAFKA_BROKERS / REDIS_ADDR are set)", run: runPipeline})
}

func runPipeline(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	addr := fs.String("addr", envOr("TIDE_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env TIDE_HTTP_ADDR)")
	kafkaPort := fs.Int("kafka-port", 0, "port of the embedded Kafka broker (0: a free port)")
	redisPort := fs.Int("redis-port", 0, "port of the embedded Redis (0: a free port)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// The local runner's groups start at the earliest offset unless told otherwise,
	// so events posted before the consumers joined are not skipped in a demo.
	for _, v := range []string{"NOTIFICATION_INITIAL_OFFSET", "ANALYTICS_INITIAL_OFFSET"} {
		if _, ok := os.LookupEnv(v); !ok {
			os.Setenv(v, "earliest")
		}
	}
	opts, err := function.OptionsFromEnv(function.All)
	if err != nil {
		return err
	}
	log := opts.Logger

	brokers := opts.Ingest.Brokers
	if len(brokers) == 0 {
		k, err := embedded.StartKafka(*kafkaPort)
		if err != nil {
			return err
		}
		defer k.Close()
		brokers = k.Brokers()
		log.Info("embedded Kafka-protocol broker (kfake) started; set KAFKA_BROKERS to use a real cluster", "brokers", brokers)
	}
	redisAddr := opts.Notification.Redis.Addr
	if redisAddr == "" {
		r, err := embedded.StartRedis(*redisPort)
		if err != nil {
			return err
		}
		defer r.Close()
		redisAddr = r.Addr()
		log.Info("embedded Redis (miniredis) started; set REDIS_ADDR to use a real Redis", "addr", redisAddr)
	}
	opts.Ingest.Brokers, opts.Notification.Brokers, opts.Analytics.Brokers = brokers, brokers, brokers
	// Ingest uses Redis only for its rate limiter (INGEST_RATE_LIMIT_ENABLED).
	opts.Ingest.Redis.Addr, opts.Notification.Redis.Addr, opts.Analytics.Redis.Addr = redisAddr, redisAddr, redisAddr

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set -addr or TIDE_HTTP_ADDR): %w", *addr, err)
	}
	f := function.New()
	if err := f.StartWith(ctx, opts); err != nil {
		ln.Close()
		return err
	}
	srv := newServer(f)

	base := "http://" + ln.Addr().String()
	fmt.Fprintf(os.Stderr, `
tide is running.
  ingest         POST %[1]s/            (CloudEvents: binary, structured, batch)
  stats          GET  %[1]s/v1/stats
  notifications  GET  %[1]s/v1/notifications?channel=<source>
  live stream    GET  %[1]s/v1/notifications/stream?channel=<source>
  metrics        GET  %[1]s/metrics
  readiness      GET  %[1]s/health/readiness
  kafka          %[2]s   redis %[3]s

Try:
  curl -i %[1]s/ -H 'ce-specversion: 1.0' -H 'ce-id: 1' -H 'ce-source: /demo' -H 'ce-type: demo.hello' -H 'content-type: application/json' -d '{"hello":"world"}'
  go run ./cmd/tide replay -url %[1]s ../shared/data/github-events.jsonl

Ctrl-C stops (a second Ctrl-C exits at once).
`, base, brokers[0], redisAddr)

	return serveUntil(ctx, log, srv, ln, 10*time.Second, f.Stop)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
