package consumer

import (
	"sort"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
)

// Offsets a read_committed consumer never receives.
//
// Under transactions not every offset of a partition is a record the consumer gets:
// each transaction ends with a control record (its commit or abort marker), and the
// records of an aborted transaction are filtered out. sarama skips them without a
// word and does not expose its fetch position, so a runner that commits "last handled
// offset + 1" stops short of the high-water mark whenever a partition ends with a
// marker or an aborted transaction: the lag never reaches zero, and KEDA keeps a
// replica busy for records that do not exist.
//
// So when a partition has been idle for a commit interval while the claim's
// high-water mark is past the next offset to handle, the runner fetches from that
// offset itself, read_committed (the broker returns nothing past the last stable
// offset, so an open transaction is never passed), and marks past the batches at the
// front that a read_committed consumer never receives. It stops at the first batch
// that holds a record to hand over, so it never marks past a record still to come.

// skipFetchBytes bounds the scan: enough for many markers and small aborted batches;
// a larger run is passed over in several idle intervals.
const skipFetchBytes = 256 << 10

// idleSkipper is the per-partition state of that check: the next offset to handle,
// whether a record arrived since the last tick, and the ticker (one commit interval).
type idleSkipper struct {
	r     *Runner
	sess  sarama.ConsumerGroupSession
	claim sarama.ConsumerGroupClaim
	next  int64
	busy  bool
	tick  *time.Ticker
}

func (r *Runner) newIdleSkipper(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) *idleSkipper {
	return &idleSkipper{r: r, sess: sess, claim: claim, next: claim.InitialOffset(),
		tick: time.NewTicker(config.Millis(r.opts.Settings.CommitIntervalMS))}
}

// C ticks once per commit interval.
func (s *idleSkipper) C() <-chan time.Time { return s.tick.C }

// handled records that everything before next was handled and marked.
func (s *idleSkipper) handled(next int64) { s.next, s.busy = next, true }

// stop releases the ticker.
func (s *idleSkipper) stop() { s.tick.Stop() }

// idle runs on a tick: when no record arrived for a whole interval and the claim's
// high-water mark is past the next offset, it marks past the undeliverable offsets
// there, if any.
func (s *idleSkipper) idle() {
	busy := s.busy
	s.busy = false
	c := s.claim
	if busy || s.next < 0 || len(c.Messages()) > 0 || c.HighWaterMarkOffset() <= s.next {
		return
	}
	pos, err := s.r.pastUndeliverable(c.Topic(), c.Partition(), s.next)
	if err != nil {
		s.r.log.Debug("cannot look past control records", "topic", c.Topic(), "partition", c.Partition(), "offset", s.next, "err", err)
		return
	}
	if pos > s.next {
		s.sess.MarkOffset(c.Topic(), c.Partition(), pos, "")
		s.r.log.Debug("marked past control records and aborted transactions", "topic", c.Topic(),
			"partition", c.Partition(), "from", s.next, "to", pos)
		s.next = pos
	}
}

// pastUndeliverable fetches topic/partition from offset next, read_committed, and
// returns the offset after the undeliverable batches at the front (next when the
// first batch holds a record the consumer will receive).
func (r *Runner) pastUndeliverable(topic string, partition int32, next int64) (int64, error) {
	block, err := kafka.FetchCommitted(r.client, topic, partition, next, skipFetchBytes)
	if err != nil {
		return next, err
	}
	return skipUndeliverable(block, next), nil
}

// skipUndeliverable returns the offset after the batches of block, from offset next
// on, that a read_committed consumer never receives: control batches and batches of
// aborted transactions. It stops at the first batch with a record at or past next
// that is handed over, and at anything it cannot judge (legacy message sets,
// truncated batches), so the answer errs towards next.
func skipUndeliverable(block *sarama.FetchResponseBlock, next int64) int64 {
	pending := append([]*sarama.AbortedTransaction(nil), block.AbortedTransactions...)
	sort.Slice(pending, func(i, j int) bool { return pending[i].FirstOffset < pending[j].FirstOffset })
	aborted := map[int64]bool{} // producers inside an aborted transaction here
	pos := next
	for _, recs := range block.RecordsSet {
		b := recs.RecordBatch
		if b == nil || b.PartialTrailingRecord {
			return pos
		}
		last := b.LastOffset()
		for len(pending) > 0 && pending[0].FirstOffset <= last {
			aborted[pending[0].ProducerID] = true
			pending = pending[1:]
		}
		switch {
		case b.Control:
			// A producer has one transaction at a time, so its next marker ends the
			// aborted transaction it was in.
			delete(aborted, b.ProducerID)
		case b.IsTransactional && aborted[b.ProducerID]:
		default:
			for _, rec := range b.Records {
				if b.FirstOffset+rec.OffsetDelta >= pos {
					return pos // a record the consumer receives (or has not yet handled)
				}
			}
		}
		if last+1 > pos {
			pos = last + 1
		}
	}
	return pos
}
