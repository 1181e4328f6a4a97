package growth

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
	"function/test/itest"
)

// batch is a record batch of n records from first; pid > 0 makes it transactional.
func batch(first int64, n int, pid int64, control bool) *sarama.Records {
	b := &sarama.RecordBatch{FirstOffset: first, LastOffsetDelta: int32(n - 1), ProducerID: pid, IsTransactional: pid > 0, Control: control}
	for i := range n {
		b.Records = append(b.Records, &sarama.Record{OffsetDelta: int64(i)})
	}
	return &sarama.Records{RecordBatch: b}
}

func TestScan(t *testing.T) {
	tests := []struct {
		name      string
		sets      []*sarama.Records
		aborted   []*sarama.AbortedTransaction
		pos, to   int64
		next      int64
		found     bool
		unjudged  bool
		partially bool
	}{
		{name: "a record below the mark", sets: []*sarama.Records{batch(0, 3, -1, false)}, pos: 0, to: 3, next: 0, found: true},
		{name: "a batch that began before the position", sets: []*sarama.Records{batch(0, 5, -1, false)}, pos: 3, to: 5, next: 3, found: true},
		{name: "only a commit marker", sets: []*sarama.Records{batch(3, 1, 8, true)}, pos: 3, to: 4, next: 4},
		{name: "a committed transaction's records", sets: []*sarama.Records{batch(3, 2, 8, false), batch(5, 1, 8, true)}, pos: 3, to: 6, next: 3, found: true},
		{
			name: "an aborted transaction and its marker", aborted: []*sarama.AbortedTransaction{{ProducerID: 7, FirstOffset: 3}},
			sets: []*sarama.Records{batch(3, 2, 7, false), batch(5, 1, 7, true)}, pos: 3, to: 6, next: 6,
		},
		{
			name: "a record after an aborted transaction", aborted: []*sarama.AbortedTransaction{{ProducerID: 7, FirstOffset: 3}},
			sets: []*sarama.Records{batch(3, 2, 7, false), batch(5, 1, 7, true), batch(6, 1, -1, false)}, pos: 3, to: 7, next: 6, found: true,
		},
		{name: "records only at or past the mark", sets: []*sarama.Records{batch(3, 1, 8, true), batch(4, 2, -1, false)}, pos: 3, to: 4, next: 4},
		{name: "a legacy message set", sets: []*sarama.Records{{MsgSet: &sarama.MessageSet{}}}, pos: 2, to: 5, next: 2, unjudged: true},
		{name: "nothing returned", pos: 2, to: 5, next: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := &sarama.FetchResponseBlock{RecordsSet: tt.sets, AbortedTransactions: tt.aborted}
			next, found, judged := scan(block, tt.pos, tt.to)
			if next != tt.next || found != tt.found || judged == tt.unjudged {
				t.Fatalf("scan = (%d, found %v, judged %v), want (%d, %v, %v)", next, found, judged, tt.next, tt.found, !tt.unjudged)
			}
		})
	}
}

// TestDrainedLooksPastTransactionMarkers writes committed and aborted transactions
// and checks that Drained neither waits for the markers and aborted records (which a
// consumer never receives, so its commit stops short of them forever) nor passes
// over a record the group has not processed.
func TestDrainedLooksPastTransactionMarkers(t *testing.T) {
	c := newCluster(t, 1)
	pc := kafka.TxnProducerConfig(baseConfig(t), config.Producer{BatchSize: 10, BatchTimeoutMS: 1}, itest.UniqueName(t, "tx"))
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	tp, err := sarama.NewSyncProducer(c.brokers, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	txn := func(n int, commit bool) {
		t.Helper()
		if err := tp.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, _, err := tp.SendMessage(&sarama.ProducerMessage{Topic: c.topic, Value: sarama.StringEncoder("x")}); err != nil {
				t.Fatal(err)
			}
		}
		end := tp.CommitTxn
		if !commit {
			end = tp.AbortTxn
		}
		if err := end(); err != nil {
			t.Fatal(err)
		}
	}
	// marks waits until the last stable offset reached the high-water mark (the
	// markers are written after EndTxn returns), then returns the marks.
	marks := func(want int64) (Offsets, Offsets) {
		t.Helper()
		eventually(t, 10*time.Second, "high-water mark", func() bool {
			high, _, err := Marks(c.client, c.topic)
			return err == nil && high[0] == want
		})
		high, start, err := Marks(c.client, c.topic)
		if err != nil {
			t.Fatal(err)
		}
		return high, start
	}
	check := func(step string, high, start Offsets, committed int64, want bool, waiting string) {
		t.Helper()
		group := itest.UniqueName(t, "g")
		c.commit(t, group, map[int32]int64{0: committed})
		var ok bool
		var why string
		// A marker still being written holds the last stable offset back for a
		// moment: "drained" may take a few looks, "not drained" must stay so.
		for range 50 {
			if ok, why, err = Drained(c.client, group, c.topic, high, start); err != nil {
				t.Fatal(err)
			}
			if ok || !want {
				break
			}
		}
		if ok != want || (!ok && !strings.Contains(why, waiting)) {
			t.Fatalf("%s: committed %d of mark %d: drained %v (%s), want %v (%s)", step, committed, high[0], ok, why, want, waiting)
		}
	}

	txn(2, true) // records 0, 1; commit marker 2
	high, start := marks(3)
	check("committed transaction", high, start, 2, true, "")
	check("committed transaction, last record pending", high, start, 1, false, "a record not yet processed at offset 1")

	txn(2, false) // records 3, 4 aborted; abort marker 5
	high, start = marks(6)
	check("aborted transaction after the commit marker", high, start, 2, true, "")

	c.produce(t, 0, 1) // record 6
	high, start = marks(7)
	check("a plain record after them", high, start, 2, false, "a record not yet processed at offset 6")
	check("the plain record processed", high, start, 7, true, "")

	ok, why, err := Drained(c.client, itest.UniqueName(t, "never"), c.topic, high, start)
	if err != nil || !ok || !strings.Contains(why, "no committed offset") {
		t.Fatalf("a group that never consumed the topic: %v %q %v; want drained with a note", ok, why, err)
	}
}
