package growth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"function/shared/config"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/shared/logging"
	"function/test/itest"
)

// The protocol tests run on the embedded broker and miniredis (fast, and miniredis
// can be made to fail on demand), or on the real broker when KAFKA_BROKERS is set.

func brokers(t *testing.T) []string {
	t.Helper()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k.Brokers()
}

func baseConfig(t *testing.T) *sarama.Config {
	t.Helper()
	c, err := kafka.NewConfig(config.Kafka{ClientID: "tide-test", Version: "3.9.0", DialTimeoutMS: 5000})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cluster is a topic on a broker with a client and an admin for it.
type cluster struct {
	brokers []string
	topic   string
	initial int
	client  sarama.Client
	admin   sarama.ClusterAdmin
}

func newCluster(t *testing.T, partitions int32) *cluster {
	t.Helper()
	c := &cluster{brokers: brokers(t), topic: itest.UniqueName(t, "growth"), initial: int(partitions)}
	var err error
	if c.client, err = sarama.NewClient(c.brokers, baseConfig(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.client.Close() })
	if c.admin, err = sarama.NewClusterAdmin(c.brokers, baseConfig(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.admin.Close() })
	if _, err := kafka.EnsureTopic(c.admin, kafka.TopicSpec{Name: c.topic, Partitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) count(t *testing.T) int {
	t.Helper()
	n, err := kafka.PartitionCount(c.client, c.topic)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// produce writes n plain records to partition p.
func (c *cluster) produce(t *testing.T, p int32, n int) {
	t.Helper()
	pc := baseConfig(t)
	pc.Producer.Return.Successes = true
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	sp, err := sarama.NewSyncProducer(c.brokers, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range n {
		if _, _, err := sp.SendMessage(&sarama.ProducerMessage{Topic: c.topic, Partition: p, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// commit commits group's offsets on the topic as a group without members does
// (generation -1), the way Kafka's tools reset offsets. A new group's coordinator
// may need a moment (the offsets topic is created on first use), so it retries.
func (c *cluster) commit(t *testing.T, group string, offsets map[int32]int64) {
	t.Helper()
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: group, ConsumerGroupGeneration: -1, RetentionTime: -1}
	for p, o := range offsets {
		req.AddBlock(c.topic, p, o, 0, "")
	}
	var last error
	for range 40 {
		last = c.commitOnce(group, req)
		if last == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
		_ = c.client.RefreshCoordinator(group)
	}
	t.Fatalf("commit %s: %v", group, last)
}

func (c *cluster) commitOnce(group string, req *sarama.OffsetCommitRequest) error {
	coord, err := c.client.Coordinator(group)
	if err != nil {
		return err
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		return err
	}
	for p, kerr := range resp.Errors[c.topic] {
		if kerr != sarama.ErrNoError {
			return fmt.Errorf("partition %d: %w", p, kerr)
		}
	}
	return nil
}

// fakeHolder records what the replica asked of its publishers. Hold blocks while
// stuck is set (records in flight that are never acknowledged).
type fakeHolder struct {
	c  *cluster
	t  *testing.T
	mu sync.Mutex
	// events: "hold", "release", "refresh:N"
	events []string
	held   bool
	stuck  bool
	// stale refreshes report the count of the topic's creation, as a client whose
	// metadata has not caught up yet.
	stale int
	// waiting is what Buffered reports: records handed to the holder, not acknowledged.
	waiting atomic.Int64
}

func (h *fakeHolder) Hold(ctx context.Context) error {
	h.mu.Lock()
	h.held = true
	h.events = append(h.events, "hold")
	stuck := h.stuck
	h.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (h *fakeHolder) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = false
	h.events = append(h.events, "release")
}

func (h *fakeHolder) RefreshPartitions(topic string) (int, error) {
	n, err := kafka.PartitionCount(h.c.client, topic)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stale > 0 {
		h.stale--
		n = h.c.initial
	}
	h.events = append(h.events, fmt.Sprintf("refresh:%d", n))
	return n, err
}

func (h *fakeHolder) Buffered() int64 { return h.waiting.Load() }

func (h *fakeHolder) isHeld() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

func (h *fakeHolder) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func newRedis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	return mr, rdb
}

// fast is a coordination with short heartbeats so the tests take little time.
var fast = Coordination{Enabled: true, KeyPrefix: "test:partitions:", HeartbeatMS: 100}

func join(t *testing.T, rdb *redis.Client, topic string, h Holder) *Replica {
	t.Helper()
	r := JoinReplica(context.Background(), rdb, fast, topic, h, ReplicaOptions{HoldTimeout: 2 * time.Second, Logger: logging.Discard()})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

func grower(c *cluster, rdb *redis.Client, mutate func(*GrowOptions)) *Grower {
	opts := GrowOptions{HoldTimeout: time.Second, DrainTimeout: 2 * time.Second, AssignTimeout: time.Second, MinReplicas: 1, Poll: 20 * time.Millisecond, Logger: logging.Discard()}
	if mutate != nil {
		mutate(&opts)
	}
	return NewGrower(rdb, fast, c.client, c.admin, c.topic, opts)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGrowHoldsDrainsGrowsAndReleases is the protocol's happy path: the replica holds
// before the partitions are added, stays held until its metadata shows the new count
// (its first refreshes are stale), and the group that had processed everything does
// not block the growth.
func TestGrowHoldsDrainsGrowsAndReleases(t *testing.T) {
	c := newCluster(t, 2)
	c.produce(t, 0, 5)
	c.produce(t, 1, 3)
	c.commit(t, "g-done", map[int32]int64{0: 5, 1: 3})
	_, rdb := newRedis(t)
	h := &fakeHolder{c: c, t: t, stale: 2}
	r := join(t, rdb, c.topic, h)

	ch := grower(c, rdb, func(o *GrowOptions) { o.Groups = []string{"g-done", "g-absent"} }).Grow(context.Background(), 4)
	if ch.Outcome != OutcomeGrown || ch.From != 2 || ch.To != 4 || ch.Epoch == 0 {
		t.Fatalf("change %+v, want grown 2 → 4", ch)
	}
	if !slices.Equal(ch.Replicas, []string{r.ID()}) {
		t.Fatalf("replicas %v, want [%s]", ch.Replicas, r.ID())
	}
	if n := c.count(t); n != 4 {
		t.Fatalf("topic has %d partitions, want 4", n)
	}
	got := h.log()
	if len(got) < 5 || got[0] != "hold" || got[len(got)-1] != "release" || got[len(got)-2] != "refresh:4" ||
		slices.Contains(got[:len(got)-1], "release") || !slices.Contains(got, "refresh:2") {
		t.Fatalf("holder saw %v, want hold first, stale refreshes, and release only after a refresh to 4", got)
	}
	if ch.Pause <= 0 || ch.Pause < ch.Grown || ch.Grown < ch.Drained || ch.Drained < ch.Held {
		t.Fatalf("phase times %+v out of order", ch)
	}
}

// TestGrowIsAbandonedNotForced covers the timeouts: a replica that cannot hold, a
// group that has not processed everything, too few replicas. The topic keeps its
// partitions and the replica is released.
func TestGrowIsAbandonedNotForced(t *testing.T) {
	tests := []struct {
		name     string
		stuck    bool // the replica's records in flight are never acknowledged
		noJoin   bool
		group    int64 // committed offset of the watched group on partition 0 (of 6)
		reason   string
		wasHeld  bool
		released bool
	}{
		{name: "replica does not hold", stuck: true, group: 6, reason: "did not hold", wasHeld: true, released: true},
		{name: "group has not processed everything", group: 4, reason: "partition 0: a record not yet processed at offset 4", wasHeld: true, released: true},
		{name: "no replica registered", noJoin: true, group: 6, reason: "fewer than PARTITION_MIN_REPLICAS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 1)
			c.produce(t, 0, 6)
			c.commit(t, "g", map[int32]int64{0: tt.group})
			_, rdb := newRedis(t)
			h := &fakeHolder{c: c, t: t, stuck: tt.stuck}
			if !tt.noJoin {
				join(t, rdb, c.topic, h)
			}
			ch := grower(c, rdb, func(o *GrowOptions) { o.Groups = []string{"g"}; o.DrainTimeout = 500 * time.Millisecond }).Grow(context.Background(), 2)
			if ch.Outcome != OutcomeAbandoned || !strings.Contains(ch.Reason, tt.reason) {
				t.Fatalf("change %+v, want abandoned because %q", ch, tt.reason)
			}
			if n := c.count(t); n != 1 || ch.To != 1 {
				t.Fatalf("topic has %d partitions (change says %d) after an abandoned growth, want 1", n, ch.To)
			}
			got := h.log()
			if slices.Contains(got, "hold") != tt.wasHeld {
				t.Fatalf("holder saw %v; held: want %v", got, tt.wasHeld)
			}
			if tt.released {
				eventually(t, 2*time.Second, "released", func() bool { return !h.isHeld() })
			}
			if tt.noJoin && ch.Epoch != 0 {
				t.Fatalf("a hold (epoch %d) was started without replicas", ch.Epoch)
			}
		})
	}
}

// TestReplicaJoiningDuringAHoldStartsHeld: a replica that starts while a hold is
// under way must not publish a single record before it holds.
func TestReplicaJoiningDuringAHoldStartsHeld(t *testing.T) {
	c := newCluster(t, 1)
	_, rdb := newRedis(t)
	g := grower(c, rdb, nil)
	epoch, _, err := g.begin(context.Background(), 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHolder{c: c, t: t}
	r := join(t, rdb, c.topic, h)
	if !r.Held() || !h.isHeld() {
		t.Fatal("a replica that joined during a hold was not held when JoinReplica returned")
	}
	if _, err := g.waitHeld(context.Background(), epoch); err != nil {
		t.Fatal(err)
	}
	if err := g.release(context.Background(), epoch, 1); err != nil {
		t.Fatal(err)
	}
	if err := g.waitReleased(context.Background(), epoch); err != nil {
		t.Fatal(err)
	}
	if h.isHeld() {
		t.Fatal("still held after the release")
	}
	if _, _, err := g.begin(context.Background(), 1, time.Minute); err != nil {
		t.Fatalf("a new hold after a release: %v", err)
	}
	if _, _, err := g.begin(context.Background(), 1, time.Minute); err != errInProgress {
		t.Fatalf("a second hold while one is under way: %v, want errInProgress", err)
	}
}

// TestReplicaFencesWhenItLosesRedis: a replica that cannot renew its lease holds by
// itself before the lease expires, so the manager, which stops waiting for it at the
// expiry, never grows under a publisher that still publishes; it publishes again
// only after Redis answers and it refreshed its partition count.
func TestReplicaFencesWhenItLosesRedis(t *testing.T) {
	c := newCluster(t, 1)
	mr, rdb := newRedis(t)
	h := &fakeHolder{c: c, t: t}
	join(t, rdb, c.topic, h)
	if h.isHeld() {
		t.Fatal("held without a hold")
	}
	mr.SetError("LOADING simulated outage")
	lost := time.Now()
	eventually(t, fast.Lease(), "fenced before the lease expired", h.isHeld)
	if since := time.Since(lost); since >= fast.Lease() {
		t.Fatalf("fenced %s after the outage began, at or after the lease (%s)", since, fast.Lease())
	}
	mr.SetError("")
	eventually(t, 5*time.Second, "released after Redis came back", func() bool { return !h.isHeld() })
	got := h.log()
	if got[len(got)-1] != "release" || got[len(got)-2] != "refresh:1" {
		t.Fatalf("holder saw %v, want a refresh right before the release", got)
	}
}

// TestReplicasReleaseAStaleHold: a manager that died mid-hold leaves a deadline;
// past it the replicas publish again by themselves.
func TestReplicasReleaseAStaleHold(t *testing.T) {
	c := newCluster(t, 1)
	_, rdb := newRedis(t)
	g := grower(c, rdb, nil)
	if _, _, err := g.begin(context.Background(), 1, 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	h := &fakeHolder{c: c, t: t}
	join(t, rdb, c.topic, h)
	if !h.isHeld() {
		t.Fatal("not held during the hold")
	}
	eventually(t, 3*time.Second, "released after the deadline", func() bool { return !h.isHeld() })
}

// TestReplicaCloseWaitsOutAHold: stopping a held replica must not send the records
// waiting in its publisher under the old count; Close returns after the release.
func TestReplicaCloseWaitsOutAHold(t *testing.T) {
	c := newCluster(t, 1)
	_, rdb := newRedis(t)
	h := &fakeHolder{c: c, t: t}
	h.waiting.Store(3) // records wait in the held publisher
	r := JoinReplica(context.Background(), rdb, fast, c.topic, h, ReplicaOptions{Logger: logging.Discard()})
	g := grower(c, rdb, nil)
	epoch, _, err := g.begin(context.Background(), 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.waitHeld(context.Background(), epoch); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned during the hold: %v", err)
	case <-time.After(300 * time.Millisecond):
		// Negative check: Close must still be waiting; the 300 ms bound the
		// observation, they are not a wait for a condition.
	}
	if err := g.release(context.Background(), epoch, 1); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if h.isHeld() {
		t.Fatal("held after Close")
	}
	live, err := g.live(context.Background())
	if err != nil || len(live) != 0 {
		t.Fatalf("live replicas after Close: %v, %v", live, err)
	}
}

// TestReplicaCloseLeavesAtOnceWhenNothingWaits: a replica held with nothing waiting in
// its publisher (here: one that never reached Redis, as when tide's start fails
// because Redis is down) must not wait for a release that cannot come; with records
// waiting it still waits, until ctx ends.
func TestReplicaCloseLeavesAtOnceWhenNothingWaits(t *testing.T) {
	c := newCluster(t, 1)
	// Nothing listens on a port just released: every heartbeat fails at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { down.Close() })

	for _, waiting := range []int64{0, 5} {
		h := &fakeHolder{c: c, t: t}
		h.waiting.Store(waiting)
		r := JoinReplica(context.Background(), down, fast, c.topic, h, ReplicaOptions{Logger: logging.Discard()})
		if !r.Held() {
			t.Fatalf("waiting=%d: a replica that cannot reach Redis is not held", waiting)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		closed := make(chan error, 1)
		go func() { closed <- r.Close(ctx) }()
		select {
		case err := <-closed:
			if waiting == 0 && err != nil && !strings.Contains(err.Error(), "remove lease") {
				t.Errorf("waiting=0: Close: %v", err)
			}
			if waiting > 0 && (err == nil || !errors.Is(err, context.DeadlineExceeded)) {
				t.Errorf("waiting=%d: Close returned %v before its context ended; want the deadline", waiting, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("waiting=%d: Close still blocked 10 s after a 2 s context", waiting)
		}
		if waiting == 0 && ctx.Err() != nil {
			t.Errorf("waiting=0: Close took the whole context; it should leave at once")
		}
		cancel()
	}
}
