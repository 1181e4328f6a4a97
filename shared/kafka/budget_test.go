package kafka

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/IBM/sarama"
)

func TestBudgetBoundsRecordsAndBytes(t *testing.T) {
	b := newBudget(10, 1000)
	if err := b.take(4, 600); err != nil {
		t.Fatalf("first take: %v", err)
	}
	// 600 + 500 bytes is over the 1000-byte bound although 5 records fit.
	err := b.take(1, 500)
	if !errors.Is(err, ErrBufferFull) || !strings.Contains(err.Error(), "PRODUCER_MAX_BUFFERED_BYTES") {
		t.Fatalf("over the byte bound: err = %v, want ErrBufferFull naming PRODUCER_MAX_BUFFERED_BYTES", err)
	}
	// 4 + 7 records is over the record bound although the bytes fit.
	err = b.take(7, 7)
	if !errors.Is(err, ErrBufferFull) || !strings.Contains(err.Error(), "PRODUCER_MAX_BUFFERED)") {
		t.Fatalf("over the record bound: err = %v, want ErrBufferFull naming PRODUCER_MAX_BUFFERED", err)
	}
	if r, s := b.records.Load(), b.bytes.Load(); r != 4 || s != 600 {
		t.Fatalf("after two refusals: %d records, %d bytes, want 4 and 600 (a refusal takes nothing)", r, s)
	}
	if err := b.take(6, 400); err != nil {
		t.Fatalf("a take that exactly fills both bounds: %v", err)
	}
	b.give(4, 600)
	b.give(6, 400)
	if r, s := b.records.Load(), b.bytes.Load(); r != 0 || s != 0 {
		t.Fatalf("after giving everything back: %d records, %d bytes, want 0", r, s)
	}
}

func TestBudgetLetsAnOversizedRequestThroughAlone(t *testing.T) {
	b := newBudget(10, 1000)
	if err := b.take(50, 5000); err != nil {
		t.Fatalf("an oversized request with nothing buffered must go through: %v", err)
	}
	if err := b.take(1, 1); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("while it is buffered: err = %v, want ErrBufferFull", err)
	}
	if err := b.admissible(0); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("admissible while full: %v, want ErrBufferFull", err)
	}
	b.give(50, 5000)
	if err := b.admissible(1 << 30); err != nil {
		t.Fatalf("admissible with nothing buffered: %v, want nil whatever the size", err)
	}
}

func TestBudgetAdmissible(t *testing.T) {
	b := newBudget(10, 1000)
	if err := b.take(2, 700); err != nil {
		t.Fatal(err)
	}
	if err := b.admissible(300); err != nil {
		t.Errorf("300 bytes with 300 free: %v, want nil", err)
	}
	if err := b.admissible(301); !errors.Is(err, ErrBufferFull) || !strings.Contains(err.Error(), "PRODUCER_MAX_BUFFERED_BYTES") {
		t.Errorf("301 bytes with 300 free: %v, want ErrBufferFull naming PRODUCER_MAX_BUFFERED_BYTES", err)
	}
	if err := b.take(8, 8); err != nil {
		t.Fatal(err)
	}
	if err := b.admissible(0); !errors.Is(err, ErrBufferFull) || !strings.Contains(err.Error(), "PRODUCER_MAX_BUFFERED)") {
		t.Errorf("10 of 10 records: %v, want ErrBufferFull naming PRODUCER_MAX_BUFFERED", err)
	}
	if r, s := b.records.Load(), b.bytes.Load(); r != 10 || s != 708 {
		t.Errorf("admissible took something: %d records, %d bytes, want 10 and 708", r, s)
	}
}

// TestBudgetFullAfterARefusal: once a take is refused, the budget counts as full for
// admissible until something is given back, even with bytes left: the next request's
// records are only known once it is read, and would most likely not fit either.
func TestBudgetFullAfterARefusal(t *testing.T) {
	b := newBudget(10, 1000)
	if err := b.take(2, 700); err != nil {
		t.Fatal(err)
	}
	if err := b.admissible(100); err != nil {
		t.Fatalf("before any refusal: %v", err)
	}
	if err := b.take(2, 400); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("400 bytes with 300 free: %v, want ErrBufferFull", err)
	}
	err := b.admissible(100)
	if !errors.Is(err, ErrBufferFull) || !strings.Contains(err.Error(), "PRODUCER_MAX_BUFFERED_BYTES") || !strings.Contains(err.Error(), "nothing was acknowledged since") {
		t.Fatalf("after the refusal: %v, want ErrBufferFull naming the bound and saying nothing was acknowledged", err)
	}
	b.give(1, 0)
	if err := b.admissible(100); err != nil {
		t.Fatalf("after a record was given back: %v, want nil", err)
	}
}

func TestBudgetConcurrentTakesNeverExceedOrLeak(t *testing.T) {
	b := newBudget(100, 10000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	peakR, peakS := int64(0), int64(0)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				if b.take(3, 250) != nil {
					continue
				}
				r, s := b.records.Load(), b.bytes.Load()
				mu.Lock()
				peakR, peakS = max(peakR, r), max(peakS, s)
				mu.Unlock()
				b.give(3, 250)
			}
		}()
	}
	wg.Wait()
	if r, s := b.records.Load(), b.bytes.Load(); r != 0 || s != 0 {
		t.Fatalf("%d records, %d bytes left after every take was given back", r, s)
	}
	// Refused takes add and remove their share, so a reading can briefly include
	// one in-flight attempt per goroutine beyond the bound, never more.
	if peakR > 100+8*3 || peakS > 10000+8*250 {
		t.Fatalf("peak %d records, %d bytes: beyond the bounds plus the attempts in flight", peakR, peakS)
	}
}

func TestRecordBytesCountsKeyValueHeadersAndOverhead(t *testing.T) {
	m := &sarama.ProducerMessage{Key: sarama.StringEncoder("key"), Value: sarama.ByteEncoder(make([]byte, 1024))}
	bare := RecordBytes(m)
	if bare < 1024+3+int64(messageOverhead) {
		t.Fatalf("RecordBytes = %d, below value + key + the message struct (%d)", bare, 1024+3+messageOverhead)
	}
	m.Headers = []sarama.RecordHeader{{Key: []byte("ce_id"), Value: []byte("0123456789")}}
	if got := RecordBytes(m); got < bare+15+int64(headerOverhead) {
		t.Fatalf("a 15-byte header added %d bytes, want at least %d", got-bare, 15+headerOverhead)
	}
}
