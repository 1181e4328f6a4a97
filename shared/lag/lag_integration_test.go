package lag_test

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/shared/lag"
	"function/test/itest"
)

func TestCompute(t *testing.T) {
	tests := []struct {
		name                       string
		hw, start, committed, want int64
	}{
		{"backlog", 3000, 0, 1000, 2000},
		{"never committed counts from the log start", 1000, 0, -1, 1000},
		{"never committed, head deleted", 1000, 400, -1, 600},
		{"commit below the log start: deleted records are not lag", 500, 300, 100, 200},
		{"caught up", 500, 0, 500, 0},
		{"empty partition", 0, 0, -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lag.Compute(0, tc.hw, tc.start, tc.committed).Lag; got != tc.want {
				t.Fatalf("lag %d, want %d", got, tc.want)
			}
		})
	}
}

// toolRow is one partition of `kafka-consumer-groups --describe`.
type toolRow struct {
	current string // "-" when the group has no commit
	logEnd  int64
	lag     string
}

func describe(t *testing.T, brokers, group, topic string) map[int32]toolRow {
	t.Helper()
	out, err := itest.KafkaTool(t, "kafka-consumer-groups", "--bootstrap-server", brokers, "--describe", "--group", group)
	if err != nil {
		t.Fatalf("kafka-consumer-groups: %v\n%s", err, out)
	}
	rows := map[int32]toolRow{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
		if len(f) < 6 || f[1] != topic {
			continue
		}
		p, err1 := strconv.Atoi(f[2])
		leo, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("unparsable row %q", sc.Text())
		}
		rows[int32(p)] = toolRow{current: f[3], logEnd: leo, lag: f[5]}
	}
	return rows
}

// earliest asks Kafka's own GetOffsetShell for each partition's log start offset.
func earliest(t *testing.T, brokers, topic string) map[int32]int64 {
	t.Helper()
	out, err := itest.KafkaTool(t, "kafka-get-offsets", "--bootstrap-server", brokers, "--topic", topic, "--time", "-2")
	if err != nil {
		t.Fatalf("kafka-get-offsets: %v\n%s", err, out)
	}
	res := map[int32]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		parts := strings.Split(strings.TrimSpace(line), ":") // topic:partition:offset
		if len(parts) != 3 || parts[0] != topic {
			continue
		}
		p, _ := strconv.Atoi(parts[1])
		o, _ := strconv.ParseInt(parts[2], 10, 64)
		res[int32(p)] = o
	}
	return res
}

// TestLagMatchesKafkaConsumerGroups compares tide's lag with Kafka's own
// kafka-consumer-groups, partition by partition, in three states: a backlog of
// thousands of records (partition 0), a partition the group never committed on
// (partition 1) and a partition whose oldest records were deleted past the group's
// commit (partition 2).
//
// Where the tool has a LAG column that means "records still to consume" (state 1)
// the two must be equal. The tool prints no lag for a partition without a commit,
// and counts deleted records as lag; there tide's lag must equal the tool's
// LOG-END-OFFSET minus Kafka's own log start offset (kafka-get-offsets --time -2),
// which is what a consumer resuming there really has left to read.
func TestLagMatchesKafkaConsumerGroups(t *testing.T) {
	brokers := itest.Kafka(t)
	topic, group := itest.UniqueName(t, "lag"), itest.UniqueName(t, "lag-group")
	k := config.Kafka{Brokers: strings.Split(brokers, ","), Topic: topic, DeadLetterTopic: topic + "-dlq", Partitions: 3, ReplicationFactor: 1, ClientID: "lag-test", Version: "3.9.0", DialTimeoutMS: 5000}
	base, err := kafka.NewConfig(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(k, base); err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(k.Brokers, base)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Fill: 3000, 1000 and 500 records.
	pc := *base
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	pc.Producer.Return.Successes = true
	pc.Producer.Flush.Messages = 500
	pc.Producer.Flush.Frequency = 10 * time.Millisecond // or a partial last batch would wait forever
	prod, err := sarama.NewSyncProducerFromClient(mustClient(t, k.Brokers, &pc))
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range map[int32]int{0: 3000, 1: 1000, 2: 500} {
		msgs := make([]*sarama.ProducerMessage, n)
		for i := range msgs {
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder(fmt.Sprint(i))}
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
	}
	_ = prod.Close()

	// Commits: partition 0 at 1000, none on partition 1, partition 2 at 100.
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		t.Fatal(err)
	}
	for p, off := range map[int32]int64{0: 1000, 2: 100} {
		// A fresh broker creates __consumer_offsets on first use and answers
		// NOT_COORDINATOR while it loads: retry, bounded.
		var pom sarama.PartitionOffsetManager
		for attempt := 0; ; attempt++ {
			if pom, err = om.ManagePartition(topic, p); err == nil {
				break
			}
			if attempt == 50 {
				t.Fatal(err)
			}
			_ = client.RefreshCoordinator(group)
			time.Sleep(200 * time.Millisecond)
		}
		pom.MarkOffset(off, "")
		defer pom.Close()
	}
	om.Commit()
	_ = om.Close()

	// Delete partition 2's oldest records past the commit (what retention does).
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{2: 300}); err != nil {
		t.Fatal(err)
	}

	ours, err := lag.Fetch(client, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	tool := describe(t, brokers, group, topic)
	starts := earliest(t, brokers, topic)
	want := map[int32]int64{0: 2000, 1: 1000, 2: 200}
	for _, p := range ours {
		if p.Lag != want[p.Partition] {
			t.Errorf("partition %d: tide lag %d, want %d", p.Partition, p.Lag, want[p.Partition])
		}
		row, listed := tool[p.Partition]
		switch p.Partition {
		case 0:
			if !listed || row.lag != strconv.FormatInt(p.Lag, 10) || row.logEnd != p.HighWaterMark {
				t.Errorf("partition 0: tide lag %d (hw %d), kafka-consumer-groups %+v", p.Lag, p.HighWaterMark, row)
			}
		case 1:
			if listed && row.current != "-" {
				t.Errorf("partition 1 has a commit according to the tool: %+v", row)
			}
			if p.Lag != p.HighWaterMark-starts[1] || p.LogStart != starts[1] {
				t.Errorf("partition 1: tide lag %d, want log end %d - Kafka's log start %d", p.Lag, p.HighWaterMark, starts[1])
			}
		case 2:
			if !listed || row.logEnd != p.HighWaterMark || starts[2] != 300 {
				t.Fatalf("partition 2: tool %+v, log start %d", row, starts[2])
			}
			if p.Lag != row.logEnd-starts[2] {
				t.Errorf("partition 2: tide lag %d, want tool's log end %d - log start %d", p.Lag, row.logEnd, starts[2])
			}
			if row.lag != "400" {
				t.Logf("note: kafka-consumer-groups counts deleted records as lag (%s)", row.lag)
			}
		}
	}
}

func mustClient(t *testing.T, brokers []string, c *sarama.Config) sarama.Client {
	t.Helper()
	cl, err := sarama.NewClient(brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}
