package integration

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/test/itest"
)

// describedTopic is what `kafka-topics --describe` says about a topic.
type describedTopic struct {
	count      int               // the PartitionCount field
	partitions map[int]int       // partition -> leader, from the partition lines
	fields     map[string]string // the summary line
}

// parseDescribe reads kafka-topics --describe output: one summary line per topic
// ("Topic: T<TAB>TopicId: ...<TAB>PartitionCount: N...") and one indented line per
// partition ("<TAB>Topic: T<TAB>Partition: P<TAB>Leader: L<TAB>Replicas: ...").
func parseDescribe(t *testing.T, out string) map[string]*describedTopic {
	t.Helper()
	topics := map[string]*describedTopic{}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := map[string]string{}
		for _, kv := range strings.Split(strings.TrimSpace(line), "\t") {
			k, v, _ := strings.Cut(kv, ":")
			f[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		name := f["Topic"]
		if name == "" {
			t.Fatalf("kafka-topics line without a topic: %q", line)
		}
		d := topics[name]
		if d == nil {
			d = &describedTopic{partitions: map[int]int{}}
			topics[name] = d
		}
		if p, ok := f["Partition"]; ok {
			pn, err1 := strconv.Atoi(p)
			leader, err2 := strconv.Atoi(f["Leader"])
			if err1 != nil || err2 != nil {
				t.Fatalf("kafka-topics partition line %q: partition %v, leader %v", line, err1, err2)
			}
			d.partitions[pn] = leader
			continue
		}
		n, err := strconv.Atoi(f["PartitionCount"])
		if err != nil {
			t.Fatalf("kafka-topics summary line %q: %v", line, err)
		}
		d.count, d.fields = n, f
	}
	return topics
}

// TestTopicsCreatedWithConfiguredPartitionsAndGrown covers tide's topic admin on a
// real broker, checked by sarama and by Kafka's own kafka-topics tool:
//   - EnsureTopics creates the events topic with TOPIC_PARTITIONS partitions (read
//     from the environment as the functions read it) and the dead-letter topic with one;
//   - EnsureTopics on existing topics leaves them alone (same topic ID, same count),
//     even when TOPIC_PARTITIONS now says more;
//   - AddPartitions grows a topic, and the running Publisher, after RefreshPartitions,
//     puts each key where Kafka's Java partitioner puts it for the new count.
//
// It sets environment variables, so it does not run in parallel.
func TestTopicsCreatedWithConfiguredPartitionsAndGrown(t *testing.T) {
	bs := brokers(t)
	base := itest.UniqueName(t, "topics")
	fixed, grown := base+"-fixed", base+"-grown"
	load := func(topic string, partitions int) config.Kafka {
		t.Helper()
		t.Setenv("KAFKA_BROKERS", strings.Join(bs, ","))
		t.Setenv("KAFKA_TOPIC", topic)
		t.Setenv("KAFKA_DLQ_TOPIC", topic+"-dlq")
		t.Setenv("TOPIC_PARTITIONS", strconv.Itoa(partitions))
		var k config.Kafka
		if err := config.Load("", &k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	sc := kafkaConfig(t)
	client := newClient(t, bs)
	count := func(topic string) int {
		t.Helper()
		n, err := kafka.PartitionCount(client, topic)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	if err := kafka.EnsureTopics(load(fixed, 5), sc); err != nil {
		t.Fatal(err)
	}
	if got := count(fixed); got != 5 {
		t.Fatalf("sarama: %s has %d partitions, want TOPIC_PARTITIONS=5", fixed, got)
	}
	if got := count(fixed + "-dlq"); got != 1 {
		t.Fatalf("sarama: %s-dlq has %d partitions, want 1", fixed, got)
	}
	id, err := kafka.TopicID(client, fixed)
	if err != nil {
		t.Fatal(err)
	}
	// Again, now asking for more: an existing topic is never recreated or resized here.
	if err := kafka.EnsureTopics(load(fixed, 9), sc); err != nil {
		t.Fatalf("EnsureTopics on existing topics: %v", err)
	}
	if created, err := kafka.EnsureTopic(newAdmin(t, bs), kafka.TopicSpec{Name: fixed, Partitions: 9, ReplicationFactor: 1}); err != nil || created {
		t.Fatalf("EnsureTopic on an existing topic: created=%v err=%v, want false, nil", created, err)
	}
	if got := count(fixed); got != 5 {
		t.Fatalf("after EnsureTopics with 9: %s has %d partitions, want still 5", fixed, got)
	}
	if again, err := kafka.TopicID(client, fixed); err != nil || again != id {
		t.Fatalf("topic ID %s -> %s (err %v): the topic was recreated", id, again, err)
	}

	// Growth under a running publisher.
	k := load(grown, 3)
	if err := kafka.EnsureTopics(k, sc); err != nil {
		t.Fatal(err)
	}
	pub, err := kafka.NewPublisher(bs, kafka.ProducerConfig(sc, config.Producer{BatchSize: 100, BatchTimeoutMS: 5}), kafka.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("repo-%d", i)
	}
	publishAt := func(n int) {
		t.Helper()
		msgs := make([]*sarama.ProducerMessage, len(keys))
		for i, key := range keys {
			msgs[i] = &sarama.ProducerMessage{Topic: grown, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("v")}
		}
		if err := pub.Publish(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		for i, m := range msgs {
			if want := javaPartition(keys[i], n); m.Partition != want {
				t.Errorf("with %d partitions key %q went to partition %d, Kafka's partitioner says %d", n, keys[i], m.Partition, want)
			}
		}
	}
	publishAt(3)
	if err := kafka.AddPartitions(newAdmin(t, bs), grown, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := pub.RefreshPartitions(grown); err != nil || got != 7 {
		t.Fatalf("RefreshPartitions = %d, %v; want 7", got, err)
	}
	moved := 0
	for _, key := range keys {
		if javaPartition(key, 3) != javaPartition(key, 7) {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no key changes partition between 3 and 7: the check below would prove nothing")
	}
	publishAt(7)
	if err := kafka.AddPartitions(newAdmin(t, bs), grown, 7); err == nil {
		t.Error("AddPartitions to the current count succeeded; it must fail (Kafka cannot shrink or keep)")
	}

	// Kafka's own view, one JVM start for all four topics.
	out, err := itest.KafkaTool(t, "kafka-topics", "--bootstrap-server", strings.Join(bs, ","), "--describe", "--topic", base+"-.*")
	if err != nil {
		t.Fatal(err)
	}
	described := parseDescribe(t, out)
	for _, want := range []struct {
		topic string
		n     int
	}{{fixed, 5}, {fixed + "-dlq", 1}, {grown, 7}, {grown + "-dlq", 1}} {
		d := described[want.topic]
		if d == nil {
			t.Errorf("kafka-topics does not list %s:\n%s", want.topic, out)
			continue
		}
		if d.count != want.n || len(d.partitions) != want.n {
			t.Errorf("kafka-topics: %s has PartitionCount %d and %d partition lines, want %d", want.topic, d.count, len(d.partitions), want.n)
		}
		if d.fields["ReplicationFactor"] != "1" {
			t.Errorf("kafka-topics: %s ReplicationFactor %q, want TOPIC_REPLICATION_FACTOR=1", want.topic, d.fields["ReplicationFactor"])
		}
		for p, leader := range d.partitions {
			if leader < 0 {
				t.Errorf("kafka-topics: %s partition %d has no leader", want.topic, p)
			}
		}
	}
	if d := described[fixed]; d != nil && d.fields["TopicId"] != "" {
		// The tool prints the ID in base64url; tide's is hex. Same 16 bytes.
		if got := base64ToHex(t, d.fields["TopicId"]); got != id {
			t.Errorf("kafka-topics TopicId %s (%s), tide's TopicID %s", d.fields["TopicId"], got, id)
		}
	}
}

// base64ToHex turns a topic ID as Kafka's tools print it (base64url, no padding) into
// the hex form tide uses.
func base64ToHex(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("topic ID %q: %v", s, err)
	}
	return hex.EncodeToString(b)
}
