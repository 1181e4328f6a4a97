package consumer

import (
	"testing"

	"github.com/IBM/sarama"
)

// batch builds a record batch at first with records at the given offset deltas and
// lastDelta as its last offset delta.
func batch(first int64, lastDelta int32, producer int64, txn, control bool, deltas ...int64) *sarama.Records {
	b := &sarama.RecordBatch{FirstOffset: first, LastOffsetDelta: lastDelta, ProducerID: producer, IsTransactional: txn, Control: control}
	for _, d := range deltas {
		b.Records = append(b.Records, &sarama.Record{OffsetDelta: d})
	}
	return &sarama.Records{RecordBatch: b}
}

// TestSkipUndeliverable pins which offsets a read_committed consumer never receives,
// so the runner may commit past them, and that it never moves past a record that
// will still be handed over.
func TestSkipUndeliverable(t *testing.T) {
	const p, q = 7, 8 // producer ids
	data := func(first int64, n int32, producer int64, txn bool) *sarama.Records {
		deltas := make([]int64, n)
		for i := range deltas {
			deltas[i] = int64(i)
		}
		return batch(first, n-1, producer, txn, false, deltas...)
	}
	marker := func(at int64, producer int64) *sarama.Records { return batch(at, 0, producer, true, true, 0) }
	for _, tc := range []struct {
		name    string
		next    int64
		aborted []*sarama.AbortedTransaction
		set     []*sarama.Records
		want    int64
	}{
		{"nothing fetched", 5, nil, nil, 5},
		{"commit marker at the end", 3, nil, []*sarama.Records{marker(3, p)}, 4},
		{"marker then committed data stops before the data", 3, nil,
			[]*sarama.Records{marker(3, p), data(4, 2, p, true)}, 4},
		{"data first: nothing to skip", 4, nil, []*sarama.Records{data(4, 2, p, false), marker(6, p)}, 4},
		{"aborted transaction and its marker", 10, []*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 10}},
			[]*sarama.Records{data(10, 3, p, true), marker(13, p)}, 14},
		{"marker, aborted transaction, marker", 9, []*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 10}},
			[]*sarama.Records{marker(9, q), data(10, 3, p, true), marker(13, p)}, 14},
		{"aborted transaction interleaved with a committed one stops at the committed data", 10,
			[]*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 10}},
			[]*sarama.Records{data(10, 2, p, true), data(12, 2, q, true), marker(14, p), marker(15, q)}, 12},
		{"another producer's marker does not end an aborted transaction", 10,
			[]*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 10}},
			[]*sarama.Records{data(10, 2, p, true), marker(12, q), data(13, 1, p, true), marker(14, p)}, 15},
		{"after the abort marker the producer's data is delivered again", 10,
			[]*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 10}},
			[]*sarama.Records{data(10, 2, p, true), marker(12, p), data(13, 2, p, true)}, 13},
		{"aborted transaction that began before next", 12, []*sarama.AbortedTransaction{{ProducerID: p, FirstOffset: 8}},
			[]*sarama.Records{data(8, 6, p, true), marker(14, p)}, 15},
		{"next inside a data batch stays", 7, nil, []*sarama.Records{data(5, 5, p, false)}, 7},
		{"compacted tail of a batch is passed", 7, nil,
			[]*sarama.Records{batch(5, 4, p, false, false, 0, 1), marker(10, p)}, 11},
		{"legacy message set is not judged", 3, nil, []*sarama.Records{{MsgSet: &sarama.MessageSet{}}, marker(4, p)}, 3},
		{"truncated batch is not judged", 3, nil, []*sarama.Records{marker(3, p), func() *sarama.Records {
			r := marker(4, p)
			r.RecordBatch.PartialTrailingRecord = true
			return r
		}()}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block := &sarama.FetchResponseBlock{AbortedTransactions: tc.aborted, RecordsSet: tc.set}
			if got := skipUndeliverable(block, tc.next); got != tc.want {
				t.Errorf("skipUndeliverable(next=%d) = %d, want %d", tc.next, got, tc.want)
			}
		})
	}
}
