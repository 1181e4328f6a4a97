package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/test/itest"
	"function/test/verify"
)

// tideBin is the tide binary the scenarios run, built once by TestMain.
var tideBin string

// reports collects the scenarios' reports for the summary TestMain prints.
var (
	reportsMu sync.Mutex
	reports   []*verify.Report
)

func TestMain(m *testing.M) {
	if os.Getenv("TIDE_VERIFY") != "1" {
		os.Exit(m.Run()) // every scenario skips
	}
	dir, err := os.MkdirTemp("", "tide-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tideBin = filepath.Join(dir, "tide")
	build := exec.Command(goTool(), "build", "-o", tideBin, "function/cmd/tide")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tide:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := summarize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// summarize prints every scenario's line and the totals, over this run and the
// earlier ones recorded in TIDE_VERIFY_REPORT.
func summarize() error {
	reportsMu.Lock()
	defer reportsMu.Unlock()
	all := reports
	path := os.Getenv("TIDE_VERIFY_REPORT")
	if path != "" {
		var prev verify.Suite
		if b, err := os.ReadFile(path); err == nil {
			if err := json.Unmarshal(b, &prev); err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			all = append(prev.Scenarios, all...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	suite := verify.NewSuite(all...)
	fmt.Println()
	suite.Lines(os.Stdout)
	if path != "" {
		return suite.WriteJSON(path)
	}
	return nil
}

// needScenarios skips unless TIDE_VERIFY=1 (see the package documentation).
func needScenarios(t *testing.T) {
	t.Helper()
	if os.Getenv("TIDE_VERIFY") != "1" {
		t.Skip("fault scenarios run with TIDE_VERIFY=1 against private Kafka and Redis: make verify / make verify-all")
	}
	itest.Kafka(t)
	itest.Redis(t)
}

// proc is one `tide serve` process.
type proc struct {
	t       *testing.T
	name    string
	addr    string
	env     []string
	logPath string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	state *os.ProcessState
}

// system is one scenario's pipeline: its names, its environment and its processes.
type system struct {
	t       *testing.T
	name    string
	brokers []string
	env     []string
	dir     string
	procs   []*proc
	// Groups are the consumer groups, for the verifier's lag check.
	notifyGroup, analyticsGroup string
}

// newSystem prepares a pipeline with its own topic, groups and key prefix.
func newSystem(t *testing.T, extraEnv ...string) *system {
	t.Helper()
	name := itest.UniqueName(t, "faults")
	s := &system{
		t: t, name: name, brokers: strings.Split(itest.Kafka(t), ","), dir: t.TempDir(),
		notifyGroup: name + "-notifications", analyticsGroup: name + "-analytics",
	}
	if d := os.Getenv("TIDE_VERIFY_LOGS"); d != "" {
		// Keep the processes' logs for a post-mortem.
		s.dir = filepath.Join(d, name)
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.env = append(os.Environ(),
		"KAFKA_BROKERS="+itest.Kafka(t),
		"REDIS_ADDR="+itest.Redis(t),
		"REDIS_PASSWORD="+itest.RedisPassword(),
		"KAFKA_TOPIC="+name,
		"KAFKA_DLQ_TOPIC="+name+"-dlq",
		"TOPIC_PARTITIONS=6",
		"REDIS_KEY_PREFIX="+name+":",
		"NOTIFICATION_GROUP="+s.notifyGroup,
		"ANALYTICS_GROUP="+s.analyticsGroup,
		"LOG_FORMAT=text",
		"LOG_LEVEL=info",
		"TIDE_FAULT=",
	)
	s.env = append(s.env, extraEnv...)
	t.Cleanup(func() {
		for _, p := range s.procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range s.procs {
				p.dumpLog(40)
			}
		}
	})
	return s
}

// start runs `tide serve` for function (ingest, notification, analytics, or
// "reader": both read APIs in push mode, consuming nothing) and waits until it is
// ready.
func (s *system) start(name, function string, env ...string) *proc {
	s.t.Helper()
	p := s.spawn(name, function, env...)
	p.waitReady(90 * time.Second)
	return p
}

// spawn runs `tide serve` without waiting for readiness.
func (s *system) spawn(name, function string, env ...string) *proc {
	s.t.Helper()
	p := &proc{t: s.t, name: name, addr: freeAddr(s.t), logPath: filepath.Join(s.dir, name+".log")}
	p.env = append(append([]string(nil), s.env...), "TIDE_HTTP_ADDR="+p.addr)
	if function == "reader" {
		p.env = append(p.env, "TIDE_FUNCTION=notification,analytics", "NOTIFICATION_MODE=push", "ANALYTICS_MODE=push")
	} else {
		p.env = append(p.env, "TIDE_FUNCTION="+function)
	}
	p.env = append(p.env, env...)
	s.procs = append(s.procs, p)
	p.launch()
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (p *proc) url() string { return "http://" + p.addr }

// launch starts the process (again), appending to its log.
func (p *proc) launch(extraEnv ...string) {
	p.t.Helper()
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(log, "---- start %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(extraEnv, " "))
	cmd := exec.Command(tideBin, "serve")
	cmd.Env = append(append([]string(nil), p.env...), extraEnv...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.state = cmd, done, nil
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
}

// exited returns a channel closed when the current process ends.
func (p *proc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *proc) exitState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// waitReady polls the readiness probe until it answers 200.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-p.exited():
			p.dumpLog(40)
			p.t.Fatalf("%s exited before it was ready: %v", p.name, p.exitState())
		default:
		}
		if resp, err := client.Get(p.url() + "/health/readiness"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.dumpLog(40)
			p.t.Fatalf("%s not ready within %s", p.name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signal sends sig to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

// waitExit waits for the process to end and returns how it ended.
func (p *proc) waitExit(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.exited():
		return p.exitState()
	case <-time.After(timeout):
		p.dumpLog(40)
		p.t.Fatalf("%s still running after %s", p.name, timeout)
		return nil
	}
}

// kill ends the process at once if it still runs (cleanup).
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// dumpLog shows the last lines of the process's log in the test output.
func (p *proc) dumpLog(lines int) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var all []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	p.t.Logf("last lines of %s (%s):\n%s", p.name, p.logPath, strings.Join(all, "\n"))
}

// killedBySIGKILL reports whether st is a death by SIGKILL.
func killedBySIGKILL(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// verifier starts the verifier against the system: ingest at in, the read APIs at
// read, the topic read back and both groups' lag watched.
func (s *system) verifier(ctx context.Context, scenario string, in, read *proc, keys, perKey int, rate float64) *verify.Run {
	s.t.Helper()
	v, err := verify.Start(ctx, verify.Config{
		Scenario: scenario, URL: in.url(), ReadURL: read.url(),
		Keys: keys, EventsPerKey: perKey, Rate: rate, MinAcked: 1000,
		RetryFor: 2 * time.Minute, Settle: 3 * time.Minute,
		Brokers: s.brokers, Topic: s.name, Groups: []string{s.notifyGroup, s.analyticsGroup},
		Log: slog.New(slog.NewTextHandler(testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	go logProgress(s.t, v)
	return v
}

// logProgress logs the verifier's progress every 10 s until it is done, so a
// stall shows in the test log with its time.
func logProgress(t *testing.T, v *verify.Run) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-v.Done():
			return
		case <-tick.C:
			p := v.Progress()
			t.Logf("+%.0fs: %d sent, %d acknowledged", time.Since(start).Seconds(), p.Sent, p.Acked)
		}
	}
}

// finish waits for the verifier's report, records it and fails the test on any
// loss, duplicate or reordering.
func finish(t *testing.T, v *verify.Run) *verify.Report {
	t.Helper()
	rep, err := v.Wait()
	if rep != nil {
		var b strings.Builder
		rep.Summary(&b)
		t.Logf("verifier:\n%s%s", b.String(), rep.Counts.Line(rep.Scenario))
		reportsMu.Lock()
		reports = append(reports, rep)
		reportsMu.Unlock()
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.Reordered != 0 {
		t.Fatalf("lost=%d duplicated=%d reordered=%d, want all 0", rep.Lost, rep.Duplicated, rep.Reordered)
	}
	return rep
}

// awaitAcked waits until the verifier has n acknowledged events (or is done).
func awaitAcked(t *testing.T, v *verify.Run, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for v.Progress().Acked < n {
		select {
		case <-v.Done():
			t.Fatalf("the verifier finished before %d events were acknowledged", n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events acknowledged within %s, want %d", v.Progress().Acked, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, timeout, desc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// infra runs test/infra/SCRIPT with args against this run's private instances.
func infra(t *testing.T, script string, args ...string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "infra", script)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	t.Logf("%s %s (%s)", script, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
}

// kafkaClient is a sarama client of the scenario's cluster.
func (s *system) kafkaClient() sarama.Client {
	s.t.Helper()
	sc, err := kafka.NewConfig(config.Kafka{ClientID: "tide-faults", Version: "3.9.0", DialTimeoutMS: 5000})
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := sarama.NewClient(s.brokers, sc)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// testWriter sends the verifier's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
