package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"function/shared/config"
	"function/test/bench/loadgen"
)

func init() {
	register(command{name: "loadgen", summary: "generate bounded load at ingest (or at a Kafka publisher directly) and report throughput and latency", run: runLoadgen})
}

func runLoadgen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", envOr("TIDE_URL", "http://127.0.0.1:8080"), "ingest URL, loopback only (env TIDE_URL)")
	mode := fs.String("mode", "closed", "closed: -c requests in flight, as fast as answers come; open: -rate events/s, latency from the intended send time")
	rate := fs.Float64("rate", 1000, "events per second (open mode)")
	conc := fs.Int("c", 64, "requests in flight (closed mode); most in flight before queueing (open mode)")
	batch := fs.Int("batch", 1, "events per request (1: one binary-mode event per request; more: batch mode)")
	structured := fs.Bool("structured", false, "send single events in structured instead of binary mode")
	size := fs.Int("size", 1024, "bytes of data per event")
	keys := fs.Int("keys", 100, "key cardinality: distinct subjects (partition keys)")
	sources := fs.Int("sources", 1, "distinct sources (notification channels)")
	dur := fs.Duration("d", 10*time.Second, "how long to send")
	count := fs.Int64("n", 0, "stop after this many events (0: only the duration bounds the run)")
	warmup := fs.Duration("warmup", time.Second, "left out of the figures at the start (a run that ends within it reports everything and says so)")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	direct := fs.Bool("direct", false, "publish with tide's kafka.Publisher to KAFKA_BROKERS / KAFKA_TOPIC (BATCH_SIZE, BATCH_TIMEOUT_MS, ...) instead of posting to -url")
	directCE := fs.Bool("direct-ce", false, "with -direct: publish the records ingest writes (CloudEvents binary mode: ce_ headers) instead of bare key and value")
	e2eRedis := fs.String("e2e-redis", "", "after the run, read the notifications of its events from this Redis (loopback) and report created_at minus send time")
	e2ePrefix := fs.String("e2e-prefix", envOr("REDIS_KEY_PREFIX", "tide:"), "REDIS_KEY_PREFIX of the notification function")
	e2eWait := fs.Duration("e2e-wait", 30*time.Second, "longest to wait for the notifications to be stored")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("q", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: loadgen takes no arguments", errUsage)
	}
	ev := loadgen.Events{Size: *size, Keys: *keys, Sources: *sources}
	cfg := loadgen.Config{Mode: loadgen.Mode(*mode), Rate: *rate, Concurrency: *conc, Batch: *batch, Duration: *dur, Count: *count, Warmup: *warmup}
	if !*quiet {
		cfg.Progress = os.Stderr
	}

	var target loadgen.Target
	if *direct {
		var spec struct {
			config.Kafka
			config.Producer
		}
		if err := config.Load("", &spec); err != nil {
			return err
		}
		if len(spec.Brokers) == 0 {
			return fmt.Errorf("%w: -direct needs KAFKA_BROKERS", errUsage)
		}
		d, err := loadgen.NewDirectTarget(spec.Kafka, spec.Producer, *size, *keys)
		if err != nil {
			return err
		}
		d.CloudEvents = *directCE
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = d.Close(cctx)
		}()
		target = d
	} else {
		h, err := loadgen.NewHTTPTarget(*url, ev, *conc, *timeout)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		defer h.Close()
		h.Structured = *structured
		// As replay: the key from the environment, never a flag (flags show in ps).
		h.APIKey = os.Getenv("TIDE_API_KEY")
		ev = h.Events // with its run id
		target = h
	}

	res, err := loadgen.Run(ctx, cfg, target)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	out := struct {
		loadgen.Result
		EndToEnd *loadgen.Summary `json:"end_to_end,omitempty"`
	}{Result: res}
	var e2eErr error
	if *e2eRedis != "" && !*direct {
		if err := loadgen.CheckLoopback(*e2eRedis); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: *e2eRedis, Password: os.Getenv("REDIS_PASSWORD")})
		defer rdb.Close()
		// Every acknowledged event, warm-up included, becomes a notification; those
		// due during the warm-up are waited for but left out of the figures.
		var h *loadgen.Histogram
		h, e2eErr = loadgen.NotificationLatency(ctx, rdb, *e2ePrefix, ev, res.AckedTotal, res.MeasuredFrom, *e2eWait)
		if h != nil {
			s := h.Summary()
			out.EndToEnd = &s
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printLoad(os.Stdout, out.Result, out.EndToEnd)
	}
	if e2eErr != nil {
		return e2eErr
	}
	if res.Acked == 0 {
		if res.FirstError == "" {
			return fmt.Errorf("no event was acknowledged (%d requests sent)", res.Requests)
		}
		return fmt.Errorf("no event was acknowledged (%s)", res.FirstError)
	}
	return nil
}

func printLoad(w io.Writer, r loadgen.Result, e2e *loadgen.Summary) {
	fmt.Fprintln(w, r.String())
	if e2e != nil {
		fmt.Fprintf(w, "end to end (send -> notification created): p50 %s  p90 %s  p99 %s  max %s  (n=%d)\n",
			e2e.P50, e2e.P90, e2e.P99, e2e.Max, e2e.Count)
	}
}
