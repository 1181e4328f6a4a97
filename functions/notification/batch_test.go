package notification

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/alicebob/miniredis/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"function/shared/consumer"
	"function/shared/kafka"
	"function/shared/logging"
	"function/shared/metrics"
	"function/shared/store"
)

func record(t *testing.T, id, key string, offset int64) *sarama.ConsumerMessage {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetSource("/repo")
	e.SetType("dev.tide.test")
	e.SetTime(time.Now())
	m, err := kafka.EncodeRecord(context.Background(), "events", &e, key)
	if err != nil {
		t.Fatal(err)
	}
	r := &sarama.ConsumerMessage{Topic: "events", Offset: offset, Key: []byte(key)}
	for _, h := range m.Headers {
		h := h
		r.Headers = append(r.Headers, &h)
	}
	return r
}

// A batch must give what record-by-record handling gives: the notifications in
// offset order, a repeated event once, a poison record dead-lettered without holding
// up the rest, and nothing new when the whole batch is delivered again.
func TestHandleBatchIsOrderedDedupedAndSetsPoisonAside(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	r, err := NewRenderer("", "")
	if err != nil {
		t.Fatal(err)
	}
	f := &Function{cfg: Config{Consumer: ConsumerDefaults()}, log: logging.Discard(), metrics: metrics.New(),
		store: store.NewNotifications(rdb, "t:", 100, time.Hour), render: r}

	poison := &sarama.ConsumerMessage{Topic: "events", Offset: 1, Value: []byte("not an event")}
	recs := []*sarama.ConsumerMessage{record(t, "a", "k", 0), poison, record(t, "b", "k", 2), record(t, "a", "k", 3), record(t, "c", "k", 4)}
	var dead []int64
	b := consumer.Batch{Topic: "events", Partition: 0, Records: recs, DeadLetter: func(_ context.Context, rec *sarama.ConsumerMessage, cause error) error {
		if !consumer.IsPoison(cause) {
			t.Errorf("offset %d dead-lettered as %v, want poison", rec.Offset, cause)
		}
		dead = append(dead, rec.Offset)
		return nil
	}}
	for round := 1; round <= 2; round++ {
		if err := f.HandleBatch(ctx, b); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	ns, total, err := f.store.List(ctx, "/repo", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	if fmt.Sprint(ids) != "[c b a]" || total != 3 {
		t.Fatalf("notifications newest first %v (total %d), want [c b a] and 3", ids, total)
	}
	if fmt.Sprint(dead) != "[1 1]" {
		t.Fatalf("dead-lettered offsets %v, want the poison record once per delivery", dead)
	}
}
