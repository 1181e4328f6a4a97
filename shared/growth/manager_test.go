package growth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"function/shared/config"
	"function/shared/metrics"
	"function/shared/partitions"
)

// syncBuffer is a bytes.Buffer safe for the manager's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// records returns the JSON log records with message msg.
func (s *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// TestManagerLogsAndCountsEveryDecisionAndGrows drives the manager's step by hand:
// each observation yields one structured record with its inputs and one count, a
// sustained rate grows the topic through the protocol, and observations during the
// growth are "in progress".
func TestManagerLogsAndCountsEveryDecisionAndGrows(t *testing.T) {
	c := newCluster(t, 1)
	_, rdb := newRedis(t)
	// Stale refreshes keep the replica held for a few heartbeats after the release,
	// so the growth is surely still under way at the third observation.
	h := &fakeHolder{c: c, t: t, stale: 3}
	join(t, rdb, c.topic, h)
	const group = "g"
	c.commit(t, group, map[int32]int64{0: 0})

	cfg := ManagerConfig{
		Config: partitions.Config{
			Profile: "quiet", Max: 2, SustainCount: 1, SustainMS: 0, CooldownMS: 60000, DrainMS: 1000,
			EventsPerPartition: map[string]float64{"quiet": 10},
		},
		Coordination: fast, Groups: []string{group}, SampleIntervalMS: 100, RateWindowMS: 1000,
		HoldTimeoutMS: 1000, DrainTimeoutMS: 2000, AssignTimeoutMS: 0, MinReplicas: 1,
	}
	cfg.Topic = c.topic
	cfg.Partitions, cfg.ReplicationFactor, cfg.DialTimeoutMS = 1, 1, 5000
	var logs syncBuffer
	m := metrics.New()
	mgr, err := NewManager(cfg, c.client, c.admin, rdb, slog.New(slog.NewJSONHandler(&logs, nil)), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	d, err := mgr.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Taken() || d.Reason != partitions.ReasonBelowBaseline {
		t.Fatalf("first decision %s %q (%s), want a hold below baseline: no rate yet", d.Action, d.Reason, d.Detail)
	}
	// 200 records the group has processed: a rate of hundreds per second, far more
	// than one partition at 10 events/s, and nothing to drain.
	c.produce(t, 0, 200)
	c.commit(t, group, map[int32]int64{0: 200})
	// Let time pass, as between two samples: the rate is records over elapsed time.
	time.Sleep(200 * time.Millisecond)
	if d, err = mgr.Observe(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.Taken() || d.Target != 2 || d.ProduceRatePerSec <= 20 {
		t.Fatalf("second decision %s → %d at %.0f ev/s (%s), want a growth to 2", d.Action, d.Target, d.ProduceRatePerSec, d.Detail)
	}
	if d, err = mgr.Observe(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Reason != partitions.ReasonInProgress || !d.InProgress {
		t.Fatalf("decision during the growth: %q, want %q", d.Reason, partitions.ReasonInProgress)
	}
	eventually(t, 10*time.Second, "growth finished", func() bool { return !mgr.Growing() })
	if n := c.count(t); n != 2 {
		t.Fatalf("topic has %d partitions, want 2", n)
	}

	decisions := logs.records(t, "partition decision")
	if len(decisions) != 3 {
		t.Fatalf("%d decision records for 3 observations", len(decisions))
	}
	grow := decisions[1]
	for _, k := range []string{"at", "action", "current", "target", "reason", "detail", "profile", "produce_rate_per_sec", "partitions", "in_progress", "lag"} {
		if _, ok := grow[k]; !ok {
			t.Errorf("decision record lacks %q: %v", k, grow)
		}
	}
	if grow["action"] != "grow" || grow["profile"] != "quiet" || grow["current"] != 1.0 || grow["target"] != 2.0 {
		t.Errorf("growth record %v", grow)
	}
	if lag, _ := grow["lag"].(map[string]any); lag[group] != 0.0 {
		t.Errorf("growth record's lag %v, want the group's", grow["lag"])
	}
	changes := logs.records(t, "partition change")
	if len(changes) != 1 || changes[0]["outcome"] != OutcomeGrown || changes[0]["to"] != 2.0 {
		t.Fatalf("change records %v, want one growth to 2", changes)
	}
	if got := testutil.ToFloat64(m.PartitionDecision.WithLabelValues(partitions.ActionGrow, partitions.ReasonSustained)); got != 1 {
		t.Errorf("grow decisions counted %g, want 1", got)
	}
	if got := testutil.ToFloat64(m.PartitionDecision.WithLabelValues(partitions.ActionHold, partitions.ReasonBelowBaseline)); got != 1 {
		t.Errorf("below-baseline holds counted %g, want 1", got)
	}
	if n := testutil.CollectAndCount(m.PartitionPause); n != 1 {
		t.Errorf("pause histogram has %d series, want the grown one", n)
	}
	if st := mgr.Status(); st.LastChange == nil || st.LastChange.Outcome != OutcomeGrown || st.LastDecision == nil {
		t.Errorf("status %+v lacks the last decision or change", st)
	}
}

// The manager's configuration refuses a negative REDIS_DB, as the functions' do:
// go-redis would quietly use database 0.
func TestManagerConfigRefusesANegativeRedisDB(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:9092")
	t.Setenv("REDIS_ADDR", "127.0.0.1:6379")
	for db, bad := range map[string]bool{"0": false, "3": false, "-1": true} {
		t.Setenv("REDIS_DB", db)
		var cfg ManagerConfig
		err := config.Load("", &cfg)
		if bad != (err != nil && strings.Contains(err.Error(), "REDIS_DB")) {
			t.Errorf("REDIS_DB=%s: %v", db, err)
		}
	}
}
