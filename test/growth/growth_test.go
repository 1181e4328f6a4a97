// Package growth_test grows the events topic's partitions while events flow through
// the whole pipeline (ingest → Kafka → notification and analytics) on a real Kafka
// and Redis, and proves with the verifier (test/verify: numbered events per key,
// each key its own notification channel, the topic read back) that no key's events
// were reordered, lost or duplicated.
//
// TestGrowthUnderLoad (in `make test`) lets the partition manager decide: a
// sustained rate grows the topic 4 → 8 once. TestGrowthUnderLoadLong (`make
// test-growth-long`) grows it 4 → 6 → 8 → 12 → 16 under heavier load and reports
// the pauses.
package growth_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"function"
	"function/shared/config"
	"function/shared/growth"
	"function/shared/kafka"
	"function/shared/metrics"
	"function/shared/partitions"
	"function/test/itest"
	"function/test/pipelinetest"
	"function/test/verify"
)

// env is a pipeline whose ingest takes part in partition coordination, with the
// manager-side clients.
type env struct {
	p      *pipelinetest.Pipeline
	coord  growth.Coordination
	client sarama.Client
	admin  sarama.ClusterAdmin
	rdb    *redis.Client
	groups []string
}

func start(t *testing.T) *env {
	t.Helper()
	itest.Kafka(t)
	itest.Redis(t)
	coord := growth.Coordination{Enabled: true, KeyPrefix: itest.UniqueName(t, "partitions") + ":", HeartbeatMS: 500}
	p := pipelinetest.Start(t, func(o *function.Options) {
		o.Ingest.Redis = o.Notification.Redis
		o.Ingest.Coordination = coord
	})
	e := &env{p: p, coord: coord, groups: []string{p.Opts.Notification.Consumer.Group, p.Opts.Analytics.Consumer.Group}}
	base, err := kafka.NewConfig(p.Opts.Ingest.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	if e.client, err = sarama.NewClient(p.Brokers, base); err != nil {
		t.Fatal(err)
	}
	if e.admin, err = sarama.NewClusterAdminFromClient(e.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.admin.Close() })
	e.rdb = redis.NewClient(&redis.Options{Addr: p.Redis.Addr, Password: p.Redis.Password})
	t.Cleanup(func() { e.rdb.Close() })
	return e
}

// verifyLoad starts the verifier: keys × perKey numbered events at rate per second.
func (e *env) verifyLoad(t *testing.T, keys, perKey int, rate float64) (*verify.Run, verify.Config) {
	t.Helper()
	cfg := verify.Config{
		Scenario: "growth", URL: e.p.URL, Keys: keys, EventsPerKey: perKey, Rate: rate,
		RunID: itest.UniqueName(t, "g"), Brokers: e.p.Brokers, Topic: e.p.Topic(), Groups: e.groups,
	}
	run, err := verify.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return run, cfg
}

// keys are the partition keys the verifier sends under ("RUN-kNNN", see test/verify).
func keys(cfg verify.Config) []string {
	out := make([]string, cfg.Keys)
	for k := range out {
		out[k] = fmt.Sprintf("%s-k%03d", cfg.RunID, k)
	}
	return out
}

// partition is where tide's partitioner puts key on n partitions.
func (e *env) partition(t *testing.T, key string, n int) int32 {
	t.Helper()
	part := kafka.ProducerConfig(sarama.NewConfig(), config.Producer{BatchSize: 1, BatchTimeoutMS: 1}).Producer.Partitioner(e.p.Topic())
	p, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(n))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// remapped checks that the growth from → to moved some keys to other partitions,
// or the run would prove nothing about order across a remap, and that ingest wrote
// to every new partition a key maps to: it picked up the new count without a
// restart (its own metadata refresh is a minute away).
func (e *env) remapped(t *testing.T, cfg verify.Config, from, to int) {
	t.Helper()
	high, _, err := growth.Marks(e.client, e.p.Topic())
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, k := range keys(cfg) {
		before, after := e.partition(t, k, from), e.partition(t, k, to)
		if before != after {
			moved++
		}
		if after >= int32(from) && high[after] == 0 {
			t.Errorf("key %s maps to new partition %d, but nothing was written there: %v", k, after, high)
		}
	}
	if moved == 0 {
		t.Fatalf("no key changed partition from %d to %d partitions: the run proves nothing", from, to)
	}
}

// during checks that events were acknowledged both before a change and after it.
func during(t *testing.T, cfg verify.Config, before, after int64) {
	t.Helper()
	total := int64(cfg.Keys * cfg.EventsPerKey)
	if before == 0 || after >= total {
		t.Fatalf("%d of %d events acknowledged before the growth, %d after it ended: the growth was not under load", before, total, after)
	}
}

// syncBuffer collects the manager's JSON log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(msg string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"msg":"`+msg+`"`) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestGrowthUnderLoad runs the partition manager against live load: 16 keys at 400
// events/s in all on 4 partitions sized for 25/s each, so the planner grows the topic
// to its ceiling of 8 once the need lasted half a second. The change holds the
// publishers, waits for both groups, grows and releases; the load goes on under the
// new mapping. The verifier must find every acknowledged event notified once, in
// order, counted once, and in the topic.
func TestGrowthUnderLoad(t *testing.T) {
	e := start(t)
	var logs syncBuffer
	cfg := growth.ManagerConfig{
		Kafka: e.p.Opts.Ingest.Kafka, Redis: e.p.Redis, Coordination: e.coord, Groups: e.groups,
		Config: partitions.Config{
			Profile: "quiet", Max: 8, SustainCount: 3, SustainMS: 500, CooldownMS: 600000, DrainMS: 120000,
			EventsPerPartition: map[string]float64{"quiet": 25},
		},
		SampleIntervalMS: 250, RateWindowMS: 2000, HoldTimeoutMS: 5000, DrainTimeoutMS: 10000,
		AssignTimeoutMS: 60000, MinReplicas: 1, Nudge: true,
	}
	mgr, err := growth.NewManager(cfg, e.client, e.admin, e.rdb, slog.New(slog.NewJSONHandler(&logs, nil)), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- mgr.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
	}()

	run, vcfg := e.verifyLoad(t, 16, 240, 400)
	var ch *growth.Change
	var before int64
	e.p.Eventually(60*time.Second, "the manager grew the topic", func() (bool, string) {
		st := mgr.Status()
		if !st.Growing && st.LastChange == nil {
			before = run.Progress().Acked
		}
		if st.LastChange != nil {
			ch = st.LastChange
			return true, ""
		}
		desc := "no decision yet"
		if st.LastDecision != nil {
			desc = fmt.Sprintf("%s %q: %s", st.LastDecision.Action, st.LastDecision.Reason, st.LastDecision.Detail)
		}
		return false, desc
	})
	after := run.Progress().Acked
	rep, err := run.Wait()
	if rep != nil {
		var sum bytes.Buffer
		rep.Summary(&sum)
		t.Logf("verifier:\n%s", sum.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("change: %s", strings.Join(logs.lines("partition change"), "\n"))
	for _, line := range logs.lines("partition decision") {
		if strings.Contains(line, `"action":"grow"`) {
			t.Logf("decision: %s", line)
		}
	}
	t.Logf("pause %s (held %s, drained %s, grown %s); groups took the new partitions %s after the release", ch.Pause, ch.Held, ch.Drained, ch.Grown, ch.Assigned)
	if ch.Outcome != growth.OutcomeGrown || ch.From != 4 || ch.To != 8 {
		t.Fatalf("change %+v, want grown 4 → 8", *ch)
	}
	during(t, vcfg, before, after)
	e.remapped(t, vcfg, 4, 8)
	if ch.Assigned == 0 {
		t.Errorf("the groups did not take the new partitions within %s", config.Millis(cfg.AssignTimeoutMS))
	}
}

// TestGrowthUnderLoadLong grows the topic four times under heavier load (48 keys,
// 1600 events/s) and reports the pause of each growth (min, median, max). It takes
// about a minute; run it with `make test-growth-long`.
func TestGrowthUnderLoadLong(t *testing.T) {
	if os.Getenv("TIDE_GROWTH_LONG") == "" {
		t.Skip("long growth test: set TIDE_GROWTH_LONG=1 (make test-growth-long)")
	}
	e := start(t)
	g := growth.NewGrower(e.rdb, e.coord, e.client, e.admin, e.p.Topic(), growth.GrowOptions{
		Groups: e.groups, HoldTimeout: 5 * time.Second, DrainTimeout: 10 * time.Second,
		AssignTimeout: time.Minute, MinReplicas: 1, Nudge: true, Logger: pipelinetest.Logger(),
	})
	run, vcfg := e.verifyLoad(t, 48, 1000, 1600)
	var pauses []time.Duration
	var before, after int64
	for _, target := range []int{6, 8, 12, 16} {
		settle := time.Now()
		e.p.Eventually(time.Minute, "load between growths", func() (bool, string) { return time.Since(settle) > 3*time.Second, "" })
		if before == 0 {
			before = run.Progress().Acked
		}
		ch := g.Grow(context.Background(), target)
		if ch.Outcome != growth.OutcomeGrown || ch.To != target {
			t.Fatalf("change %+v, want grown to %d", ch, target)
		}
		t.Logf("grew %d → %d: pause %s (held %s, drained %s, grown %s); groups took the new partitions %s after", ch.From, ch.To, ch.Pause, ch.Held, ch.Drained, ch.Grown, ch.Assigned)
		pauses = append(pauses, ch.Pause)
	}
	after = run.Progress().Acked
	rep, err := run.Wait()
	if rep != nil {
		var sum bytes.Buffer
		rep.Summary(&sum)
		t.Logf("verifier:\n%s", sum.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pauses)
	t.Logf("pause over %d growths: min %s, median %s, max %s", len(pauses), pauses[0], (pauses[(len(pauses)-1)/2]+pauses[len(pauses)/2])/2, pauses[len(pauses)-1])
	during(t, vcfg, before, after)
	e.remapped(t, vcfg, 4, 16)
}
