package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/lag"
	"function/test/itest"
	"function/test/pipelinetest"
)

// produce writes n records per partition (values prefix-pP-I), idempotently, and
// waits for the broker's acknowledgement.
func produce(t *testing.T, bs []string, topic string, parts int32, prefix string, n int) []string {
	t.Helper()
	c := kafkaConfig(t)
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(bs, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	var values []string
	for part := int32(0); part < parts; part++ {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-p%d-%d", prefix, part, i)
			values = append(values, v)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: part, Value: sarama.StringEncoder(v)})
		}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	return values
}

// TestRestartedGroupResumesAtItsCommits stops tide's runner in the middle of a
// partition's backlog (its handler is slow) and starts a new one in the same group
// with INITIAL_OFFSET=latest, which only an existing group's commits can override.
// The first runner commits what it handled on shutdown, so across the restart every
// record is handled exactly once: none again (no work beyond the last commit was
// lost), none skipped (the second runner did not start at "latest").
func TestRestartedGroupResumesAtItsCommits(t *testing.T) {
	t.Parallel()
	bs := brokers(t)
	for _, tc := range []struct {
		name  string
		batch int
	}{
		{"records", 1},
		{"batches", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const parts, perPart = 3, 100
			topic := itest.UniqueName(t, "resume")
			group := itest.UniqueName(t, "g")
			createTopic(t, bs, topic, parts)
			client := newClient(t, bs)
			values := produce(t, bs, topic, parts, "before", perPart)

			first := &recorder{slow: 10 * time.Millisecond} // ~1 s per partition
			r1 := startRunner(t, bs, topic, consumerSettings(group, "earliest", tc.batch), first)
			pipelinetest.Eventually(t, 20*time.Second, "first runner mid-stream", func() (bool, string) {
				n := len(first.deliveries())
				return n >= parts*perPart/4, fmt.Sprintf("%d handled", n)
			})
			r1.stop()
			stopped := first.deliveries()
			if len(stopped) == len(values) {
				t.Fatalf("the first runner handled all %d records before it stopped; the restart tests nothing", len(values))
			}
			committed, err := lag.Committed(client, group, topic, []int32{0, 1, 2})
			if err != nil {
				t.Fatal(err)
			}
			// What was handled is what was committed: offsets [0, committed) each once.
			handledTo := map[int32]int64{}
			for _, d := range stopped {
				if d.offset+1 > handledTo[d.partition] {
					handledTo[d.partition] = d.offset + 1
				}
			}
			for p := int32(0); p < parts; p++ {
				if committed[p] != handledTo[p] {
					t.Errorf("partition %d: committed %d after shutdown, but handled up to %d", p, committed[p], handledTo[p])
				}
			}

			values = append(values, produce(t, bs, topic, parts, "after", 10)...)
			second := &recorder{}
			startRunner(t, bs, topic, consumerSettings(group, "latest", tc.batch), second)
			waitLag(t, client, group, topic, 30*time.Second)

			total := map[string]int{}
			for _, d := range append(stopped, second.deliveries()...) {
				total[d.value]++
			}
			for _, v := range values {
				if total[v] != 1 {
					t.Errorf("record %s handled %d times across the restart, want exactly once", v, total[v])
				}
			}
			for _, d := range second.deliveries() {
				if d.offset < committed[d.partition] {
					t.Errorf("second runner handled %d/%d again: below the commit %d", d.partition, d.offset, committed[d.partition])
				}
			}
			t.Logf("stopped after %d of %d records; commits at stop %v", len(stopped), parts*perPart, committed)
		})
	}
}
