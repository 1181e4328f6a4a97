package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// Errors a Publish call can return besides the broker's own. Each means the records
// may or may not be in Kafka: the caller answers "retry" (ingest: 503) and the
// consumers deduplicate by (source, id) whatever lands twice.
var (
	// ErrBufferFull: more records, or more bytes, would be waiting for
	// acknowledgement than MaxBuffered or MaxBufferedBytes allow.
	ErrBufferFull = errors.New("kafka: publisher buffer full")
	// ErrClosed: the publisher is shutting down.
	ErrClosed = errors.New("kafka: publisher closed")
	// ErrAckTimeout: Kafka did not acknowledge within the ack timeout.
	ErrAckTimeout = errors.New("kafka: no acknowledgement in time")
)

// PublisherOptions tune a Publisher.
type PublisherOptions struct {
	// MaxBuffered bounds the records accepted and not yet acknowledged (default 20000).
	MaxBuffered int
	// MaxBufferedBytes bounds their bytes, as RecordBytes counts them (default 32 MiB).
	MaxBufferedBytes int64
	// AckTimeout bounds how long Publish waits for Kafka (default 10 s).
	AckTimeout time.Duration
	// OnAck, when set, is called once per Publish call that reached the producer,
	// with the number of records, the first error (nil when all were acknowledged)
	// and the time from Publish to the last acknowledgement. It runs on the
	// acknowledgement goroutine and must not block.
	OnAck func(records int, err error, latency time.Duration)
}

// Publisher sends records through one idempotent, acks=all sarama AsyncProducer and
// tells each caller when its own records are acknowledged.
//
// Request handlers call Publish from many goroutines; one dispatcher goroutine owns
// the producer's input, so sarama groups the records of many requests into the same
// produce requests (Flush.Messages / Flush.Frequency, from BATCH_SIZE and
// BATCH_TIMEOUT_MS). A second goroutine routes each acknowledgement back to the
// request it belongs to. Hold stops the dispatcher at a clean point, which is how the
// partition manager changes the partition count without reordering any key.
//
// An outage longer than the producer's retries fails the records in flight, and the
// Publisher keeps its producer: when sarama gives up a record that already had a
// sequence number, it rolls the idempotent producer's epoch over (IBM/sarama#1661), so
// the broker accepts the next records instead of refusing them as out of order
// forever. TestPublisherWorksAfterOutageLongerThanRetries (embedded broker) and
// `make test-idempotence` (a real one, killed) guard that.
type Publisher struct {
	client   sarama.Client
	producer sarama.AsyncProducer
	opts     PublisherOptions

	mu     sync.RWMutex // guards closed against sends on in
	closed bool
	in     chan *pending

	budget *budget // records and bytes accepted, not yet acknowledged

	gateMu   sync.Mutex
	gate     chan struct{} // non-nil while held; closed on release
	inflight int           // records handed to the producer, not yet acknowledged
	idle     *sync.Cond    // signalled (with gateMu) when inflight drops to 0

	acksDone chan struct{}
}

type pending struct {
	records []*sarama.ProducerMessage
	start   time.Time
	n       int
	bytes   int64 // taken from the budget, given back with the last acknowledgement
	left    atomic.Int32
	mu      sync.Mutex
	err     error
	done    chan struct{}
}

// NewPublisher connects to brokers with cfg (see ProducerConfig) and starts the
// dispatcher and acknowledgement goroutines. Close it to flush and stop.
func NewPublisher(brokers []string, cfg *sarama.Config, opts PublisherOptions) (*Publisher, error) {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p := &Publisher{
		client:   client,
		producer: producer,
		opts:     opts,
		budget:   newBudget(opts.MaxBuffered, opts.MaxBufferedBytes),
		in:       make(chan *pending, 1024),
		acksDone: make(chan struct{}),
	}
	p.idle = sync.NewCond(&p.gateMu)
	go p.dispatch()
	go p.routeAcks()
	return p, nil
}

// Client is the publisher's sarama client (for metadata: partition counts, offsets).
func (p *Publisher) Client() sarama.Client { return p.client }

// Buffered is the number of records accepted and not yet acknowledged.
func (p *Publisher) Buffered() int64 { return p.budget.records.Load() }

// BufferedBytes is the bytes (RecordBytes) of the records accepted and not yet
// acknowledged.
func (p *Publisher) BufferedBytes() int64 { return p.budget.bytes.Load() }

// Admissible returns nil when a Publish of about size bytes (0: unknown) would not
// be refused for the buffer bounds right now, and the ErrBufferFull it would get
// otherwise, so a caller can refuse a request before reading it. It takes nothing:
// Publish checks again.
func (p *Publisher) Admissible(size int64) error { return p.budget.admissible(size) }

// Publish sends msgs and returns when Kafka has acknowledged all of them (nil), when
// any failed (the first error), or when it gives up waiting (ErrAckTimeout, ctx's
// error). It refuses at once with ErrBufferFull when accepting msgs would put more
// than MaxBuffered records or MaxBufferedBytes bytes in flight, so memory stays
// bounded when Kafka stalls. A request that finds nothing buffered is let through
// whatever its size, or it could never be published.
func (p *Publisher) Publish(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	n, size := int64(len(msgs)), recordsBytes(msgs)
	if err := p.budget.take(n, size); err != nil {
		return err
	}
	req := &pending{records: msgs, start: time.Now(), n: len(msgs), bytes: size, done: make(chan struct{})}
	req.left.Store(int32(n))
	for _, m := range msgs {
		m.Metadata = req
	}
	if err := p.enqueue(ctx, req); err != nil {
		for _, m := range msgs {
			m.Metadata = nil
		}
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

func (p *Publisher) enqueue(ctx context.Context, req *pending) error {
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

// dispatch is the only goroutine that writes to the producer's input.
func (p *Publisher) dispatch() {
	for req := range p.in {
		p.admit(req.n)
		for _, m := range req.msgs() {
			p.producer.Input() <- m
		}
	}
	p.producer.AsyncClose()
}

// msgs is kept out of pending's fields to avoid holding the records after dispatch.
func (r *pending) msgs() []*sarama.ProducerMessage { return r.records }

func (p *Publisher) routeAcks() {
	defer close(p.acksDone)
	successes, errs := p.producer.Successes(), p.producer.Errors()
	for successes != nil || errs != nil {
		select {
		case m, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			p.ack(m, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			p.ack(pe.Msg, pe.Err)
		}
	}
}

func (p *Publisher) ack(m *sarama.ProducerMessage, err error) {
	req, _ := m.Metadata.(*pending)
	m.Metadata = nil
	p.gateMu.Lock()
	if p.inflight--; p.inflight == 0 {
		p.idle.Broadcast()
	}
	p.gateMu.Unlock()
	if req == nil {
		p.budget.give(1, 0)
		return
	}
	if err != nil {
		req.mu.Lock()
		if req.err == nil {
			req.err = fmt.Errorf("publish to %s: %w", m.Topic, err)
		}
		req.mu.Unlock()
	}
	if req.left.Add(-1) != 0 {
		p.budget.give(1, 0)
		return
	}
	// The request's bytes go back with its last record: it holds them all until then.
	p.budget.give(1, req.bytes)
	req.records = nil
	if p.opts.OnAck != nil {
		p.opts.OnAck(req.n, req.err, time.Since(req.start))
	}
	close(req.done)
}

// Hold stops handing new records to the producer and returns once every record
// handed over before is acknowledged (or ctx ends). Publish calls keep being
// accepted up to MaxBuffered and MaxBufferedBytes and wait. Release with Release; RefreshPartitions
// between the two makes the records held back use a new partition count.
func (p *Publisher) Hold(ctx context.Context) error {
	p.gateMu.Lock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
	p.gateMu.Unlock()
	drained := make(chan struct{})
	go func() {
		p.gateMu.Lock()
		for p.inflight > 0 {
			p.idle.Wait()
		}
		p.gateMu.Unlock()
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release undoes Hold.
func (p *Publisher) Release() {
	p.gateMu.Lock()
	defer p.gateMu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// admit waits while the publisher is held, then counts n records as in flight; the
// check and the count happen under one lock so Hold never misses a request that
// passed the gate.
func (p *Publisher) admit(n int) {
	for {
		p.gateMu.Lock()
		g := p.gate
		if g == nil {
			p.inflight += n
			p.gateMu.Unlock()
			return
		}
		p.gateMu.Unlock()
		<-g
	}
}

// RefreshPartitions reloads topic's metadata so records published from now on are
// partitioned over its current partition count, and returns that count.
func (p *Publisher) RefreshPartitions(topic string) (int, error) {
	return PartitionCount(p.client, topic)
}

// Close stops accepting records, waits until every accepted record is acknowledged or
// failed (or ctx ends), and closes the producer and client.
func (p *Publisher) Close(ctx context.Context) error {
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
	case <-p.acksDone:
	case <-ctx.Done():
		return fmt.Errorf("close publisher: %w (%d records unacknowledged)", ctx.Err(), p.Buffered())
	}
	return p.client.Close()
}
