package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"

	"function"
	"function/shared/config"
	"function/shared/kafka"
	"function/test/pipelinetest"
)

// TestAbortedTransactionNeverReachesConsumers writes three events of a
// transactional type in a Kafka transaction that is aborted, then posts events of
// the same key to ingest (a transactional type, routed through ingest's transactions,
// and a plain one). Both consumers read with read_committed: they must handle the
// posted events, which sit after the aborted ones on the same partition, and never
// the aborted ones.
func TestAbortedTransactionNeverReachesConsumers(t *testing.T) {
	const critical, plain, key, source = "test.critical", "test.plain", "txn-key", "/txn-test"
	p := pipelinetest.Start(t, func(o *function.Options) {
		o.Ingest.TransactionalTypes = []string{critical}
		// Unique per pipeline: pipelines share one broker, and a shared
		// transactional.id would fence each other.
		o.Ingest.TransactionalID = o.Ingest.Topic + "-ingest"
	})
	topic := p.Topic()

	// The aborted transaction: records that reach the log, then an abort marker.
	base, err := kafka.NewConfig(p.Opts.Ingest.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	aborter, err := sarama.NewAsyncProducer(p.Brokers, kafka.TxnProducerConfig(base, config.Producer{BatchSize: 10, BatchTimeoutMS: 5}, topic+"-aborter"))
	if err != nil {
		t.Fatal(err)
	}
	defer aborter.Close()
	if err := aborter.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		e := event.New()
		e.SetID(fmt.Sprintf("aborted-%d", i))
		e.SetSource(source)
		e.SetType(critical)
		e.SetSubject(key)
		m, err := kafka.EncodeRecord(context.Background(), topic, &e, key)
		if err != nil {
			t.Fatal(err)
		}
		aborter.Input() <- m
		select {
		case <-aborter.Successes():
		case pe := <-aborter.Errors():
			t.Fatal(pe)
		case <-time.After(30 * time.Second):
			t.Fatal("no acknowledgement of an aborted-transaction record")
		}
	}
	if err := aborter.AbortTxn(); err != nil {
		t.Fatal(err)
	}

	batch := `[` + strings.Join([]string{
		fmt.Sprintf(`{"specversion":"1.0","id":"committed-1","source":%q,"type":%q,"subject":%q}`, source, critical, key),
		fmt.Sprintf(`{"specversion":"1.0","id":"committed-2","source":%q,"type":%q,"subject":%q}`, source, critical, key),
		fmt.Sprintf(`{"specversion":"1.0","id":"plain-1","source":%q,"type":%q,"subject":%q}`, source, plain, key),
	}, ",") + `]`
	if code, body := p.Post("application/cloudevents-batch+json", []byte(batch), nil); code != http.StatusAccepted {
		t.Fatalf("batch: status %d: %s", code, body)
	}

	p.Eventually(30*time.Second, "posted events handled by both consumers", func() (bool, string) {
		st := p.Stats()
		n := p.Notifications(source, 100)
		return st.Events >= 3 && n.Total >= 3, fmt.Sprintf("analytics events=%d notifications=%d", st.Events, n.Total)
	})
	st := p.Stats()
	if st.Events != 3 || st.Types[critical] != 2 || st.Types[plain] != 1 {
		t.Errorf("analytics counted %d events, types %v; want 3: %s x2 and %s x1 (none of the aborted)", st.Events, st.Types, critical, plain)
	}
	var ids []string
	for _, n := range p.Notifications(source, 100).Notifications {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	if got := strings.Join(ids, ","); got != "committed-1,committed-2,plain-1" {
		t.Errorf("notifications for %s, want committed-1,committed-2,plain-1 (none of the aborted)", got)
	}

	// The critical events went through ingest's own transactions.
	if st := p.F.Ingest.TxnStats(); st.Commits == 0 {
		t.Errorf("ingest committed no transaction (%+v): the transactional type was not routed through one", st)
	}
}
