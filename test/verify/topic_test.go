package verify

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/embedded"
)

// TestTopicReaderSkipsAbortedAndReachesTheEnd guards the ground truth on a
// transactional topic: events of an aborted transaction never landed, events of a
// committed one did, and a partition that ends with a transaction marker (which no
// consumer ever delivers) is still read to its end instead of waited on forever.
func TestTopicReaderSkipsAbortedAndReachesTheEnd(t *testing.T) {
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const topic, source = "events", SourcePrefix + "run/k000"
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	admin, err := sarama.NewClusterAdmin(k.Brokers(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()

	client, err := sarama.NewClient(k.Brokers(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	keys := []keyResult{{Key: "run-k000", Source: source, Events: make([]eventResult, 10)}}
	r := newTopicReader(client, topic, SourcePrefix+"run/", keys)
	if err := r.mark(); err != nil {
		t.Fatal(err)
	}

	msg := func(seq int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("{}"), Headers: []sarama.RecordHeader{
			{Key: []byte("ce_id"), Value: []byte(strconv.Itoa(seq))},
			{Key: []byte("ce_source"), Value: []byte(source)},
		}}
	}
	pc := sarama.NewConfig()
	pc.Version = sarama.V3_9_0_0
	pc.Producer.Idempotent = true
	pc.Producer.RequiredAcks = sarama.WaitForAll
	pc.Producer.Return.Successes = true
	pc.Net.MaxOpenRequests = 1
	pc.Producer.Transaction.ID = "verify-test"
	p, err := sarama.NewSyncProducer(k.Brokers(), pc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	txn := func(commit bool, seqs ...int) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, s := range seqs {
			if _, _, err := p.SendMessage(msg(s)); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	txn(true, 0, 1)
	txn(false, 2, 3) // aborted: never landed
	txn(true, 4, 4)  // a retried event: two copies
	txn(true, 5)     // the partition ends with a commit marker

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.landedOf(source)
	want := map[int]int{0: 1, 1: 1, 4: 2, 5: 1}
	if len(got) != len(want) {
		t.Fatalf("landed %v, want %v", got, want)
	}
	for s, n := range want {
		if got[s] != n {
			t.Fatalf("landed %v, want %v", got, want)
		}
	}
}
