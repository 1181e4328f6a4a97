package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function"
	"function/shared/lag"
	"function/test/itest"
	"function/test/pipelinetest"
)

// txnProducer is a plain sarama transactional producer (not tide's publisher), so
// the transactions under test are exactly the ones the test writes.
type txnProducer struct {
	t     *testing.T
	p     sarama.SyncProducer
	topic string
	parts int32
}

func newTxnProducer(t *testing.T, bs []string, topic string, parts int32) *txnProducer {
	t.Helper()
	c := kafkaConfig(t)
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Transaction.ID = itest.UniqueName(t, "txid")
	c.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(bs, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return &txnProducer{t: t, p: p, topic: topic, parts: parts}
}

// begin starts a transaction and writes n records named tag-pP-I to every partition;
// it returns the values and, per partition, the offset of the first one.
func (tp *txnProducer) begin(tag string, n int) ([]string, map[int32]int64) {
	tp.t.Helper()
	if err := tp.p.BeginTxn(); err != nil {
		tp.t.Fatalf("begin %s: %v", tag, err)
	}
	var msgs []*sarama.ProducerMessage
	var values []string
	for part := int32(0); part < tp.parts; part++ {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-p%d-%d", tag, part, i)
			values = append(values, v)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: tp.topic, Partition: part, Value: sarama.StringEncoder(v)})
		}
	}
	if err := tp.p.SendMessages(msgs); err != nil {
		tp.t.Fatalf("send %s: %v", tag, err)
	}
	first := map[int32]int64{}
	for _, m := range msgs {
		if o, ok := first[m.Partition]; !ok || m.Offset < o {
			first[m.Partition] = m.Offset
		}
	}
	return values, first
}

func (tp *txnProducer) end(tag string, commit bool) {
	tp.t.Helper()
	end, verb := tp.p.AbortTxn, "abort"
	if commit {
		end, verb = tp.p.CommitTxn, "commit"
	}
	if err := end(); err != nil {
		tp.t.Fatalf("%s %s: %v", verb, tag, err)
	}
}

// TestReadCommittedSkipsAbortedAndCommitsPastControlRecords writes committed and
// aborted transactions with a plain sarama transactional producer and consumes them
// with tide's runner (read_committed), record by record and in batches. The runner
// must hand over every committed record once and no aborted one, and its commits must
// reach the high-water mark although the last offsets of each partition are control
// records (commit and abort markers) and aborted data that it never receives: a
// runner that only commits "last handled offset + 1" would show lag forever, and KEDA
// would keep a replica for it. While a transaction is open, the commit must not pass
// its first record.
func TestReadCommittedSkipsAbortedAndCommitsPastControlRecords(t *testing.T) {
	t.Parallel()
	bs := brokers(t)
	for _, tc := range []struct {
		name  string
		batch int
	}{
		{"records", 1},
		{"batches", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const parts = 2
			topic := itest.UniqueName(t, "txn")
			createTopic(t, bs, topic, parts)
			tp := newTxnProducer(t, bs, topic, parts)
			committed := map[string]bool{}
			aborted := map[string]bool{}
			txn := func(tag string, n int, commit bool) {
				values, _ := tp.begin(tag, n)
				tp.end(tag, commit)
				for _, v := range values {
					if commit {
						committed[v] = true
					} else {
						aborted[v] = true
					}
				}
			}
			// The partitions end with an abort: their last offsets hold nothing a
			// read_committed consumer receives.
			txn("c1", 3, true)
			txn("a1", 2, false)
			txn("c2", 2, true)
			txn("a2", 3, false)

			h := &recorder{}
			group := itest.UniqueName(t, "g")
			r := startRunner(t, bs, topic, consumerSettings(group, "earliest", tc.batch), h)
			client := newClient(t, bs)
			waitHandled := func(what string) {
				t.Helper()
				pipelinetest.Eventually(t, 20*time.Second, what, func() (bool, string) {
					got := h.counts()
					for v := range committed {
						if got[v] == 0 {
							return false, "missing " + v
						}
					}
					return true, ""
				})
			}
			waitHandled("committed records handled")
			waitLag(t, client, group, topic, 15*time.Second)

			// Live: a committed transaction, then an open one. Until it ends, the
			// group's commit stays at the open transaction's first offset (the last
			// stable offset): moving past it would skip its records after a restart.
			txn("c3", 2, true)
			waitHandled("live committed transaction handled")
			waitLag(t, client, group, topic, 15*time.Second)
			openValues, openFirst := tp.begin("o1", 2)
			for i := 0; i < 5; i++ { // several commit intervals (200 ms) of the runner
				ps, err := lag.Fetch(client, group, topic)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					if p.Committed > openFirst[p.Partition] {
						t.Fatalf("partition %d: committed %d past the open transaction starting at %d", p.Partition, p.Committed, openFirst[p.Partition])
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
			tp.end("o1", true)
			for _, v := range openValues {
				committed[v] = true
			}
			waitHandled("transaction committed after a pause handled")
			ps := waitLag(t, client, group, topic, 15*time.Second)
			r.stop()

			got := h.counts()
			for _, v := range sortedKeys(got) {
				if aborted[v] {
					t.Errorf("aborted record %s was handed to the handler", v)
				} else if got[v] != 1 {
					t.Errorf("record %s handled %d times, want once", v, got[v])
				}
			}
			if len(got) != len(committed) {
				t.Errorf("handled %d distinct records, want the %d committed", len(got), len(committed))
			}
			t.Logf("final offsets %+v", ps)
		})
	}
}

// TestTransactionalIngestCatchesUp runs the pipeline with a transactional event
// type, so ingest publishes those events inside Kafka transactions and every
// partition they reach ends with a commit marker. notification and analytics must
// still reach lag 0 (what KEDA scales on), before and after a restart of the
// functions, and count each event once: analytics resumes from the offsets it
// stored in Redis, which stop before the markers its commits to Kafka passed.
func TestTransactionalIngestCatchesUp(t *testing.T) {
	t.Parallel()
	itest.Redis(t)
	brokers(t)
	const critical = "itest.critical"
	p := pipelinetest.Start(t, func(o *function.Options) {
		o.Ingest.TransactionalTypes = []string{critical}
		o.Ingest.TransactionalID = o.Ingest.Topic + "-ingest" // pipelines share the broker
	})
	var events []string
	for i := 0; i < 12; i++ {
		typ := critical
		if i%4 == 3 {
			typ = "itest.plain"
		}
		events = append(events, fmt.Sprintf(`{"specversion":"1.0","id":"t-%d","source":"/itest/txn","type":%q,"subject":"k-%d"}`, i, typ, i))
	}
	if code, body := p.Post("application/cloudevents-batch+json", []byte("["+strings.Join(events, ",")+"]"), nil); code != http.StatusAccepted {
		t.Fatalf("batch: %d %s", code, body)
	}
	if code, body := p.Post("application/cloudevents+json", []byte(`{"specversion":"1.0","id":"t-last","source":"/itest/txn","type":"`+critical+`","subject":"k-0"}`), nil); code != http.StatusAccepted {
		t.Fatalf("single: %d %s", code, body)
	}
	if st := p.F.Ingest.TxnStats(); st.Commits == 0 {
		t.Fatalf("ingest committed no transaction (%+v): nothing here tests control records", st)
	}
	check := func(when string) {
		t.Helper()
		p.WaitCaughtUp(20 * time.Second)
		st := p.Stats()
		if st.Events != 13 || st.Types[critical] != 10 || st.Types["itest.plain"] != 3 {
			t.Errorf("%s: analytics counted %d events, types %v; want 13: 10 %s and 3 itest.plain", when, st.Events, st.Types, critical)
		}
		if n := p.Notifications("/itest/txn", 100); n.Total != 13 {
			t.Errorf("%s: %d notifications, want 13", when, n.Total)
		}
	}
	check("first run")
	p.StopFunctions()
	p.StartFunctions()
	check("after a restart")
}
