// Command suite is `make bench`: it runs tide and the tools a user would pick
// instead side by side, in one run, on the same Kafka broker and Redis, and prints
// each pair with their ratio, the targets, and the peak memory of each tide process.
//
// It expects a running Kafka and Redis (KAFKA_BROKERS, REDIS_ADDR, TIDE_STATE_DIR from
// test/infra/up.sh; `make bench` starts and stops its own) and runs from the
// repository root. Every tide function runs as its own OS process (`tide serve`),
// every load run is bounded, and all traffic stays on loopback.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"function/shared/config"
	"function/test/bench/loadgen"
)

type options struct {
	dur, warmup   time.Duration
	batchTimeout  int // BATCH_TIMEOUT_MS given to ingest (0: its default)
	profile       bool
	out           string
	skipAnalytics bool
	only          string // "ingest", "e2e", "stall" or "analytics": only that step (debugging)
}

func main() {
	var o options
	flag.DurationVar(&o.dur, "d", 15*time.Second, "length of each load run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "start of each load run left out of the figures")
	flag.BoolVar(&o.profile, "profile", false, "also take a 10 s CPU profile of ingest under single-event load (bench-out/ingest-cpu.pprof)")
	flag.StringVar(&o.out, "out", "bench-out", "folder for logs, profiles and the report")
	flag.BoolVar(&o.skipAnalytics, "skip-analytics", false, "leave out the analytics comparison (debugging)")
	flag.IntVar(&o.batchTimeout, "batch-timeout-ms", 0, "BATCH_TIMEOUT_MS for ingest (0: its default)")
	flag.StringVar(&o.only, "only", "", `"ingest": only the ingest pairs (ingest, perf-test, Publisher alone, sdk-go baseline, HTTP ceiling); "e2e": run only notification end to end; "stall": only the Kafka stall steps, after a short batched warm-up; "analytics": only the analytics comparison, on a topic filled by batched posts (debugging)`)
	flag.Parse()
	ctx, stop := signalContext()
	defer stop()
	s, err := newSuite(ctx, o)
	if err == nil {
		err = s.run(ctx)
		s.cleanup()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() { <-ch; cancel() }()
	return ctx, cancel
}

type suite struct {
	o       options
	id      string
	bin     string // folder of the built binaries
	brokers string
	redis   string
	state   string // TIDE_STATE_DIR of the infra
	procs   []*proc
	report  *report
	rdb     *redis.Client
}

func newSuite(ctx context.Context, o options) (*suite, error) {
	s := &suite{o: o, id: strconv.FormatInt(time.Now().Unix()%1e6, 36), brokers: os.Getenv("KAFKA_BROKERS"), redis: os.Getenv("REDIS_ADDR"), state: os.Getenv("TIDE_STATE_DIR")}
	if s.brokers == "" || s.redis == "" || s.state == "" {
		return nil, errors.New("KAFKA_BROKERS, REDIS_ADDR and TIDE_STATE_DIR must be set (eval \"$(test/infra/up.sh)\"; `make bench` does it)")
	}
	for _, a := range append(strings.Split(s.brokers, ","), s.redis) {
		if err := loadgen.CheckLoopback(a); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	s.bin = filepath.Join(o.out, "bin")
	s.report = newReport()
	s.rdb = redis.NewClient(&redis.Options{Addr: s.redis, Password: os.Getenv("REDIS_PASSWORD")})
	fmt.Fprintln(os.Stderr, "bench: building tide, the sdk-go baseline and the bare sarama consumer")
	for pkg, name := range map[string]string{"./cmd/tide": "tide", "./test/bench/baseline": "baseline", "./test/bench/saramacg": "saramacg", "./test/bench/profserve": "profserve", "./test/bench/httpceiling": "httpceiling"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(s.bin, name), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	return s, nil
}

func (s *suite) cleanup() {
	for _, p := range s.procs {
		p.stop()
	}
	_ = s.rdb.Close()
}

func (s *suite) topic(name string) string { return "bench-" + s.id + "-" + name }

func (s *suite) run(ctx context.Context) error {
	r := s.report
	r.machine(s)
	switch s.o.only {
	case "stall":
		return s.runStall(ctx)
	case "e2e":
		return s.runE2E(ctx)
	case "analytics":
		return s.runAnalytics(ctx)
	}
	events := s.topic("events")

	// 1. Ingest: batched and single-event posts, one tide process.
	ingest, err := s.serve(ctx, "ingest", "ingest", map[string]string{"KAFKA_TOPIC": events})
	if err != nil {
		return err
	}
	kafkaPID := readPID(filepath.Join(s.state, "kafka", "node1", "pid"))
	// A fresh broker's JVM compiles its produce path under the first load, so
	// whichever run comes first pays for it (in the 19:06 run the broker spent 20 µs
	// of CPU per event under ingest, the first run, and 4 µs under the Publisher
	// alone, later). Warm it up first, unmeasured, so the pairs compare like for like.
	if _, err := s.loadgen(ctx, "broker warm-up, not compared: kafka.Publisher alone (100 records/Publish, 8 callers)", nil, kafkaPID,
		"-direct", "-c", "8", "-batch", "100", "-d", "8s", "-warmup", "1s"); err != nil {
		return err
	}
	batched, err := s.loadgen(ctx, "ingest, batched posts (100 events/request, 8 in flight)", ingest, kafkaPID,
		"-url", ingest.url, "-c", "8", "-batch", "100")
	if err != nil {
		return err
	}
	single, err := s.loadgen(ctx, "ingest, single-event posts (64 in flight)", ingest, kafkaPID,
		"-url", ingest.url, "-c", "64", "-batch", "1")
	if err != nil {
		return err
	}
	if s.o.profile {
		if err := s.profileIngest(ctx); err != nil {
			return err
		}
	}

	// 2. The anchors for ingest: kafka-producer-perf-test, tide's publisher alone, the
	// sdk-go receiver+sender.
	perfN := min(max(batched.AckedTotal, 50000), 1000000)
	perf, err := s.producerPerf(ctx, s.topic("perf"), perfN)
	if err != nil {
		return err
	}
	direct, err := s.loadgen(ctx, "tide kafka.Publisher alone (100 records/Publish, 8 callers)", nil, kafkaPID,
		"-direct", "-c", "8", "-batch", "100")
	if err != nil {
		return err
	}
	base, err := s.start(ctx, "baseline", filepath.Join(s.bin, "baseline"), nil, "-addr", freeAddr(), "-topic", s.topic("baseline"))
	if err != nil {
		return err
	}
	base.url = "http://" + base.args[1]
	if err := waitHTTP(ctx, base.url, 60*time.Second, func(code int) bool { return code > 0 }); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	baseline, err := s.loadgen(ctx, "sdk-go receiver + kafka_sarama sender, single-event posts (64 in flight)", base, kafkaPID,
		"-url", base.url, "-c", "64", "-batch", "1")
	if err != nil {
		return err
	}
	base.stop()
	ceiling, err := s.ceiling(ctx)
	if err != nil {
		return err
	}

	r.pair("ingest batched vs kafka-producer-perf-test (records/s)", batched.Throughput, perf, 0.7)
	r.pair("Publisher alone vs kafka-producer-perf-test (records/s)", direct.Throughput, perf, 0)
	r.pair("ingest single c=64 vs sdk-go baseline c=64 (events/s)", single.Throughput, baseline.Throughput, 3)
	var prod config.Producer // ingest's BATCH_TIMEOUT_MS: its default unless set
	if err := config.Load("", &prod); err != nil {
		return err
	}
	bt := prod.BatchTimeoutMS
	if s.o.batchTimeout > 0 {
		bt = s.o.batchTimeout
	}
	r.limit(fmt.Sprintf("ingest single c=64 p99 (BATCH_TIMEOUT_MS=%d)", bt), ms(single.Latency.P99), float64(bt+10), "ms")
	r.note(fmt.Sprintf("sdk-go baseline c=64 latency: p50 %.1f ms, p99 %.1f ms", ms(baseline.Latency.P50), ms(baseline.Latency.P99)))
	r.pair("HTTP ceiling (empty handler, no Kafka) c=64 vs sdk-go baseline (events/s)", ceiling.Throughput, baseline.Throughput, 0)
	r.pair("ingest single c=64 vs HTTP ceiling c=64 (events/s)", single.Throughput, ceiling.Throughput, 0)
	r.note(fmt.Sprintf("HTTP ceiling c=64 latency: p50 %.1f ms, p99 %.1f ms", ms(ceiling.Latency.P50), ms(ceiling.Latency.P99)))
	if s.o.only == "ingest" { // -only ingest: the ingest pairs and their anchors, nothing after
		r.memory(s.procs)
		r.machineEnd()
		r.print(os.Stdout)
		return r.write(filepath.Join(s.o.out, "report.txt"))
	}

	// 3. Analytics against kafka-consumer-perf-test and a bare sarama group, all three
	// reading the records ingest wrote above.
	if !s.o.skipAnalytics {
		if err := s.analytics(ctx, events); err != nil {
			return err
		}
	}

	// 4. Notification end to end at a fixed rate (e2e.go).
	if err := s.e2e(ctx, kafkaPID); err != nil {
		return err
	}

	// 5. Memory: ingest's peak under load, then while Kafka stalls.
	peak := ingest.memKB("VmHWM")
	r.limit("ingest peak RSS under load (VmHWM)", float64(peak)/1024, 150, "MiB")
	if err := s.stalls(ctx, ingest); err != nil {
		return err
	}
	r.memory(s.procs)
	r.machineEnd()
	r.print(os.Stdout)
	return r.write(filepath.Join(s.o.out, "report.txt"))
}

// runAnalytics is -only analytics: batched posts fill a topic, then the analytics
// comparison reads it.
func (s *suite) runAnalytics(ctx context.Context) error {
	events := s.topic("events")
	ingest, err := s.serve(ctx, "ingest", "ingest", map[string]string{"KAFKA_TOPIC": events})
	if err != nil {
		return err
	}
	kafkaPID := readPID(filepath.Join(s.state, "kafka", "node1", "pid"))
	if _, err := s.loadgen(ctx, "ingest, batched posts (100 events/request, 8 in flight)", ingest, kafkaPID,
		"-url", ingest.url, "-c", "8", "-batch", "100"); err != nil {
		return err
	}
	ingest.stop()
	if err := s.analytics(ctx, events); err != nil {
		return err
	}
	s.report.memory(s.procs)
	s.report.machineEnd()
	s.report.print(os.Stdout)
	return s.report.write(filepath.Join(s.o.out, "report.txt"))
}

// runStall is -only stall: one ingest process warmed up with batched posts, then the
// stall steps.
func (s *suite) runStall(ctx context.Context) error {
	ingest, err := s.serve(ctx, "ingest", "ingest", map[string]string{"KAFKA_TOPIC": s.topic("events")})
	if err != nil {
		return err
	}
	kafkaPID := readPID(filepath.Join(s.state, "kafka", "node1", "pid"))
	if _, err := s.loadgen(ctx, "ingest, batched posts (100 events/request, 8 in flight)", ingest, kafkaPID,
		"-url", ingest.url, "-c", "8", "-batch", "100"); err != nil {
		return err
	}
	s.report.limit("ingest peak RSS under load (VmHWM)", float64(ingest.memKB("VmHWM"))/1024, 150, "MiB")
	if err := s.stalls(ctx, ingest); err != nil {
		return err
	}
	s.report.memory(s.procs)
	s.report.machineEnd()
	s.report.print(os.Stdout)
	return s.report.write(filepath.Join(s.o.out, "report.txt"))
}

// stalls runs the stall with ingest's defaults on ingest, stops it, and runs it again
// on a fresh ingest with GOMEMLIMIT.
func (s *suite) stalls(ctx context.Context, ingest *proc) error {
	if err := s.stall(ctx, ingest, "defaults"); err != nil {
		return err
	}
	ingest.stop()
	// The same with a Go memory limit, as a deployment with a memory budget runs it:
	// the GC then works harder instead of letting garbage double the heap.
	limited, err := s.serve(ctx, "ingest-gomemlimit", "ingest", map[string]string{"KAFKA_TOPIC": s.topic("stall"), "GOMEMLIMIT": "100MiB"})
	if err != nil {
		return err
	}
	if err := s.stall(ctx, limited, "GOMEMLIMIT=100MiB"); err != nil {
		return err
	}
	limited.stop()
	return nil
}

// loadResult is what `tide loadgen -json` prints.
type loadResult struct {
	loadgen.Result
	EndToEnd *loadgen.Summary `json:"end_to_end"`
}

// loadgen runs `tide loadgen -json` with the suite's duration and warm-up, and logs
// its result with the CPU the server (when given) and the broker used per event.
func (s *suite) loadgen(ctx context.Context, title string, server *proc, kafkaPID int, args ...string) (loadResult, error) {
	fmt.Fprintf(os.Stderr, "\n== %s\n", title)
	args = append([]string{"loadgen", "-json", "-d", s.o.dur.String(), "-warmup", s.o.warmup.String(), "-size", "1024"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "tide"), args...)
	cmd.Env = append(os.Environ(), "KAFKA_TOPIC="+s.topic("direct"))
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &out
	cpu0, k0, lg := cpuOf(server), cpuTicks(kafkaPID), time.Now()
	err := cmd.Run()
	var res loadResult
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		return res, fmt.Errorf("%s: %v (loadgen said %q)", title, errors.Join(err, jerr), out.String())
	}
	if err != nil && res.EndToEnd == nil {
		return res, fmt.Errorf("%s: %w", title, err)
	}
	line := fmt.Sprintf("%s: %.0f events/s; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; outcomes %v",
		title, res.Throughput, ms(res.Latency.P50), ms(res.Latency.P90), ms(res.Latency.P99), ms(res.Latency.Max), res.Statuses)
	if res.AckedTotal > 0 {
		var parts []string
		if server != nil {
			parts = append(parts, fmt.Sprintf("%s %.0f µs", server.name, cpuPerEvent(cpuOf(server)-cpu0, res.AckedTotal)))
		}
		if kafkaPID > 0 {
			parts = append(parts, fmt.Sprintf("Kafka broker %.0f µs", cpuPerEvent(cpuTicks(kafkaPID)-k0, res.AckedTotal)))
		}
		if len(parts) > 0 {
			line += "; CPU per event: " + strings.Join(parts, ", ")
		}
	}
	_ = lg
	if err != nil {
		line += " (error: " + err.Error() + ")"
	}
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)
	return res, nil
}

func cpuPerEvent(ticks int64, events int64) float64 {
	return float64(ticks) * 1e6 / 100 / float64(events) // USER_HZ is 100 on Linux
}

func cpuOf(p *proc) int64 {
	if p == nil {
		return 0
	}
	return cpuTicks(p.cmd.Process.Pid)
}

// cpuTicks is the user+system CPU a process used so far, in clock ticks.
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ") ".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func readPID(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// producerPerf runs kafka-producer-perf-test with ingest's guarantees (1 KiB records,
// acks=all, idempotence) on a fresh 6-partition topic and returns its records/s.
func (s *suite) producerPerf(ctx context.Context, topic string, n int64) (float64, error) {
	fmt.Fprintf(os.Stderr, "\n== kafka-producer-perf-test, %d records of 1 KiB, acks=all, enable.idempotence=true\n", n)
	if _, err := s.kafkaTool(ctx, "kafka-topics", "--bootstrap-server", s.brokers, "--create", "--topic", topic, "--partitions", "6", "--replication-factor", "1"); err != nil {
		return 0, err
	}
	out, err := s.kafkaTool(ctx, "kafka-producer-perf-test", "--bootstrap-server", s.brokers, "--topic", topic,
		"--num-records", strconv.FormatInt(n, 10), "--record-size", "1024", "--throughput", "-1",
		"--command-property", "acks=all", "enable.idempotence=true")
	if err != nil {
		return 0, err
	}
	// The last line: "N records sent, R records/sec (M MB/sec), A ms avg latency, ..."
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	f := strings.Fields(last)
	if len(f) < 4 || f[4] != "records/sec" {
		return 0, fmt.Errorf("kafka-producer-perf-test: unexpected output %q", last)
	}
	rate, err := strconv.ParseFloat(f[3], 64)
	if err != nil {
		return 0, fmt.Errorf("kafka-producer-perf-test: %q: %w", last, err)
	}
	line := "kafka-producer-perf-test: " + last
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)
	return rate, nil
}

// kafkaTool runs a Kafka CLI tool through test/infra/kafka.sh and returns its stdout.
func (s *suite) kafkaTool(ctx context.Context, name string, args ...string) (string, error) {
	tctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(tctx, "test/infra/kafka.sh", append([]string{"tool", name}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// analytics measures three consumers of the same records: tide's analytics (exactly
// once into Redis), kafka-consumer-perf-test and a bare sarama group. Each rate runs
// from its first record to its last, so no group join is counted.
func (s *suite) analytics(ctx context.Context, topic string) error {
	n, err := s.records(topic)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\n== analytics: %d records of %s into Redis, exactly once\n", n, topic)
	prefix := "bench:" + s.id + ":"
	an, err := s.serve(ctx, "analytics", "analytics", map[string]string{
		"KAFKA_TOPIC": topic, "ANALYTICS_GROUP": s.topic("analytics"), "ANALYTICS_INITIAL_OFFSET": "earliest", "REDIS_KEY_PREFIX": prefix,
	})
	if err != nil {
		return err
	}
	kafkaPID := readPID(filepath.Join(s.state, "kafka", "node1", "pid"))
	redisPID := readPID(filepath.Join(s.state, "redis", "redis.pid"))
	cpu0, k0, r0 := cpuOf(an), cpuTicks(kafkaPID), cpuTicks(redisPID)
	rate, err := s.waitCount(ctx, prefix+"analytics:events", n, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	line := fmt.Sprintf("analytics (exactly once into Redis): %d records, %.0f records/s; CPU per record: analytics %.0f µs, Redis %.0f µs, Kafka broker %.0f µs",
		n, rate, cpuPerEvent(cpuOf(an)-cpu0, n), cpuPerEvent(cpuTicks(redisPID)-r0, n), cpuPerEvent(cpuTicks(kafkaPID)-k0, n))
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)
	an.stop()

	fmt.Fprintf(os.Stderr, "\n== kafka-consumer-perf-test, %d records\n", n)
	out, err := s.kafkaTool(ctx, "kafka-consumer-perf-test", "--bootstrap-server", s.brokers, "--topic", topic,
		"--num-records", strconv.FormatInt(n, 10), "--group", s.topic("cpt"), "--timeout", "120000")
	if err != nil {
		return err
	}
	cpt, err := parseConsumerPerf(out)
	if err != nil {
		return err
	}
	line = fmt.Sprintf("kafka-consumer-perf-test: %.0f records/s (fetch.nMsg.sec: the group join left out)", cpt)
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)

	fmt.Fprintf(os.Stderr, "\n== bare sarama consumer group, %d records\n", n)
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "saramacg"), "-topic", topic, "-n", strconv.FormatInt(n, 10), "-group", s.topic("sarama"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("saramacg: %w", err)
	}
	var sc struct {
		Throughput float64 `json:"throughput"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		return fmt.Errorf("saramacg said %q: %w", raw, err)
	}
	line = fmt.Sprintf("bare sarama consumer group: %.0f records/s", sc.Throughput)
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)
	s.report.pair("analytics (exactly once into Redis) vs kafka-consumer-perf-test (records/s)", rate, cpt, 0.5)
	s.report.pair("analytics vs bare sarama consumer group (records/s)", rate, sc.Throughput, 0)
	return nil
}

// parseConsumerPerf reads fetch.nMsg.sec from kafka-consumer-perf-test's CSV output.
func parseConsumerPerf(out string) (float64, error) {
	var header []string
	for _, l := range strings.Split(out, "\n") {
		cols := strings.Split(l, ",")
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		if len(cols) > 0 && cols[0] == "start.time" {
			header = cols
			continue
		}
		if header != nil && len(cols) == len(header) {
			for i, h := range header {
				if h == "fetch.nMsg.sec" {
					return strconv.ParseFloat(cols[i], 64)
				}
			}
		}
	}
	return 0, fmt.Errorf("kafka-consumer-perf-test: no fetch.nMsg.sec in %q", out)
}

// records is the number of records in topic (the sum of its high-water marks).
func (s *suite) records(topic string) (int64, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	c, err := sarama.NewClient(strings.Split(s.brokers, ","), cfg)
	if err != nil {
		return 0, fmt.Errorf("kafka client: %w", err)
	}
	defer c.Close()
	ps, err := c.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var n int64
	for _, p := range ps {
		hw, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("high-water mark of %s/%d: %w", topic, p, err)
		}
		n += hw
	}
	return n, nil
}

// waitCount polls a Redis counter until it reaches n, and returns the rate from the
// first poll that saw it move to the one that saw it reach n.
func (s *suite) waitCount(ctx context.Context, key string, n int64, limit time.Duration) (float64, error) {
	deadline := time.Now().Add(limit)
	var t0 time.Time
	var c0 int64
	last := time.Now()
	for time.Now().Before(deadline) {
		v, err := s.rdb.Get(ctx, key).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, err
		}
		now := time.Now()
		if v > 0 && t0.IsZero() {
			t0, c0 = now, v
		}
		if v >= n {
			if d := now.Sub(t0); d > 0 && v > c0 {
				return float64(v-c0) / d.Seconds(), nil
			}
			return 0, fmt.Errorf("%s reached %d before it could be timed", key, n)
		}
		if now.Sub(last) >= time.Second {
			fmt.Fprintf(os.Stderr, "\r%d/%d records applied   ", v, n)
			last = now
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("%s did not reach %d within %s", key, n, limit)
}

// stall pauses the Kafka broker (SIGSTOP: connections stay open, nothing answers)
// while ingest is under batched load, and samples ingest's RSS: the publisher's
// buffer bounds (PRODUCER_MAX_BUFFERED, PRODUCER_MAX_BUFFERED_BYTES) must keep it
// flat, answering 503 beyond them.
func (s *suite) stall(ctx context.Context, ingest *proc, label string) error {
	fmt.Fprintf(os.Stderr, "\n== ingest (%s) while Kafka stalls (broker paused with SIGSTOP)\n", label)
	before := ingest.memKB("VmRSS")
	if _, err := exec.CommandContext(ctx, "test/infra/kafka.sh", "pause-node", "1").CombinedOutput(); err != nil {
		return fmt.Errorf("pause Kafka: %w", err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = exec.Command("test/infra/kafka.sh", "resume-node", "1").Run()
		}
	}
	defer resume()
	sctx, cancel := context.WithCancel(ctx)
	type peaks struct{ first, second int64 }
	peak := make(chan peaks, 1)
	const stallFor = 15 * time.Second
	go func() {
		var p peaks
		start := time.Now()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if rss := ingest.memKB("VmRSS"); time.Since(start) < stallFor/2 {
					p.first = max(p.first, rss)
				} else {
					p.second = max(p.second, rss)
				}
			case <-sctx.Done():
				peak <- p
				return
			}
		}
	}()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "tide"), "loadgen", "-json", "-q", "-url", ingest.url,
		"-c", "64", "-batch", "500", "-d", stallFor.String(), "-warmup", "0s", "-timeout", "20s")
	raw, _ := cmd.Output()
	cancel()
	p := <-peak
	resume()
	var res loadResult
	_ = json.Unmarshal(raw, &res)
	// Bounded means flat once the buffer is full (the second half holds no more than
	// the first, within GC noise) and under the budget.
	s.report.limit(fmt.Sprintf("ingest peak RSS during a 15 s Kafka stall (%s)", label), float64(max(p.first, p.second))/1024, 150, "MiB")
	line := fmt.Sprintf("Kafka stall, ingest with %s (64 batches of 500 events in flight): RSS %.0f MiB before, at most %.0f MiB in the first half and %.0f MiB in the second; answers %v",
		label, float64(before)/1024, float64(p.first)/1024, float64(p.second)/1024, res.Statuses)
	fmt.Fprintln(os.Stderr, line)
	s.report.note(line)
	return nil
}

// profileIngest runs ingest under profserve and takes a CPU profile under
// single-event load.
func (s *suite) profileIngest(ctx context.Context) error {
	fmt.Fprintln(os.Stderr, "\n== CPU profile of ingest under single-event load (64 in flight)")
	pprofAddr := freeAddr()
	p, err := s.start(ctx, "ingest-profiled", filepath.Join(s.bin, "profserve"), map[string]string{"TIDE_FUNCTION": "ingest", "KAFKA_TOPIC": s.topic("profiled")},
		"-addr", freeAddr(), "-pprof", pprofAddr)
	if err != nil {
		return err
	}
	defer p.stop()
	p.url = "http://" + p.args[1]
	if err := waitHTTP(ctx, p.url+"/health/readiness", 60*time.Second, func(c int) bool { return c == 200 }); err != nil {
		return err
	}
	lg := exec.CommandContext(ctx, filepath.Join(s.bin, "tide"), "loadgen", "-q", "-url", p.url, "-c", "64", "-d", "14s", "-warmup", "0s")
	if err := lg.Start(); err != nil {
		return err
	}
	defer func() { _ = lg.Wait() }()
	time.Sleep(2 * time.Second) // let connections and metadata settle before sampling
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=10")
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(s.o.out, "ingest-cpu.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// proc is one process the suite started.
type proc struct {
	name string
	cmd  *exec.Cmd
	args []string
	url  string
	log  *os.File
	hwm  int64 // VmHWM in kB, read just before it was stopped
	done chan struct{}
}

func (s *suite) start(ctx context.Context, name, bin string, env map[string]string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(s.o.out, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, args: args, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p, nil
}

// serve starts `tide serve` with TIDE_FUNCTION=function and waits until it is ready.
// Without a serve command (an older tide), it falls back to `tide run` with the other
// functions in push mode, so only the named one consumes.
func (s *suite) serve(ctx context.Context, name, function string, env map[string]string) (*proc, error) {
	addr := freeAddr()
	e := map[string]string{"TIDE_FUNCTION": function, "TIDE_HTTP_ADDR": addr, "LOG_LEVEL": "warn"}
	if s.o.batchTimeout > 0 {
		e["BATCH_TIMEOUT_MS"] = strconv.Itoa(s.o.batchTimeout)
	}
	for k, v := range env {
		e[k] = v
	}
	sub := "serve"
	if !hasCommand(filepath.Join(s.bin, "tide"), "serve") {
		sub = "run"
		for _, f := range []string{"notification", "analytics"} {
			if f != function {
				e[strings.ToUpper(f)+"_MODE"] = "push"
			}
		}
	}
	p, err := s.start(ctx, name, filepath.Join(s.bin, "tide"), e, sub)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	if err := waitHTTP(ctx, p.url+"/health/readiness", 90*time.Second, func(c int) bool { return c == 200 }); err != nil {
		return nil, fmt.Errorf("%s not ready (see %s): %w", name, p.log.Name(), err)
	}
	return p, nil
}

func hasCommand(tide, name string) bool {
	out, _ := exec.Command(tide, "help").CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// memKB reads a Vm* field of /proc/PID/status in kB (the stored peak once stopped).
func (p *proc) memKB(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		if field == "VmHWM" {
			return p.hwm
		}
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// stop records the peak RSS, then SIGTERMs the process (a graceful drain) and
// SIGKILLs it if it has not exited after 30 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	if hwm := p.memKB("VmHWM"); hwm > 0 {
		p.hwm = hwm
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(ctx context.Context, url string, limit time.Duration, ok func(int) bool) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return nil
			}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s not ready within %s", url, limit)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// machineInfo is what the report says of the machine.
func machineInfo() (cores int, memGiB float64) {
	cores = runtime.NumCPU()
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			memGiB = kb / (1 << 20)
		}
	}
	return cores, memGiB
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
