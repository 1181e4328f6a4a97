package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/growth"
	"function/shared/health"
	"function/shared/kafka"
	"function/shared/logging"
	"function/shared/metrics"
	"function/shared/store"
)

func init() {
	register(command{name: "partitions", summary: "run the partition manager: grow the events topic from live load without reordering keys (KAFKA_BROKERS, REDIS_ADDR)", run: runPartitions})
}

// runPartitions is the partition manager's process: configuration from the
// environment (PARTITION_*, see the README), the manager's loop, and its HTTP server
// (/metrics, health, status).
func runPartitions(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("partitions", flag.ContinueOnError)
	addr := fs.String("addr", "", "HTTP listen address (default PARTITION_MANAGER_ADDR)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: partitions takes no arguments (configure it with PARTITION_* variables)", errUsage)
	}
	var cfg growth.ManagerConfig
	if err := config.Load("", &cfg); err != nil {
		return err
	}
	if len(cfg.Brokers) == 0 || cfg.Redis.Addr == "" {
		return fmt.Errorf("%w: the partition manager needs KAFKA_BROKERS and REDIS_ADDR (it coordinates with ingest through Redis)", errUsage)
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	log := logging.New(os.Stderr, logging.FromEnv()).With("function", "partitions")
	m := metrics.New()

	base, err := kafka.NewConfig(cfg.Kafka)
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(cfg.Brokers, base)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return fmt.Errorf("kafka admin: %w", err)
	}
	defer admin.Close() // closes client too
	rdb, err := store.Connect(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	mgr, err := growth.NewManager(cfg, client, admin, rdb, log, m)
	if err != nil {
		return err
	}
	watcher := health.NewWatcher(log, 5*time.Second,
		health.Check{Name: "kafka", Probe: kafka.Probe(client, cfg.Topic), Up: m.KafkaUp, Reconnects: m.KafkaReconnects},
		health.Check{Name: "redis", Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, Up: m.RedisUp, Reconnects: m.RedisReconnects},
	)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set PARTITION_MANAGER_ADDR or -addr): %w", cfg.Addr, err)
	}
	srv := &http.Server{Handler: managerMux(mgr, watcher, m), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watcher.Run(runCtx)
	ran := make(chan error, 1)
	go func() { ran <- mgr.Run(runCtx) }()
	log.Info("partition manager running", "addr", ln.Addr().String(), "topic", cfg.Topic, "groups", cfg.Groups,
		"profile", cfg.Profile, "max", cfg.Max, "sample_interval", cfg.SampleInterval())

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "err", err)
		}
	}
	cancel()
	// A growth under way releases the publishers before Run returns.
	runErr := <-ran
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(sctx)
	return runErr
}

// managerMux serves /metrics, /health/readiness, /health/liveness and, at /, the
// manager's status (its last decision and last change) as JSON.
func managerMux(mgr *growth.Manager, w *health.Watcher, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /health/readiness", func(rw http.ResponseWriter, _ *http.Request) {
		if !w.Up() || !mgr.Ready() {
			http.Error(rw, "not ready: Kafka or Redis down, or no observation yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	mux.HandleFunc("GET /health/liveness", func(rw http.ResponseWriter, _ *http.Request) {
		if !w.Alive() || !mgr.Alive() {
			http.Error(rw, "wedged", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "alive")
	})
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(rw)
		enc.SetIndent("", "  ")
		_ = enc.Encode(mgr.Status())
	})
	return mux
}
