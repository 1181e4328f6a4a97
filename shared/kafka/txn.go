package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
)

// TransactionalID is the transactional.id of this process's transactional producer:
// TRANSACTIONAL_ID when set, else KAFKA_CLIENT_ID and the host name. It must be stable
// across restarts of one instance (so a restarted instance fences its predecessor and
// finishes the transaction it left open) and unique among instances running at once
// (Kafka fences the older of two producers sharing an id).
func TransactionalID(k config.Kafka, p config.Producer) string {
	if p.TransactionalID != "" {
		return p.TransactionalID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return k.ClientID + "-" + host
}

// TxnProducerConfig returns c set up for a transactional producer with id: the
// idempotent, acks=all settings of ProducerConfig plus Producer.Transaction.ID.
// sarama refuses a transactional producer that is not idempotent, and an idempotent
// one needs Net.MaxOpenRequests = 1 and a protocol version of 0.11 or later (tide pins
// 2.1 or later). Flush.Frequency is left to the TxnPublisher's window: a transaction
// is flushed as a whole by CommitTxn.
func TxnProducerConfig(c *sarama.Config, p config.Producer, id string) *sarama.Config {
	pc := ProducerConfig(c, p)
	pc.Producer.Transaction.ID = id
	// A transaction that its producer abandoned (crash, fencing) is aborted by the
	// coordinator after this long; until then it holds back read_committed consumers
	// of its partitions (the last stable offset cannot pass it).
	pc.Producer.Transaction.Timeout = 30 * time.Second
	// Coordinator requests (AddPartitionsToTxn, EndTxn, InitProducerId) retry this
	// often; 50 x 100 ms (sarama's default) keeps a caller waiting past its ack
	// timeout while the coordinator is away.
	pc.Producer.Transaction.Retry.Max = 20
	pc.Producer.Transaction.Retry.Backoff = 100 * time.Millisecond
	return pc
}

// ErrTxnAborted is returned (wrapped with the cause) to every caller whose records
// were in a transaction that was aborted or whose commit failed: none of them is
// visible to read_committed consumers, or, when a commit's outcome is unknown, the
// caller retries and the consumers deduplicate by (source, id).
var ErrTxnAborted = errors.New("kafka: transaction aborted")

// TxnOptions tune a TxnPublisher.
type TxnOptions struct {
	// Window is how long the first request of a transaction waits for others to join
	// it (BATCH_TIMEOUT_MS; default 1 ms). Requests that arrive while a transaction is
	// being committed wait for the next one, so under load transactions grow instead
	// of multiplying.
	Window time.Duration
	// MaxRecords closes a window early once this many records are gathered
	// (BATCH_SIZE; default 1000). A single larger request is never split.
	MaxRecords int
	// MaxBuffered bounds the records accepted and not yet acknowledged (default 20000).
	MaxBuffered int
	// MaxBufferedBytes bounds their bytes, as RecordBytes counts them (default 32 MiB).
	MaxBufferedBytes int64
	// AckTimeout bounds how long Publish waits (default 10 s).
	AckTimeout time.Duration
	// OnAck, when set, is called once per Publish call that reached a transaction,
	// like PublisherOptions.OnAck. It runs on the publisher's goroutine and must not
	// block.
	OnAck func(records int, err error, latency time.Duration)
	// Logger receives transaction aborts and producer resets (default slog.Default).
	Logger *slog.Logger
}

// TxnPublisher publishes records in Kafka transactions, for the event types whose
// records must be all-or-nothing to read_committed consumers.
//
// One goroutine owns a transactional sarama AsyncProducer. It gathers the requests
// of concurrent callers for a window (TxnOptions.Window), publishes all their records
// in one transaction and answers every caller of that transaction after CommitTxn:
// nil when it committed, an error wrapping ErrTxnAborted otherwise. On failure it
// reads the producer's TxnStatus: an abortable error (ProducerTxnFlagAbortableError)
// is recovered by AbortTxn and the producer is kept; a fatal one
// (ProducerTxnFlagFatalError), a failed abort or a commit whose outcome is unknown
// closes the producer, and the next transaction starts a new one with the same
// transactional.id, which fences the old epoch and makes the coordinator abort
// whatever it left open.
//
// Hold, Release and RefreshPartitions let the partition manager change the partition
// count between two transactions, as for Publisher.
type TxnPublisher struct {
	brokers []string
	cfg     *sarama.Config
	opts    TxnOptions
	log     *slog.Logger
	// client is shared by every producer the publisher creates, so RefreshPartitions
	// reaches the metadata the next transaction partitions with.
	client sarama.Client

	gateMu sync.Mutex
	gate   chan struct{} // non-nil while held; closed on release
	busy   bool          // a transaction is being gathered, published or committed
	idle   *sync.Cond    // signalled (with gateMu) when busy turns false

	mu     sync.RWMutex // guards closed against sends on in
	closed bool
	in     chan *txnRequest
	done   chan struct{}

	budget  *budget // records and bytes accepted, not yet answered
	commits atomic.Int64
	aborts  atomic.Int64
	resets  atomic.Int64
}

type txnRequest struct {
	msgs  []*sarama.ProducerMessage
	bytes int64 // taken from the budget, given back when answered
	start time.Time
	err   error // written by the owner goroutine before done is closed
	done  chan struct{}
}

// NewTxnPublisher starts a transactional producer with cfg (see TxnProducerConfig;
// Producer.Transaction.ID must be set) and the goroutine that owns it. The first
// producer is created here, so a broker without transaction support (or a missing
// transaction state log) fails start-up rather than the first request. Close it to
// finish the last transaction and stop.
func NewTxnPublisher(brokers []string, cfg *sarama.Config, opts TxnOptions) (*TxnPublisher, error) {
	if cfg.Producer.Transaction.ID == "" {
		return nil, errors.New("kafka: transactional publisher needs Producer.Transaction.ID")
	}
	if opts.Window <= 0 {
		opts.Window = 5 * time.Millisecond
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 1000
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &TxnPublisher{
		brokers: brokers,
		cfg:     cfg,
		opts:    opts,
		budget:  newBudget(opts.MaxBuffered, opts.MaxBufferedBytes),
		log:     opts.Logger.With("transactional_id", cfg.Producer.Transaction.ID),
		in:      make(chan *txnRequest, 1024),
		done:    make(chan struct{}),
	}
	p.idle = sync.NewCond(&p.gateMu)
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("transactional producer %s: kafka client: %w", cfg.Producer.Transaction.ID, err)
	}
	p.client = client
	tp, err := p.connect()
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	go p.run(tp)
	return p, nil
}

// Buffered is the number of records accepted and not yet answered.
func (p *TxnPublisher) Buffered() int64 { return p.budget.records.Load() }

// BufferedBytes is the bytes (RecordBytes) of the records accepted and not yet
// answered.
func (p *TxnPublisher) BufferedBytes() int64 { return p.budget.bytes.Load() }

// Admissible is Publisher.Admissible for the transactional publisher.
func (p *TxnPublisher) Admissible(size int64) error { return p.budget.admissible(size) }

// TxnStats counts what the publisher did with its transactions.
type TxnStats struct {
	Commits int64 // transactions committed
	Aborts  int64 // transactions aborted (the producer was kept)
	Resets  int64 // producers closed and replaced after a fatal or unknown outcome
}

// Stats returns the transaction counters.
func (p *TxnPublisher) Stats() TxnStats {
	return TxnStats{Commits: p.commits.Load(), Aborts: p.aborts.Load(), Resets: p.resets.Load()}
}

// Publish sends msgs in a transaction (shared with concurrent callers) and returns
// nil once it committed, an error wrapping ErrTxnAborted when it did not, or
// ErrBufferFull, ErrClosed, ErrAckTimeout or ctx's error like Publisher.Publish.
func (p *TxnPublisher) Publish(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	n, size := int64(len(msgs)), recordsBytes(msgs)
	if err := p.budget.take(n, size); err != nil {
		return err
	}
	req := &txnRequest{msgs: msgs, bytes: size, start: time.Now(), done: make(chan struct{})}
	if err := p.enqueue(ctx, req); err != nil {
		p.budget.give(n, size)
		return err
	}
	timer := time.NewTimer(p.opts.AckTimeout)
	defer timer.Stop()
	select {
	case <-req.done:
		return req.err
	case <-timer.C:
		return ErrAckTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *TxnPublisher) enqueue(ctx context.Context, req *txnRequest) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.in <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the only goroutine that touches the producer.
func (p *TxnPublisher) run(tp *txnProducer) {
	defer close(p.done)
	for {
		first, ok := <-p.in
		if !ok {
			break
		}
		p.admit()
		batch := p.gather(first)
		var err error
		if tp == nil {
			if tp, err = p.connect(); err != nil {
				p.answer(batch, fmt.Errorf("%w: %w", ErrTxnAborted, err))
				continue
			}
		}
		if err = tp.transact(batch); err != nil {
			tp = p.recover(tp, err)
			err = fmt.Errorf("%w: %w", ErrTxnAborted, err)
		} else {
			p.commits.Add(1)
		}
		p.answer(batch, err)
		p.finish()
	}
	if tp != nil {
		tp.close()
	}
}

// gather collects the requests that arrive within the window after first, up to
// MaxRecords records.
func (p *TxnPublisher) gather(first *txnRequest) []*txnRequest {
	batch := []*txnRequest{first}
	n := len(first.msgs)
	timer := time.NewTimer(p.opts.Window)
	defer timer.Stop()
	for n < p.opts.MaxRecords {
		select {
		case r, ok := <-p.in:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			n += len(r.msgs)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

func (p *TxnPublisher) answer(batch []*txnRequest, err error) {
	for _, r := range batch {
		r.err = err
		p.budget.give(int64(len(r.msgs)), r.bytes)
		if p.opts.OnAck != nil {
			p.opts.OnAck(len(r.msgs), err, time.Since(r.start))
		}
		close(r.done)
	}
}

// recover leaves tp ready for the next transaction after err, or closes it and
// returns nil so the next transaction starts a new producer.
//
// An abortable error must be answered with AbortTxn: sarama keeps the producer in
// ProducerTxnFlagAbortableError until then (IBM/sarama#2859). Nothing else is retried
// in place: a transactional producer reused after its connections broke can keep
// failing on out-of-order sequence numbers (IBM/sarama#2611), and a commit whose
// EndTxn retries ran out has an unknown outcome, which Kafka's Java client also turns
// into an abort rather than a blind retry (KAFKA-19176, apache/kafka#19522).
func (p *TxnPublisher) recover(tp *txnProducer, cause error) *txnProducer {
	st := tp.TxnStatus()
	if st&sarama.ProducerTxnFlagFatalError == 0 &&
		st&(sarama.ProducerTxnFlagAbortableError|sarama.ProducerTxnFlagInTransaction) != 0 {
		err := tp.AbortTxn()
		if err == nil && tp.TxnStatus()&sarama.ProducerTxnFlagReady != 0 {
			p.aborts.Add(1)
			p.log.Warn("transaction aborted; its callers retry", "err", cause)
			return tp
		}
		cause = errors.Join(cause, err)
	}
	// Fatal (fenced, unauthorised), an abort that failed, or a commit whose outcome is
	// unknown (EndTxn retries exhausted): only a new producer with the same
	// transactional.id resolves it, because InitProducerId makes the coordinator
	// finish or abort what the old epoch left open.
	p.resets.Add(1)
	p.log.Error("transactional producer reset", "err", cause, "status", st.String())
	tp.close()
	return nil
}

// connect creates a transactional producer; sarama runs InitProducerId in it.
func (p *TxnPublisher) connect() (*txnProducer, error) {
	ap, err := sarama.NewAsyncProducerFromClient(p.client)
	if err != nil {
		return nil, fmt.Errorf("transactional producer %s: %w", p.cfg.Producer.Transaction.ID, err)
	}
	tp := &txnProducer{AsyncProducer: ap, acksDone: make(chan struct{})}
	go tp.routeAcks()
	return tp, nil
}

// Close stops accepting records, lets the goroutine finish the transactions already
// accepted (or ctx end), and closes the producer.
func (p *TxnPublisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.in)
	p.mu.Unlock()
	p.Release()
	select {
	case <-p.done:
		return p.client.Close()
	case <-ctx.Done():
		return fmt.Errorf("close transactional publisher: %w (%d records unanswered)", ctx.Err(), p.Buffered())
	}
}

// Hold stops starting transactions and returns once the transaction under way, if
// any, is committed or aborted and answered (or ctx ends; the publisher stays held).
// Publish calls keep being accepted up to MaxBuffered and MaxBufferedBytes and wait. Release with Release;
// RefreshPartitions between the two makes the held records use a new partition count.
func (p *TxnPublisher) Hold(ctx context.Context) error {
	p.gateMu.Lock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
	p.gateMu.Unlock()
	idle := make(chan struct{})
	go func() {
		p.gateMu.Lock()
		for p.busy {
			p.idle.Wait()
		}
		p.gateMu.Unlock()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release undoes Hold.
func (p *TxnPublisher) Release() {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// RefreshPartitions reloads topic's metadata so transactions started from now on
// partition over its current partition count, and returns that count.
func (p *TxnPublisher) RefreshPartitions(topic string) (int, error) {
	return PartitionCount(p.client, topic)
}

// admit waits while the publisher is held, then marks a transaction under way; the
// check and the mark happen under one lock so Hold never misses a transaction.
func (p *TxnPublisher) admit() {
	for {
		p.gateMu.Lock()
		g := p.gate
		if g == nil {
			p.busy = true
			p.gateMu.Unlock()
			return
		}
		p.gateMu.Unlock()
		<-g
	}
}

// finish marks the transaction under way as answered.
func (p *TxnPublisher) finish() {
	p.gateMu.Lock()
	p.busy = false
	p.idle.Broadcast()
	p.gateMu.Unlock()
}

// txnProducer is a transactional AsyncProducer and the goroutine that drains its
// acknowledgements (sarama blocks if Successes or Errors are not read).
type txnProducer struct {
	sarama.AsyncProducer
	acksDone chan struct{}
}

// txnAcks counts the acknowledgements of one transaction's records.
type txnAcks struct {
	left atomic.Int64
	mu   sync.Mutex
	err  error
	done chan struct{}
}

func (a *txnAcks) ack(err error) {
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
	}
	if a.left.Add(-1) == 0 {
		close(a.done)
	}
}

func (tp *txnProducer) routeAcks() {
	defer close(tp.acksDone)
	successes, errs := tp.Successes(), tp.Errors()
	for successes != nil || errs != nil {
		select {
		case m, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			if a, _ := m.Metadata.(*txnAcks); a != nil {
				a.ack(nil)
			}
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if a, _ := pe.Msg.Metadata.(*txnAcks); a != nil {
				a.ack(fmt.Errorf("publish to %s: %w", pe.Msg.Topic, pe.Err))
			}
		}
	}
}

// transact publishes the records of batch in one transaction and commits it. Every
// record is acknowledged (or failed) before CommitTxn, so a record that failed is
// never part of a committed transaction.
func (tp *txnProducer) transact(batch []*txnRequest) error {
	if err := tp.BeginTxn(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	acks := &txnAcks{done: make(chan struct{})}
	n := 0
	for _, r := range batch {
		n += len(r.msgs)
	}
	acks.left.Store(int64(n))
	for _, r := range batch {
		for _, m := range r.msgs {
			m.Metadata = acks
			tp.Input() <- m
		}
	}
	// sarama answers every record (success, or an error once its retries are spent).
	<-acks.done
	if acks.err != nil {
		return acks.err
	}
	if err := tp.CommitTxn(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// close closes the producer and waits until its acknowledgements are drained.
func (tp *txnProducer) close() {
	tp.AsyncClose()
	<-tp.acksDone
}
