package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/test/itest"
	"function/test/pipelinetest"
)

// kcatRecord is one line of `kcat -C -J`.
type kcatRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Headers   []string          `json:"headers"` // name, value, name, value, ...
	Key       *string           `json:"key"`
	Payload   *string           `json:"payload"`
	header    map[string]string // Headers as a map (names are unique in tide's records)
}

// kcatConsume reads topic from the beginning to its end with kcat (librdkafka), in
// read_committed like tide, and decodes its JSON envelopes.
func kcatConsume(t *testing.T, bs []string, topic string) []kcatRecord {
	t.Helper()
	out, err := itest.Kcat(t, nil, "-C", "-b", strings.Join(bs, ","), "-t", topic, "-o", "beginning", "-e", "-J", "-q",
		"-X", "isolation.level=read_committed")
	if err != nil {
		t.Fatal(err)
	}
	var recs []kcatRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("kcat -J line %q: %v", line, err)
		}
		if len(r.Headers)%2 != 0 {
			t.Fatalf("kcat -J headers are not name/value pairs: %q", r.Headers)
		}
		r.header = map[string]string{}
		for i := 0; i < len(r.Headers); i += 2 {
			r.header[r.Headers[i]] = r.Headers[i+1]
		}
		recs = append(recs, r)
	}
	return recs
}

// kcatProduce writes lines (key:value when keyed) to topic with kcat and the given
// extra arguments (-H headers, -p partition, -X properties).
func kcatProduce(t *testing.T, bs []string, topic string, lines []string, args ...string) {
	t.Helper()
	all := append([]string{"-P", "-b", strings.Join(bs, ","), "-t", topic, "-X", "acks=all"}, args...)
	if _, err := itest.Kcat(t, []byte(strings.Join(lines, "\n")+"\n"), all...); err != nil {
		t.Fatal(err)
	}
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// TestKcatSeesIngestRecordsAsCloudEventsKafkaBinding posts events to ingest in the
// three HTTP content modes and reads the topic with kcat, which shares no code with
// tide. Every record must be in the Kafka protocol binding's binary mode: ce_
// headers for the attributes, content-type for datacontenttype, the data as the
// value, and the partition key as the record key (the partitionkey extension, else
// the subject, else the source). The partition kcat reports must be
// murmur2(key) % partitions, as Kafka's Java clients compute it.
func TestKcatSeesIngestRecordsAsCloudEventsKafkaBinding(t *testing.T) {
	t.Parallel()
	itest.Redis(t)
	bs := brokers(t)
	p := pipelinetest.Start(t)

	type want struct{ source, typ, key, contentType, data string }
	wants := map[string]want{}

	// Binary mode with a partitionkey extension.
	h := http.Header{}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/itest/binary",
		"ce-type": "itest.binary", "ce-subject": "not-the-key", "ce-partitionkey": "pk-binary"} {
		h.Set(k, v)
	}
	if code, body := p.Post("application/json", []byte(`{"mode":"binary"}`), h); code != http.StatusAccepted {
		t.Fatalf("binary: %d %s", code, body)
	}
	wants["bin-1"] = want{"/itest/binary", "itest.binary", "pk-binary", "application/json", `{"mode":"binary"}`}

	// Structured mode keyed by subject, and one with no subject keyed by source.
	for _, ev := range []struct{ id, subject, key string }{{"str-1", "octo/repo", "octo/repo"}, {"str-2", "", "/itest/structured"}} {
		e := map[string]any{"specversion": "1.0", "id": ev.id, "source": "/itest/structured", "type": "itest.structured",
			"datacontenttype": "application/json", "data": map[string]string{"mode": "structured"}}
		if ev.subject != "" {
			e["subject"] = ev.subject
		}
		b, _ := json.Marshal(e)
		if code, body := p.Post("application/cloudevents+json", b, nil); code != http.StatusAccepted {
			t.Fatalf("structured %s: %d %s", ev.id, code, body)
		}
		wants[ev.id] = want{"/itest/structured", "itest.structured", ev.key, "application/json", `{"mode":"structured"}`}
	}

	// A batch with many subjects, so the keys spread over every partition.
	var batch []map[string]any
	for i := 0; i < 40; i++ {
		id, subject := fmt.Sprintf("batch-%d", i), fmt.Sprintf("user-%d/repo-%d", i%13, i)
		batch = append(batch, map[string]any{"specversion": "1.0", "id": id, "source": "/itest/batch", "type": "itest.batch",
			"subject": subject, "datacontenttype": "text/plain", "data": "n" + strconv.Itoa(i)})
		wants[id] = want{"/itest/batch", "itest.batch", subject, "text/plain", "n" + strconv.Itoa(i)}
	}
	b, _ := json.Marshal(batch)
	if code, body := p.Post("application/cloudevents-batch+json", b, nil); code != http.StatusAccepted {
		t.Fatalf("batch: %d %s", code, body)
	}

	parts := int(p.Opts.Ingest.Partitions)
	recs := kcatConsume(t, bs, p.Topic())
	if len(recs) != len(wants) {
		t.Fatalf("kcat read %d records, want %d", len(recs), len(wants))
	}
	used := map[int32]bool{}
	for _, r := range recs {
		id := r.header["ce_id"]
		w, ok := wants[id]
		if !ok {
			t.Errorf("record %d/%d: unexpected ce_id %q (headers %q)", r.Partition, r.Offset, id, r.Headers)
			continue
		}
		delete(wants, id)
		for name, v := range map[string]string{"ce_specversion": "1.0", "ce_source": w.source, "ce_type": w.typ, "content-type": w.contentType} {
			if r.header[name] != v {
				t.Errorf("event %s: header %s = %q, want %q", id, name, r.header[name], v)
			}
		}
		if _, ok := r.header["ce_datacontenttype"]; ok {
			t.Errorf("event %s: datacontenttype travels as content-type in the binding, not as ce_datacontenttype", id)
		}
		if str(r.Key) != w.key {
			t.Errorf("event %s: key %q, want %q", id, str(r.Key), w.key)
		}
		if pk, ok := r.header["ce_partitionkey"]; ok && pk != w.key {
			t.Errorf("event %s: ce_partitionkey %q differs from the record key %q", id, pk, w.key)
		}
		if str(r.Payload) != w.data {
			t.Errorf("event %s: value %q, want the event's data %q", id, str(r.Payload), w.data)
		}
		if want := javaPartition(w.key, parts); r.Partition != want {
			t.Errorf("event %s: key %q on partition %d, murmur2 says %d of %d", id, w.key, r.Partition, want, parts)
		}
		used[r.Partition] = true
	}
	if len(used) != parts {
		t.Errorf("records used %d of %d partitions: the partition check covers too little", len(used), parts)
	}
	for id := range wants {
		t.Errorf("event %s accepted by ingest but not read by kcat", id)
	}
}

// TestKcatMurmur2PartitionerAgreesWithTide produces keyed records with librdkafka's
// Java-compatible partitioner (murmur2_random) and checks that the producer
// configuration tide uses (kafka.ProducerConfig) chooses the same partition for every
// key, and that both match Kafka's Java hash: a key lands on one partition whichever
// client writes it.
func TestKcatMurmur2PartitionerAgreesWithTide(t *testing.T) {
	t.Parallel()
	bs := brokers(t)
	const parts = 7
	topic := itest.UniqueName(t, "murmur")
	createTopic(t, bs, topic, parts)
	// Keys of every length modulo 4 (murmur2's tail cases), with UTF-8.
	var lines []string
	for i := 0; i < 60; i++ {
		lines = append(lines, fmt.Sprintf("%s:%d", strings.Repeat("k", i%5)+"é"+strconv.Itoa(i), i))
	}
	kcatProduce(t, bs, topic, lines, "-K", ":", "-X", "partitioner=murmur2_random")

	tide := kafka.ProducerConfig(kafkaConfig(t), config.Producer{BatchSize: 1, BatchTimeoutMS: 1}).Producer.Partitioner(topic)
	recs := kcatConsume(t, bs, topic)
	if len(recs) != len(lines) {
		t.Fatalf("kcat read back %d records, want %d", len(recs), len(lines))
	}
	used := map[int32]bool{}
	for _, r := range recs {
		key := str(r.Key)
		got, err := tide.Partition(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}, parts)
		if err != nil {
			t.Fatal(err)
		}
		if got != r.Partition {
			t.Errorf("key %q: librdkafka's murmur2 put it on %d, tide's partitioner chooses %d", key, r.Partition, got)
		}
		if want := javaPartition(key, parts); r.Partition != want {
			t.Errorf("key %q: librdkafka's murmur2 put it on %d, Kafka's Java hash says %d", key, r.Partition, want)
		}
		used[r.Partition] = true
	}
	if len(used) < parts {
		t.Errorf("keys used %d of %d partitions", len(used), parts)
	}
}

// TestKcatProducedEventsReachFunctions writes records with kcat straight to the
// pipeline's topic, bypassing ingest: a binary-mode CloudEvent (ce_ headers), a
// structured-mode one (content-type application/cloudevents+json, the event as JSON
// value), a record that is no CloudEvent, and a binary one after it on the same
// partition. notification and analytics must take both CloudEvent modes; the poison
// record must go to the dead-letter topic once per group with the tide_dlq_* headers
// naming where it came from, and the partition must keep moving past it.
func TestKcatProducedEventsReachFunctions(t *testing.T) {
	t.Parallel()
	itest.Redis(t)
	bs := brokers(t)
	p := pipelinetest.Start(t)
	topic := p.Topic()
	binary := func(id string) []string {
		return []string{"-p", "0", "-k", "k-" + id, "-H", "ce_specversion=1.0", "-H", "ce_id=" + id, "-H", "ce_source=/kcat/binary",
			"-H", "ce_type=kcat.binary", "-H", "ce_subject=s-" + id, "-H", "content-type=application/json"}
	}
	kcatProduce(t, bs, topic, []string{`{"via":"binary"}`}, binary("kcat-bin-1")...)
	kcatProduce(t, bs, topic, []string{`{"specversion":"1.0","id":"kcat-str-1","source":"/kcat/structured","type":"kcat.structured",` +
		`"subject":"s-str","datacontenttype":"application/json","data":{"via":"structured"}}`},
		"-p", "0", "-k", "k-str", "-H", "content-type=application/cloudevents+json")
	kcatProduce(t, bs, topic, []string{"this is not a CloudEvent"}, "-p", "0", "-k", "k-poison")
	kcatProduce(t, bs, topic, []string{`{"via":"binary"}`}, binary("kcat-bin-2")...)

	p.Eventually(30*time.Second, "kcat's events counted", func() (bool, string) {
		st := p.Stats()
		return st.Types["kcat.binary"] == 2 && st.Types["kcat.structured"] == 1, fmt.Sprintf("%+v", st)
	})
	p.WaitCaughtUp(30 * time.Second) // both groups are past the poison record
	if st := p.Stats(); st.Events != 3 || st.Sources["/kcat/binary"] != 2 || st.Sources["/kcat/structured"] != 1 {
		t.Errorf("stats %+v: want 3 events, 2 from /kcat/binary and 1 from /kcat/structured", st)
	}
	for channel, ids := range map[string][]string{"/kcat/binary": {"kcat-bin-1", "kcat-bin-2"}, "/kcat/structured": {"kcat-str-1"}} {
		l := p.Notifications(channel, 10)
		got := map[string]bool{}
		for _, n := range l.Notifications {
			got[n.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				t.Errorf("channel %s: no notification for %s (have %+v)", channel, id, l.Notifications)
			}
		}
		if l.Total != int64(len(ids)) {
			t.Errorf("channel %s: total %d, want %d", channel, l.Total, len(ids))
		}
	}

	dlq := kcatConsume(t, bs, p.Opts.Notification.DeadLetterTopic)
	groups := map[string]bool{}
	for _, r := range dlq {
		g := r.header[kafka.HeaderDLQGroup]
		groups[g] = true
		if str(r.Payload) != "this is not a CloudEvent" || str(r.Key) != "k-poison" {
			t.Errorf("dead letter of %s: key %q value %q, want the poison record unchanged", g, str(r.Key), str(r.Payload))
		}
		for name, v := range map[string]string{kafka.HeaderDLQTopic: topic, kafka.HeaderDLQPartition: "0", kafka.HeaderDLQOffset: "2"} {
			if r.header[name] != v {
				t.Errorf("dead letter of %s: %s = %q, want %q", g, name, r.header[name], v)
			}
		}
		if r.header[kafka.HeaderDLQError] == "" {
			t.Errorf("dead letter of %s: no %s header", g, kafka.HeaderDLQError)
		}
		if n, err := strconv.Atoi(r.header[kafka.HeaderDLQAttempts]); err != nil || n < 1 {
			t.Errorf("dead letter of %s: %s = %q, want an attempt count", g, kafka.HeaderDLQAttempts, r.header[kafka.HeaderDLQAttempts])
		}
		if _, err := time.Parse(time.RFC3339Nano, r.header[kafka.HeaderDLQTime]); err != nil {
			t.Errorf("dead letter of %s: %s: %v", g, kafka.HeaderDLQTime, err)
		}
	}
	for _, g := range []string{p.Opts.Notification.Consumer.Group, p.Opts.Analytics.Consumer.Group} {
		if !groups[g] {
			t.Errorf("no dead letter from group %s (dead letters: %d, from %v)", g, len(dlq), sortedKeys(groups))
		}
	}
	if len(dlq) != 2 {
		t.Errorf("%d dead letters, want one per group", len(dlq))
	}
}
