// Package itest is the glue between Go integration tests and the throwaway
// Kafka and Redis that test/infra starts.
//
// The contract is environment variables, so the same tests run under CI,
// under `eval "$(test/infra/up.sh)"` on a laptop, or against any broker:
//
//	KAFKA_BROKERS  comma-separated host:port list (test/infra/kafka.sh start)
//	KAFKA_LIBS     directory of the Kafka jars, for the CLI tools
//	REDIS_ADDR     host:port (test/infra/redis.sh start)
//	REDIS_PASSWORD optional
//	TIDE_STATE_DIR where test/infra keeps kafka.env / redis.env
//	CI             when "true", missing infrastructure fails the test instead
//	               of skipping it, so CI can never pass by testing nothing.
package itest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ToolTimeout bounds each KafkaTool and Kcat call. A JVM tool starts in
// about two seconds on a 2-core machine; perf tests should pass a larger one
// through their own arguments (e.g. --num-records) rather than raise this.
var ToolTimeout = 2 * time.Minute

// InCI reports whether missing infrastructure is an error (CI=true) rather
// than a reason to skip.
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// Missing skips the test with why and how to fix it, or fails it when
// running in CI (see InCI).
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (CI=true, so this is an error, not a skip)", why)
	}
	t.Skip(why)
}

const startHint = "start it with `eval \"$(test/infra/up.sh)\"`, " +
	"or `test/infra/kafka.sh start` / `test/infra/redis.sh start` and export the line they print"

// Kafka returns the bootstrap brokers from KAFKA_BROKERS
// ("127.0.0.1:PORT[,...]"). When unset it skips the test, or fails it
// when CI=true, with a hint to run test/infra/kafka.sh start.
func Kafka(t testing.TB) string {
	t.Helper()
	b := strings.TrimSpace(os.Getenv("KAFKA_BROKERS"))
	if b == "" {
		Missing(t, "KAFKA_BROKERS is not set: no Kafka for this integration test; "+startHint)
	}
	return b
}

// Redis returns the Redis address from REDIS_ADDR ("127.0.0.1:PORT"). When
// unset it skips the test, or fails it when CI=true, with a hint to run
// test/infra/redis.sh start. A password, if any, is in RedisPassword.
func Redis(t testing.TB) string {
	t.Helper()
	a := strings.TrimSpace(os.Getenv("REDIS_ADDR"))
	if a == "" {
		Missing(t, "REDIS_ADDR is not set: no Redis for this integration test; "+startHint)
	}
	return a
}

// RedisPassword returns REDIS_PASSWORD, empty when Redis has no auth.
func RedisPassword() string { return os.Getenv("REDIS_PASSWORD") }

// StateDir is where test/infra keeps its state and env files:
// $TIDE_STATE_DIR, else $XDG_RUNTIME_DIR/tide-infra, else /tmp/tide-infra.
func StateDir() string {
	if d := os.Getenv("TIDE_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "tide-infra")
	}
	return filepath.Join(os.TempDir(), "tide-infra")
}

// readEnvFile parses the KEY=VALUE lines test/infra writes (values are bare
// or single-quoted).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`)
		}
		out[k] = v
	}
	return out, sc.Err()
}

// kafkaLibs finds the Kafka jars: $KAFKA_LIBS, else KAFKA_LIBS from the
// state dir's kafka.env.
func kafkaLibs() (string, error) {
	libs := os.Getenv("KAFKA_LIBS")
	if libs == "" {
		envFile := filepath.Join(StateDir(), "kafka.env")
		kv, err := readEnvFile(envFile)
		if err != nil {
			return "", fmt.Errorf("KAFKA_LIBS is not set and %s is unreadable: %w", envFile, err)
		}
		libs = kv["KAFKA_LIBS"]
		if libs == "" {
			return "", fmt.Errorf("KAFKA_LIBS is not set and %s has no KAFKA_LIBS line", envFile)
		}
	}
	jars, _ := filepath.Glob(filepath.Join(libs, "kafka-clients-*.jar"))
	if len(jars) == 0 {
		return "", fmt.Errorf("Kafka libs dir %s has no kafka-clients jar; run test/infra/kafka.sh fetch", libs)
	}
	return libs, nil
}

// infraScript locates test/infra/NAME: walking up from the working directory
// (go test runs in the package dir), then next to this source file.
func infraScript(name string) (string, error) {
	rel := filepath.Join("test", "infra", name)
	if dir, err := os.Getwd(); err == nil {
		for {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		p := filepath.Join(filepath.Dir(file), "..", "infra", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cannot find %s above %s", rel, mustGetwd())
}

func mustGetwd() string {
	d, _ := os.Getwd()
	return d
}

// KafkaTool runs a Kafka CLI tool from the fetched jars by its usual script
// name, e.g. KafkaTool(t, "kafka-topics", "--bootstrap-server", b, "--list").
// Known names include kafka-topics, kafka-consumer-groups,
// kafka-producer-perf-test, kafka-consumer-perf-test, kafka-delete-records,
// kafka-get-offsets, kafka-console-consumer, kafka-console-producer,
// kafka-configs, kafka-transactions (the full table is tool_classes in
// test/infra/kafka.sh). It returns the tool's stdout; a non-zero exit or
// ToolTimeout is an error that carries stderr. When the jars or java are
// missing the test is skipped, or failed under CI=true.
func KafkaTool(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	libs, err := kafkaLibs()
	if err != nil {
		Missing(t, "no Kafka CLI tools: "+err.Error()+"; "+startHint)
	}
	if _, err := exec.LookPath("java"); err != nil {
		Missing(t, "no java on PATH for the Kafka CLI tools; test/infra/kafka.sh fetch installs it")
	}
	script, err := infraScript("kafka.sh")
	if err != nil {
		Missing(t, "no Kafka CLI tools: "+err.Error())
	}
	cmd := []string{script, "tool", name}
	return run(t, nil, append([]string{"KAFKA_LIBS=" + libs}, os.Environ()...), "bash", append(cmd, args...)...)
}

// Kcat runs kcat (the librdkafka CLI) with args, feeding it stdin (nil for
// none), and returns its stdout; a non-zero exit or ToolTimeout is an error
// that carries stderr. Example: Kcat(t, []byte("k:v\n"), "-b", b, "-P",
// "-t", topic, "-K:"). When kcat is not installed the test is skipped, or
// failed under CI=true (test/infra/kafka.sh start installs it).
func Kcat(t testing.TB, stdin []byte, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("kcat")
	if err != nil {
		if bin, err = exec.LookPath("kafkacat"); err != nil {
			Missing(t, "kcat is not installed: apt-get install kcat (test/infra/kafka.sh start does it)")
		}
	}
	return run(t, stdin, nil, bin, args...)
}

func run(t testing.TB, stdin []byte, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = env
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s (%s)", filepath.Base(bin), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", ToolTimeout, err)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstderr:\n%s",
			filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

var nameSeq atomic.Uint64
var runID = func() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// UniqueName returns a Kafka topic / consumer group / Redis key prefix that
// no other test or earlier run against the same broker uses:
// prefix-<test name>-<run id>-<seq>, restricted to [a-z0-9-] (legal for
// topics, and never mixing '.' and '_', which Kafka treats as colliding).
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	clean := func(s string, max int) string {
		var b strings.Builder
		dash := false
		for _, r := range strings.ToLower(s) {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
				b.WriteRune(r)
				dash = false
			} else if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
			if b.Len() >= max {
				break
			}
		}
		return strings.Trim(b.String(), "-")
	}
	parts := []string{}
	for _, p := range []string{clean(prefix, 40), clean(t.Name(), 80)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	parts = append(parts, runID, strconv.FormatUint(nameSeq.Add(1), 10))
	return strings.Join(parts, "-")
}
