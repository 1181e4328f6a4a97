package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/config"
	"function/shared/consumer"
	"function/shared/embedded"
	"function/shared/kafka"
	"function/test/pipelinetest"
)

// deadLetter writes the record of an event to the dead-letter topic as the runner
// would after giving up on it at topic/0@offset.
func deadLetter(t *testing.T, dl *kafka.DeadLetters, topic string, offset int64, id string, cause error, attempts int) {
	t.Helper()
	e := event.New()
	e.SetID(id)
	e.SetSource("/dlq-test")
	e.SetType("test.dlq")
	e.SetSubject("k-" + id)
	if err := e.SetData(event.ApplicationJSON, map[string]string{"id": id}); err != nil {
		t.Fatal(err)
	}
	m, err := kafka.EncodeRecord(context.Background(), topic, &e, "k-"+id)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := m.Key.Encode()
	value, _ := m.Value.Encode()
	r := &sarama.ConsumerMessage{Topic: topic, Partition: 0, Offset: offset, Key: key, Value: value, Timestamp: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	for i := range m.Headers {
		r.Headers = append(r.Headers, &m.Headers[i])
	}
	if err := dl.DeadLetter(context.Background(), "notifications-test", r, cause, attempts); err != nil {
		t.Fatal(err)
	}
}

func dlq(t *testing.T, p *pipelinetest.Pipeline, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	base := []string{"-brokers", strings.Join(p.Brokers, ","), "-topic", p.Opts.Ingest.DeadLetterTopic}
	if err := runDLQ(context.Background(), &out, append(append([]string{args[0]}, base...), args[1:]...)); err != nil {
		t.Fatalf("tide dlq %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// recordsByID reads the events topic and counts its records per ce_id, failing if a
// re-driven record still carries a tide_dlq_* header.
func recordsByID(t *testing.T, p *pipelinetest.Pipeline) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// ReadDeadLetters reads any topic up to its high-water mark; the filter is empty.
	recs, err := kafka.ReadDeadLetters(ctx, p.Client(), p.Topic(), kafka.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range recs {
		out[d.EventID]++
		if d.Error != "" || d.Attempts != -1 || d.Group != "" {
			t.Errorf("record of %s at %d:%d carries dead-letter headers: %+v", d.EventID, d.Partition, d.Offset, d)
		}
	}
	return out
}

// TestDLQListAndRedriveIdempotently dead-letters three events (one that was also
// delivered normally), lists them, re-drives one by offset and then all of them
// twice. Every re-drive publishes again, yet each event is notified and counted
// exactly once, thanks to the (source, id) deduplication downstream.
func TestDLQListAndRedriveIdempotently(t *testing.T) {
	p := pipelinetest.Start(t)
	topic := p.Topic()
	delivered := `{"specversion":"1.0","id":"delivered","source":"/dlq-test","type":"test.dlq","subject":"k-delivered"}`
	if code, body := p.Post("application/cloudevents+json", []byte(delivered), nil); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, body)
	}

	base, err := kafka.NewConfig(p.Opts.Ingest.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := kafka.NewDeadLetters(p.Brokers, base, p.Opts.Ingest.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	deadLetter(t, dl, topic, 0, "delivered", fmt.Errorf("redis: connection refused"), 5)       // DLQ offset 0
	deadLetter(t, dl, topic, 7, "poisoned", consumer.Poison(fmt.Errorf("template failed")), 1) // DLQ offset 1
	deadLetter(t, dl, topic, 9, "failed", fmt.Errorf("handler bug"), 5)                        // DLQ offset 2

	list := dlq(t, p, "list")
	for _, want := range []string{"0:0", topic + "/0@7", "poisoned", "poison: template failed", "notifications-test", "3 dead letter(s)"} {
		if !strings.Contains(list, want) {
			t.Errorf("tide dlq list lacks %q:\n%s", want, list)
		}
	}
	var one kafka.DeadLetter
	if err := json.Unmarshal([]byte(dlq(t, p, "list", "-json", "-error", "template")), &one); err != nil {
		t.Fatal(err)
	}
	if one.EventID != "poisoned" || one.Offset != 1 || one.OriginalOffset != 7 || one.Attempts != 1 || one.EventType != "test.dlq" || one.EventSource != "/dlq-test" {
		t.Errorf("tide dlq list -json -error template = %+v, want the poisoned event at DLQ offset 1 (original offset 7, 1 attempt)", one)
	}

	if out := dlq(t, p, "redrive", "-to", topic, "-offset", "1"); !strings.Contains(out, "re-drove 1 dead letter") {
		t.Errorf("redrive -offset 1: %s", out)
	}
	for i := 0; i < 2; i++ {
		if out := dlq(t, p, "redrive", "-to", topic, "-all"); !strings.Contains(out, "re-drove 3 dead letter") {
			t.Errorf("redrive -all: %s", out)
		}
	}

	// Every re-drive reached the topic...
	want := map[string]int{"delivered": 3, "poisoned": 3, "failed": 2}
	p.Eventually(30*time.Second, "re-driven records in the events topic", func() (bool, string) {
		got := recordsByID(t, p)
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("records per id %v, want %v", got, want)
	})
	// ...and each event had its effect once.
	p.WaitCaughtUp(30 * time.Second)
	if st := p.Stats(); st.Events != 3 || st.Types["test.dlq"] != 3 {
		t.Errorf("analytics counted %d events (%v), want 3: each event once", st.Events, st.Types)
	}
	n := p.Notifications("/dlq-test", 100)
	seen := map[string]int{}
	for _, x := range n.Notifications {
		seen[x.ID]++
	}
	if n.Total != 3 || seen["delivered"] != 1 || seen["poisoned"] != 1 || seen["failed"] != 1 {
		t.Errorf("notifications: total %d, per id %v; want each of the 3 events once", n.Total, seen)
	}
}

func TestDLQRefusesAnUnboundedRedrive(t *testing.T) {
	err := runDLQ(context.Background(), &bytes.Buffer{}, []string{"redrive", "-brokers", "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "-all") {
		t.Fatalf("redrive without -offset or -all: err = %v, want a usage error naming -all", err)
	}
}

// A dead letter named by an offset that is not in the dead-letter topic is an error
// naming it (and what the topic holds), for redrive, its dry run and list alike,
// and nothing is re-driven; so is one the other filters leave out.
func TestDLQNamedOffsetsMustExist(t *testing.T) {
	k, err := embedded.StartKafka(0)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var kc config.Kafka
	if err := config.Load("", &kc); err != nil {
		t.Fatal(err)
	}
	kc.Brokers, kc.Topic, kc.DeadLetterTopic, kc.Partitions, kc.ReplicationFactor = k.Brokers(), "events-t", "events-t-dlq", 2, 1
	sc, err := kafka.NewConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(kc, sc); err != nil {
		t.Fatal(err)
	}
	dl, err := kafka.NewDeadLetters(kc.Brokers, sc, kc.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	deadLetter(t, dl, kc.Topic, 3, "a", fmt.Errorf("handler bug"), 5) // DLQ offset 0
	deadLetter(t, dl, kc.Topic, 4, "b", fmt.Errorf("handler bug"), 5) // DLQ offset 1

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		base := []string{"-brokers", strings.Join(kc.Brokers, ","), "-topic", kc.DeadLetterTopic, "-to", kc.Topic, "-timeout", "20s"}
		err := runDLQ(context.Background(), &out, append(append([]string{args[0]}, base...), args[1:]...))
		return out.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"redrive", "-offset", "999"}, "no dead letter at offset 999 in events-t-dlq (partition 0 holds offsets 0-1"},
		{[]string{"redrive", "-offset", "1,999,1000"}, "no dead letter at offset 999, offset 1000 in events-t-dlq"},
		{[]string{"redrive", "-offset", "0:7"}, "no dead letter at partition 0 offset 7"},
		{[]string{"redrive", "-offset", "5:0"}, "no dead letter at partition 5 (no such partition)"},
		{[]string{"redrive", "-dry-run", "-offset", "999"}, "offset 999"},
		{[]string{"list", "-offset", "999"}, "offset 999"},
		{[]string{"redrive", "-offset", "0,1", "-id", "b"}, `dead letter(s) 0:0 do not match -id "b"`},
	} {
		out, err := run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tide dlq %s: err = %v (output %q), want an error with %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
		if strings.Contains(out, "re-drove") {
			t.Errorf("tide dlq %s re-drove: %s", strings.Join(tc.args, " "), out)
		}
	}
	// Existing offsets still work, and nothing above reached the events topic.
	if out, err := run("redrive", "-dry-run", "-offset", "1"); err != nil || !strings.Contains(out, "1 dead letter(s)") {
		t.Errorf("redrive -dry-run -offset 1: %v\n%s", err, out)
	}
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if recs, err := kafka.ReadDeadLetters(ctx, client, kc.Topic, kafka.DeadLetterFilter{}); err != nil || len(recs) != 0 {
		t.Errorf("events topic holds %d records (err %v), want none: a failed re-drive published", len(recs), err)
	}
}
