// Package ingest is tide's front door: it takes CloudEvents over HTTP (binary,
// structured and batch modes), validates them, chooses each one's partition key and
// publishes them to Kafka through the batching, idempotent Publisher. It answers 202
// only when Kafka has acknowledged every event of the request.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"function/shared/health"
	"function/shared/kafka"
	"function/shared/metrics"
	"function/shared/problem"
)

// Function is the ingest function in the Knative function shape.
type Function struct {
	cfg     Config
	limits  Limits
	log     *slog.Logger
	metrics *metrics.Metrics
	pub     *kafka.Publisher
	txn     txnRoute // TRANSACTIONAL_TYPES, see txn.go
	watcher *health.Watcher
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
	stop    sync.Once

	guard *guard // API keys and rate limits, see protect.go

	coord coordination // partition growth without reordering, see partitions.go
}

// New returns an unstarted function; Start configures it from the environment.
func New() *Function { return &Function{} }

// Start loads the configuration from the environment and starts the function.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	return f.StartWith(ctx, cfg, slog.Default(), metrics.New())
}

// StartWith creates the topics when missing and connects the publisher.
func (f *Function) StartWith(ctx context.Context, cfg Config, log *slog.Logger, m *metrics.Metrics) error {
	f.cfg, f.limits, f.log, f.metrics = cfg, cfg.Limits(), log.With("function", "ingest"), m
	base, err := kafka.NewConfig(cfg.Kafka)
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(cfg.Kafka, base); err != nil {
		return err
	}
	if f.guard, err = startGuard(ctx, cfg, base, f.log, m); err != nil {
		return err
	}
	f.pub, err = kafka.NewPublisher(cfg.Brokers, kafka.ProducerConfig(base, cfg.Producer), kafka.PublisherOptions{
		MaxBuffered:      cfg.MaxBuffered,
		MaxBufferedBytes: cfg.MaxBufferedBytes,
		AckTimeout:       cfg.AckTimeout(),
		OnAck:            f.onAck,
	})
	if err != nil {
		_ = f.guard.close()
		return err
	}
	if err := f.startTxn(cfg, base); err != nil {
		_ = f.pub.Close(ctx)
		_ = f.guard.close()
		return err
	}
	if err := f.startCoordination(ctx, cfg); err != nil {
		_ = f.pub.Close(ctx)
		_ = f.closeTxn(ctx)
		_ = f.guard.close()
		return err
	}
	m.SetBuffered(func() float64 { return float64(f.pub.Buffered()) })
	if n, err := f.pub.RefreshPartitions(cfg.Topic); err == nil {
		m.TopicPartitions.WithLabelValues(cfg.Topic).Set(float64(n))
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.watcher = health.NewWatcher(f.log, 5*time.Second, health.Check{
		Name: "kafka", Probe: kafka.Probe(f.pub.Client(), cfg.Topic), Up: m.KafkaUp, Reconnects: m.KafkaReconnects,
	})
	f.watcher.ProbeNow(ctx)
	f.wg.Add(1)
	go func() { defer f.wg.Done(); f.watcher.Run(runCtx) }()
	f.started = true
	return nil
}

func (f *Function) onAck(n int, err error, latency time.Duration) {
	if err != nil {
		f.metrics.ProduceErrors.WithLabelValues(f.cfg.Topic).Add(float64(n))
		return
	}
	f.metrics.ProducedRecords.WithLabelValues(f.cfg.Topic).Add(float64(n))
	f.metrics.ProduceLatency.Observe(latency.Seconds())
}

// Stop drains: every event already accepted is flushed to Kafka (or fails) before
// the producer closes. The HTTP server must have stopped taking requests first.
func (f *Function) Stop(ctx context.Context) error {
	if !f.started {
		return nil
	}
	var err error
	f.stop.Do(func() {
		// Leave the partition protocol first: it waits out a hold under way.
		err = errors.Join(f.coord.close(ctx), f.pub.Close(ctx), f.closeTxn(ctx), f.guard.close())
		f.cancel()
		f.wg.Wait()
	})
	return err
}

// Ready reports whether Kafka answers and, with partition coordination on, the
// replica's lease in Redis is current: a replica cut off from Redis holds every
// publish, so it must not be sent traffic it can only answer 503.
func (f *Function) Ready(context.Context) (bool, error) {
	if err := f.coord.cutOff(); err != nil {
		return false, err
	}
	return f.started && f.watcher.Up(), nil
}

// Alive reports whether the function's background loop still runs.
func (f *Function) Alive(context.Context) (bool, error) {
	return f.watcher == nil || f.watcher.Alive(), nil
}

// Publisher is the function's publisher (the partition manager holds and releases it).
func (f *Function) Publisher() *kafka.Publisher { return f.pub }

// Handle publishes one CloudEvent (the CloudEvents-shaped entry point) and returns
// when Kafka acknowledged it.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if p := Validate(&e); p != nil {
		return nil, p
	}
	return nil, f.Publish(ctx, []event.Event{e})
}

// Publish writes events to Kafka, each under its partition key, and returns when all
// are acknowledged.
func (f *Function) Publish(ctx context.Context, events []event.Event) error {
	rs, err := f.encode(ctx, events)
	if err != nil {
		return err
	}
	return f.send(ctx, rs)
}

// encode makes the records of events, routed to their publishers (see txn.go). The
// records copy everything they need: events may be dropped, and their body reused,
// as soon as it returns.
func (f *Function) encode(ctx context.Context, events []event.Event) (routed, error) {
	msgs := make([]*sarama.ProducerMessage, len(events))
	for i := range events {
		m, err := kafka.EncodeRecord(ctx, f.cfg.Topic, &events[i], f.PartitionKey(&events[i]))
		if err != nil {
			return routed{}, err
		}
		if p := f.guard.recordTooLarge(i, m); p != nil {
			return routed{}, p
		}
		msgs[i] = m
	}
	return f.route(events, msgs), nil
}

// PartitionKey is the key e is published under, so related events share a partition
// and stay in order: the partitionkey extension, else the configured attribute
// (PARTITION_KEY_ATTRIBUTE, default subject), else the source.
func (f *Function) PartitionKey(e *event.Event) string {
	if k := extension(e, "partitionkey"); k != "" {
		return k
	}
	var k string
	switch f.cfg.PartitionKeyAttribute {
	case "subject":
		k = e.Subject()
	case "source":
		k = e.Source()
	case "type":
		k = e.Type()
	case "id":
		k = e.ID()
	default:
		k = extension(e, f.cfg.PartitionKeyAttribute)
	}
	if k == "" {
		k = e.Source()
	}
	return k
}

func extension(e *event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	s, err := types.Format(v)
	if err != nil {
		return ""
	}
	return s
}

// ServeHTTP takes CloudEvents in any content mode and answers 202 once all are in
// Kafka, a problem+json 4xx naming what is wrong, or 503 with Retry-After when Kafka
// cannot take them now.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		problem.Write(w, problem.New(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed, "send CloudEvents with POST"))
		return
	}
	key, p := f.guard.authenticate(w, r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	if err := f.admissible(r); err != nil {
		// Refused before the body is read, so a stalled Kafka costs no memory for
		// requests that could not be taken anyway. net/http then discards a small
		// unread body to keep the connection, or answers Connection: close.
		f.log.Debug("buffer full; answering 503 without reading the body", "content_length", r.ContentLength, "err", err)
		problem.Write(w, unavailableUnread(err))
		return
	}
	var body []byte
	events, p := parseRequest(r, f.limits, &body)
	if p != nil {
		putBody(body)
		f.metrics.IngestEvents.WithLabelValues("rejected").Inc()
		problem.Write(w, p)
		return
	}
	if p := f.guard.admit(r.Context(), w, r, key, events); p != nil {
		putBody(body)
		problem.Write(w, p)
		return
	}
	n := len(events)
	f.metrics.BatchSize.WithLabelValues("ingest").Observe(float64(n))
	rs, err := f.encode(r.Context(), events)
	// The records copy the events' data, so the body goes back to the pool before
	// the wait for Kafka, and nothing here refers to the events any more: while Kafka
	// is slow a waiting request holds only its records, which is what the publisher's
	// byte budget counts. events must not be used after this.
	putBody(body)
	if err == nil {
		err = f.send(r.Context(), rs)
	}
	if err != nil {
		if errors.As(err, &p) { // an event that can never be published (413)
			f.metrics.IngestEvents.WithLabelValues("rejected").Add(float64(n))
			problem.Write(w, p)
			return
		}
		f.metrics.IngestEvents.WithLabelValues("unavailable").Add(float64(n))
		f.log.Warn("publish failed; answering 503", "events", n, "err", err)
		if cut := f.coord.cutOff(); cut != nil && errors.Is(err, kafka.ErrAckTimeout) {
			err = fmt.Errorf("%w (%w)", cut, err) // the hold, not Kafka, kept the events
		}
		problem.Write(w, unavailable(err))
		return
	}
	f.metrics.IngestEvents.WithLabelValues("accepted").Add(float64(n))
	writeAccepted(w, n)
}

// jsonContentType is shared by every answer: net/http only reads header values.
var jsonContentType = []string{"application/json"}

// writeAccepted answers 202 {"accepted":n} with one small write and no formatting
// allocations: on a single-event post the answer is a fair share of ingest's work.
func writeAccepted(w http.ResponseWriter, n int) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	var b [40]byte
	out := append(b[:0], `{"accepted":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "}\n"...)
	_, _ = w.Write(out)
}

// admissible returns the ErrBufferFull a request would get from the publisher it can
// go to (either, with TRANSACTIONAL_TYPES) judging from its Content-Length alone, or
// nil. A request of unknown length is judged by what is buffered already.
func (f *Function) admissible(r *http.Request) error {
	size := max(r.ContentLength, 0)
	err := f.pub.Admissible(size)
	if err != nil && f.txn.pub != nil && f.txn.pub.Admissible(size) == nil {
		return nil // its events may all be of transactional types
	}
	return err
}

// unavailableUnread is the 503 answer for a request refused before its body was read.
func unavailableUnread(err error) *problem.Problem {
	p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
		"ingest is at its buffer limit while Kafka catches up, so the body was not read; retry the whole request: "+err.Error())
	p.RetryAfter = time.Second
	return p
}

// unavailable is the 503 answer for a publish that failed: the client retries the
// whole request; events of it that did land are deduplicated downstream.
func unavailable(err error) *problem.Problem {
	detail := "Kafka did not acknowledge the events; retry the whole request"
	switch {
	case errors.Is(err, ErrCoordinationCutOff):
		detail = "ingest cannot reach Redis, where replicas coordinate partition changes, so it holds every publish until Redis answers; retry the whole request"
	case errors.Is(err, kafka.ErrBufferFull):
		detail = "ingest is at its buffer limit while Kafka catches up; retry the whole request"
	case errors.Is(err, kafka.ErrClosed):
		detail = "ingest is shutting down; retry the whole request"
	case errors.Is(err, context.Canceled):
		detail = "the request was cancelled before Kafka acknowledged it"
	}
	p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, detail+": "+err.Error())
	p.RetryAfter = time.Second
	return p
}
