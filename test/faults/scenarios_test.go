package faults

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/fault"
)

// Load of every scenario: keys x perKey events (at least 1000 must be acknowledged),
// paced so that the sending spans the fault. TIDE_VERIFY_LOAD=N multiplies the
// events and the rate by N (same duration; at most 1000 events per key).
const keys = 24

var perKey, load = scaledLoad()

func scaledLoad() (int, float64) {
	n, err := strconv.Atoi(os.Getenv("TIDE_VERIFY_LOAD"))
	if err != nil || n < 1 {
		n = 1
	}
	pk := min(50*n, 1000)
	return pk, float64(pk) / 50
}

// TestConsumerSIGKILL kills each consumer three times at a different point of its
// work, by its own hand (TIDE_FAULT), and starts it again at once:
//
//   - after its Redis write and before the offset is marked (notification after
//     storing a notification, analytics after applying a batch with its offset);
//   - after the handler returned, before the offset is marked (the runner);
//   - with offsets marked, just before they are committed to Kafka.
//
// Each restart must resume without losing what was not committed and without
// repeating what was written to Redis.
func TestConsumerSIGKILL(t *testing.T) {
	needScenarios(t)
	s := newSystem(t)
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	plans := []struct {
		name, function string
		faults         []string
	}{
		{"notification", "notification", []string{fault.NotificationAfterPut + ":150", fault.ConsumerAfterHandle + ":100", fault.ConsumerBeforeCommit + ":2"}},
		{"analytics", "analytics", []string{fault.AnalyticsAfterApply + ":6", fault.ConsumerAfterHandle + ":6", fault.ConsumerBeforeCommit + ":2"}},
	}
	procs := make([]*proc, len(plans))
	for i, pl := range plans {
		procs[i] = s.start(pl.name, pl.function, fault.Env+"="+pl.faults[0])
	}
	ctx := context.Background()
	v := s.verifier(ctx, "consumer-sigkill", in, read, keys, perKey, 40*load)

	var wg sync.WaitGroup
	errs := make([]error, len(plans))
	for i, pl := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = superviseKills(t, procs[i], pl.faults)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	finish(t, v)
}

// superviseKills waits for p to die by SIGKILL once per armed fault, restarting it
// after each death armed with the next one (the last restart unarmed).
func superviseKills(t *testing.T, p *proc, faults []string) error {
	for i, f := range faults {
		select {
		case <-p.exited():
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("%s: fault %s did not fire within 2 minutes", p.name, f)
		}
		if st := p.exitState(); !killedBySIGKILL(st) {
			return fmt.Errorf("%s armed with %s ended with %v, want death by SIGKILL", p.name, f, st)
		}
		next := ""
		if i+1 < len(faults) {
			next = faults[i+1]
		}
		t.Logf("%s killed at %s; starting it again (armed: %q)", p.name, f, next)
		p.launch(fault.Env + "=" + next)
	}
	return nil
}

// TestConsumerScale grows both consumer groups from one instance to three under
// load, then shrinks them back to one with SIGTERM: two rounds of rebalances in each
// group, with partitions moving between live members.
func TestConsumerScale(t *testing.T) {
	needScenarios(t)
	s := newSystem(t)
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	s.start("notification-1", "notification")
	s.start("analytics-1", "analytics")
	client := s.kafkaClient()
	v := s.verifier(context.Background(), "consumer-scale", in, read, keys, perKey, 50*load)

	awaitAcked(t, v, atFraction(0.25), 2*time.Minute)
	var extra []*proc
	for i := 2; i <= 3; i++ {
		extra = append(extra, s.start(fmt.Sprintf("notification-%d", i), "notification"), s.start(fmt.Sprintf("analytics-%d", i), "analytics"))
	}
	awaitMembers(t, client, s.notifyGroup, 3)
	awaitMembers(t, client, s.analyticsGroup, 3)
	t.Logf("scaled to 3 consumers per group at %d acknowledged", v.Progress().Acked)

	awaitAcked(t, v, atFraction(0.66), 2*time.Minute)
	for _, p := range extra {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range extra {
		if st := p.waitExit(time.Minute); !st.Success() {
			t.Fatalf("%s ended with %v after SIGTERM, want a clean exit", p.name, st)
		}
	}
	awaitMembers(t, client, s.notifyGroup, 1)
	awaitMembers(t, client, s.analyticsGroup, 1)
	t.Logf("scaled back to 1 consumer per group at %d acknowledged", v.Progress().Acked)
	finish(t, v)
}

// awaitMembers waits until group has n members.
func awaitMembers(t *testing.T, client sarama.Client, group string, n int) {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	// An admin made from a client closes the client when closed: leave it open.
	eventually(t, time.Minute, fmt.Sprintf("group %s with %d members", group, n), func() (bool, string) {
		gs, err := admin.DescribeConsumerGroups([]string{group})
		if err != nil || len(gs) == 0 {
			return false, fmt.Sprint(err)
		}
		return len(gs[0].Members) == n && gs[0].State == "Stable", fmt.Sprintf("%d members, %s", len(gs[0].Members), gs[0].State)
	})
}

// TestBrokerRestart restarts the (single) Kafka broker while ingest produces and the
// consumers consume: ingest must refuse (not lose) what it cannot store, and the
// consumers must resume where they committed.
func TestBrokerRestart(t *testing.T) {
	needScenarios(t)
	s := newSystem(t)
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	s.start("notification", "notification")
	s.start("analytics", "analytics")
	v := s.verifier(context.Background(), "broker-restart", in, read, keys, perKey, 50*load)

	awaitAcked(t, v, atFraction(0.25), 2*time.Minute)
	infra(t, "kafka.sh", "restart")
	at := v.Progress().Acked
	awaitAcked(t, v, min(at+atFraction(0.15), int64(keys*perKey)), 3*time.Minute)
	finish(t, v)
}

// TestRedisRestart restarts Redis twice while the consumers write to it. The
// restart is a clean shutdown (the AOF is flushed): what Redis acknowledged
// survives, and the consumers retry what failed while it was down.
func TestRedisRestart(t *testing.T) {
	needScenarios(t)
	s := newSystem(t)
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	s.start("notification", "notification")
	s.start("analytics", "analytics")
	v := s.verifier(context.Background(), "redis-restart", in, read, keys, perKey, 50*load)

	for _, at := range []int64{atFraction(0.25), atFraction(0.66)} {
		awaitAcked(t, v, at, 2*time.Minute)
		infra(t, "redis.sh", "restart")
	}
	finish(t, v)
}

// TestIngestSIGTERM stops ingest with SIGTERM under load, twice, and starts it again
// on the same address: it must drain (every 202 it gave is in Kafka, which the
// verifier reads back) and exit cleanly.
func TestIngestSIGTERM(t *testing.T) {
	needScenarios(t)
	s := newSystem(t)
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	s.start("notification", "notification")
	s.start("analytics", "analytics")
	v := s.verifier(context.Background(), "ingest-sigterm", in, read, keys, perKey, 60*load)

	for _, at := range []int64{atFraction(0.25), atFraction(0.66)} {
		awaitAcked(t, v, at, 2*time.Minute)
		in.signal(syscall.SIGTERM)
		if st := in.waitExit(time.Minute); !st.Success() {
			t.Fatalf("ingest ended with %v after SIGTERM, want a clean drain", st)
		}
		t.Logf("ingest drained and exited at %d acknowledged; starting it again", v.Progress().Acked)
		in.launch()
		in.waitReady(time.Minute)
	}
	finish(t, v)
}

// TestLeaderKilled runs on three brokers (replication factor 3, min.insync.replicas
// 2): a partition leader is SIGKILLed while ingest produces to it, and comes back
// after the load moved on. acks=all means every 202 was on two replicas, so none may
// be lost with the leader. The victim is chosen to also be the notification group's
// coordinator when it leads a partition (it usually does: six partitions on three
// brokers), so the consumers lose their coordinator too and must resume from the
// offsets the new one loads.
func TestLeaderKilled(t *testing.T) {
	needScenarios(t)
	s := newSystem(t, "TOPIC_REPLICATION_FACTOR=3")
	client := s.kafkaClient()
	if n := len(client.Brokers()); n < 3 {
		t.Skipf("needs a three-broker cluster (KAFKA_NODES=3), this one has %d", n)
	}
	in := s.start("ingest", "ingest")
	read := s.start("reader", "reader")
	s.start("notification", "notification")
	s.start("analytics", "analytics")
	v := s.verifier(context.Background(), "leader-kill-3brokers", in, read, keys, perKey, 50*load)

	awaitAcked(t, v, atFraction(0.25), 2*time.Minute)
	part, id := victim(t, client, s.name, s.notifyGroup)
	infra(t, "kafka.sh", "kill-node", fmt.Sprint(id))
	eventually(t, time.Minute, fmt.Sprintf("a new leader for partition %d", part), func() (bool, string) {
		if err := client.RefreshMetadata(s.name); err != nil {
			return false, err.Error()
		}
		b, err := client.Leader(s.name, part)
		if err != nil {
			return false, err.Error()
		}
		return b.ID() != id, fmt.Sprintf("leader %d", b.ID())
	})
	at := v.Progress().Acked
	awaitAcked(t, v, min(at+atFraction(0.25), int64(keys*perKey)), 3*time.Minute)
	t.Logf("node %d killed; %d events acknowledged meanwhile; starting it again", id, v.Progress().Acked-at)
	infra(t, "kafka.sh", "start-node", fmt.Sprint(id))
	finish(t, v)
}

// atFraction is that fraction of the events of a scenario.
func atFraction(f float64) int64 { return int64(f * float64(keys*perKey)) }

// victim picks the broker to kill: the notification group's coordinator when it
// leads a partition of topic, else the leader of partition 0. It returns the
// partition and the broker id.
func victim(t *testing.T, client sarama.Client, topic, group string) (int32, int32) {
	t.Helper()
	if err := client.RefreshMetadata(topic); err != nil {
		t.Fatal(err)
	}
	coord, err := client.Coordinator(group)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if l, err := client.Leader(topic, p); err == nil && l.ID() == coord.ID() {
			t.Logf("killing broker %d: leader of partition %d and coordinator of %s", l.ID(), p, group)
			return p, l.ID()
		}
	}
	l, err := client.Leader(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killing broker %d: leader of partition 0 (the coordinator %d leads none)", l.ID(), coord.ID())
	return 0, l.ID()
}
