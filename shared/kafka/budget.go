package kafka

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/IBM/sarama"
)

// Defaults of the buffer bounds (PRODUCER_MAX_BUFFERED, PRODUCER_MAX_BUFFERED_BYTES).
const (
	DefaultMaxBuffered      = 20000
	DefaultMaxBufferedBytes = 32 << 20
)

// budget bounds what a publisher holds for Kafka: the records accepted and not yet
// answered, and their bytes (RecordBytes). A request takes its share before it is
// queued and gives it back exactly once, when Kafka has answered for all its records
// (or it never reached the producer). Either bound refuses with ErrBufferFull, except
// for a request that finds nothing buffered, which is let through alone, or a request
// larger than a bound could never be published.
type budget struct {
	maxRecords, maxBytes int64
	records, bytes       atomic.Int64

	gives   atomic.Uint64           // calls of give so far
	refused atomic.Pointer[refusal] // the last refusal of take
}

// refusal is a take refused when gives was at a count: until the next give, the
// budget is full for a request like it.
type refusal struct {
	gives uint64
	err   error
}

func newBudget(maxRecords int, maxBytes int64) *budget {
	if maxRecords <= 0 {
		maxRecords = DefaultMaxBuffered
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBufferedBytes
	}
	return &budget{maxRecords: int64(maxRecords), maxBytes: maxBytes}
}

// take counts n records of size bytes in, or refuses them with an error wrapping
// ErrBufferFull that says which bound was reached.
func (b *budget) take(n, size int64) error {
	g := b.gives.Load() // before the counts: a give after it makes this refusal stale
	r, s := b.records.Add(n), b.bytes.Add(size)
	// r == n and s == size: nothing else was buffered, so even a request larger than
	// a bound goes through (alone).
	overRecords := r > b.maxRecords && r != n
	overBytes := s > b.maxBytes && s != size
	if !overRecords && !overBytes {
		return nil
	}
	b.records.Add(-n)
	b.bytes.Add(-size)
	err := fmt.Errorf("%w: %d bytes would be waiting for Kafka, the limit is %d (PRODUCER_MAX_BUFFERED_BYTES)", ErrBufferFull, s, b.maxBytes)
	if overRecords {
		err = fmt.Errorf("%w: %d records would be waiting for Kafka, the limit is %d (PRODUCER_MAX_BUFFERED)", ErrBufferFull, r, b.maxRecords)
	}
	b.refused.Store(&refusal{gives: g, err: err})
	return err
}

// give returns records and bytes taken before; each take is given back once, which
// the tests check by the counts returning to exactly zero.
func (b *budget) give(n, size int64) {
	b.records.Add(-n)
	b.bytes.Add(-size)
	b.gives.Add(1)
}

// admissible reports, without taking anything, whether a request of about size
// bytes (0: unknown) would be refused now: when a bound is reached, when size does
// not fit in the bytes left, or when the last take was refused and nothing was given
// back since (a request's size is only known once it is read and encoded, and its
// records take more than its body: the next one would most likely be refused too).
func (b *budget) admissible(size int64) error {
	g := b.gives.Load()
	r, s := b.records.Load(), b.bytes.Load()
	last := b.refused.Load()
	switch {
	case r == 0 && s == 0:
		return nil
	case last != nil && last.gives == g:
		return fmt.Errorf("%w; nothing was acknowledged since", last.err)
	case r >= b.maxRecords:
		return fmt.Errorf("%w: %d records are waiting for Kafka, the limit is %d (PRODUCER_MAX_BUFFERED)", ErrBufferFull, r, b.maxRecords)
	case s >= b.maxBytes || s+size > b.maxBytes:
		return fmt.Errorf("%w: %d bytes are waiting for Kafka, %d more would exceed the limit of %d (PRODUCER_MAX_BUFFERED_BYTES)", ErrBufferFull, s, size, b.maxBytes)
	}
	return nil
}

// Per-record memory the producer holds besides the record's wire bytes: the
// ProducerMessage and its header slice.
const (
	messageOverhead = int(unsafe.Sizeof(sarama.ProducerMessage{}))
	headerOverhead  = int(unsafe.Sizeof(sarama.RecordHeader{}))
)

// RecordBytes is what the publishers count for m against MaxBufferedBytes: its size
// in a record batch (key, value, headers and their framing) plus the Go structures
// that carry it, an estimate of the memory m holds until Kafka answers.
func RecordBytes(m *sarama.ProducerMessage) int64 {
	return int64(m.ByteSize(2) + messageOverhead + len(m.Headers)*headerOverhead)
}

// recordsBytes is the sum of RecordBytes over msgs.
func recordsBytes(msgs []*sarama.ProducerMessage) int64 {
	var n int64
	for _, m := range msgs {
		n += RecordBytes(m)
	}
	return n
}
