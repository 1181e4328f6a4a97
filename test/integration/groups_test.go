package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"function/shared/lag"
	"function/test/itest"
	"function/test/pipelinetest"
)

// groupRow is one partition line of `kafka-consumer-groups --describe`.
type groupRow struct {
	group, topic               string
	partition                  int32
	current, logEnd, lag       int64 // -1 where the tool prints "-"
	consumerID, host, clientID string
}

// parseGroups reads the tables of kafka-consumer-groups --describe: per group a
// header line (GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID
// HOST CLIENT-ID) and one line per partition; columns are found by name, so an added
// column does not break the parse.
func parseGroups(t *testing.T, out string) []groupRow {
	t.Helper()
	var rows []groupRow
	var cols map[string]int
	num := func(s string) int64 {
		if s == "-" {
			return -1
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("kafka-consumer-groups: %q is not a number:\n%s", s, out)
		}
		return n
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "Consumer group ") {
			continue
		}
		if f[0] == "GROUP" {
			cols = map[string]int{}
			for i, name := range f {
				cols[name] = i
			}
			continue
		}
		if cols == nil || len(f) != len(cols) {
			t.Fatalf("kafka-consumer-groups: unexpected line %q in:\n%s", line, out)
		}
		get := func(name string) string {
			i, ok := cols[name]
			if !ok {
				t.Fatalf("kafka-consumer-groups: no %s column in:\n%s", name, out)
			}
			return f[i]
		}
		rows = append(rows, groupRow{
			group: get("GROUP"), topic: get("TOPIC"), partition: int32(num(get("PARTITION"))),
			current: num(get("CURRENT-OFFSET")), logEnd: num(get("LOG-END-OFFSET")), lag: num(get("LAG")),
			consumerID: get("CONSUMER-ID"), host: get("HOST"), clientID: get("CLIENT-ID"),
		})
	}
	return rows
}

// TestKafkaConsumerGroupsToolAgreesWithTide posts events through ingest, lets
// notification and analytics catch up and stop, then writes more records that nobody
// consumes. Kafka's own kafka-consumer-groups must list both of tide's groups with,
// per partition, the committed offset that the records ingest put there make
// (murmur2 of each key), the log-end offset, and the lag, and agree with what
// shared/lag.Fetch (tide's lag metric and KEDA signal) says.
func TestKafkaConsumerGroupsToolAgreesWithTide(t *testing.T) {
	t.Parallel()
	itest.Redis(t)
	bs := brokers(t)
	p := pipelinetest.Start(t)
	parts := int(p.Opts.Ingest.Partitions)

	perPartition := map[int32]int64{}
	var batch []map[string]any
	for i := 0; i < 30; i++ {
		subject := fmt.Sprintf("org-%d/repo", i)
		batch = append(batch, map[string]any{"specversion": "1.0", "id": fmt.Sprintf("g-%d", i), "source": "/itest/groups",
			"type": "itest.groups", "subject": subject})
		perPartition[javaPartition(subject, parts)]++
	}
	b, _ := json.Marshal(batch)
	if code, body := p.Post("application/cloudevents-batch+json", b, nil); code != http.StatusAccepted {
		t.Fatalf("batch: %d %s", code, body)
	}
	p.WaitCaughtUp(30 * time.Second)
	p.StopFunctions()
	// Records nobody consumes now: lag that both views must report alike.
	const extra = 2
	produce(t, bs, p.Topic(), int32(parts), "unconsumed", extra)

	groups := []string{p.Opts.Notification.Consumer.Group, p.Opts.Analytics.Consumer.Group}
	tide := map[string][]lag.Partition{}
	for _, g := range groups {
		ps, err := lag.Fetch(p.Client(), g, p.Topic())
		if err != nil {
			t.Fatal(err)
		}
		tide[g] = ps
	}
	out, err := itest.KafkaTool(t, "kafka-consumer-groups", "--bootstrap-server", strings.Join(bs, ","),
		"--describe", "--group", groups[0], "--group", groups[1])
	if err != nil {
		t.Fatal(err)
	}
	rows := parseGroups(t, out)
	seen := map[string]int{}
	for _, r := range rows {
		ps, ok := tide[r.group]
		if !ok || r.topic != p.Topic() {
			t.Errorf("kafka-consumer-groups lists %s on %s, which this test did not ask for", r.group, r.topic)
			continue
		}
		seen[r.group]++
		if r.partition < 0 || int(r.partition) >= len(ps) {
			t.Errorf("%s: partition %d out of range", r.group, r.partition)
			continue
		}
		tp := ps[r.partition]
		want := perPartition[r.partition]
		if r.current != want || tp.Committed != want {
			t.Errorf("%s partition %d: committed offset %d (kafka-consumer-groups) / %d (tide), want %d records ingest put there",
				r.group, r.partition, r.current, tp.Committed, want)
		}
		if r.logEnd != want+extra || tp.HighWaterMark != want+extra {
			t.Errorf("%s partition %d: log-end offset %d (tool) / %d (tide), want %d", r.group, r.partition, r.logEnd, tp.HighWaterMark, want+extra)
		}
		if r.lag != extra || tp.Lag != extra {
			t.Errorf("%s partition %d: lag %d (tool) / %d (tide), want %d", r.group, r.partition, r.lag, tp.Lag, extra)
		}
	}
	for _, g := range groups {
		if seen[g] != parts {
			t.Errorf("kafka-consumer-groups lists %d partitions of %s, want %d:\n%s", seen[g], g, parts, out)
		}
	}
}
