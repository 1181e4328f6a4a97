package verify

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"function/shared/config"
	"function/shared/kafka"
)

// EventType is the type of every event the verifier sends.
const EventType = "dev.tide.verify"

// SourcePrefix starts the source of every event the verifier sends.
const SourcePrefix = "/tide-verify/"

// Config says what to send where, and where to look for the results.
type Config struct {
	// Scenario names the run in the report (default "steady").
	Scenario string
	// URL is ingest's address (POST /).
	URL string
	// ReadURL serves GET /v1/notifications and GET /v1/stats (default URL).
	ReadURL string
	// Keys is the number of partition keys (default 40), EventsPerKey the events
	// sent per key (default 50, at most 1000, what one read of a channel returns).
	Keys, EventsPerKey int
	// Rate is the attempts per second over all keys (0: as fast as answers come).
	Rate float64
	// RetryFor is how long one event is retried before the verifier gives up on it
	// (default 2 min).
	RetryFor time.Duration
	// Settle bounds the wait for the outputs to become final (default 2 min).
	Settle time.Duration
	// MinAcked fails the run when fewer events were acknowledged: too few to prove
	// anything (default 0: no minimum).
	MinAcked int
	// RunID makes the run's sources unique (default: random).
	RunID string
	// Brokers and Topic, when set, let the verifier read the topic back (the ground
	// truth of what landed) and watch Groups' lag.
	Brokers []string
	Topic   string
	// Groups are the consumer groups whose lag must be zero before the outputs
	// count as final (needs Brokers).
	Groups []string
	// HTTPTimeout bounds one request (default 15 s, above ingest's ack timeout).
	HTTPTimeout time.Duration
	Log         *slog.Logger
}

func (c *Config) defaults() error {
	if c.Scenario == "" {
		c.Scenario = "steady"
	}
	if c.ReadURL == "" {
		c.ReadURL = c.URL
	}
	if c.Keys == 0 {
		c.Keys = 40
	}
	if c.EventsPerKey == 0 {
		c.EventsPerKey = 50
	}
	if c.RetryFor == 0 {
		c.RetryFor = 2 * time.Minute
	}
	if c.Settle == 0 {
		c.Settle = 2 * time.Minute
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = 15 * time.Second
	}
	if c.RunID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.RunID = c.Scenario + "-" + hex.EncodeToString(b)
	}
	if c.Topic == "" {
		c.Topic = "events"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.URL == "":
		return errors.New("verify: no ingest URL")
	case c.Keys < 1 || c.EventsPerKey < 1:
		return fmt.Errorf("verify: keys (%d) and events per key (%d) must be at least 1", c.Keys, c.EventsPerKey)
	case c.EventsPerKey > maxRead:
		return fmt.Errorf("verify: at most %d events per key (one read of a channel), got %d", maxRead, c.EventsPerKey)
	case len(c.Groups) > 0 && len(c.Brokers) == 0:
		return errors.New("verify: watching consumer groups needs the brokers")
	case strings.ContainsAny(c.RunID, "/ "):
		return fmt.Errorf("verify: run id %q must not contain '/' or spaces", c.RunID)
	}
	return nil
}

// Run is a verification in progress.
type Run struct {
	cfg   Config
	send  *sender
	start time.Time
	done  chan struct{}
	rep   *Report
	err   error
}

// Start begins sending and returns at once; Wait returns the report.
func Start(ctx context.Context, cfg Config) (*Run, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Keys + 8
	client := &http.Client{Timeout: cfg.HTTPTimeout, Transport: transport}
	v := &Run{
		cfg:   cfg,
		send:  &sender{cfg: cfg, client: client, pace: newPacer(cfg.Rate)},
		start: time.Now(),
		done:  make(chan struct{}),
	}
	var reader *topicReader
	var kc sarama.Client
	if len(cfg.Brokers) > 0 {
		sc, err := kafka.NewConfig(config.Kafka{ClientID: "tide-verify", Version: "3.9.0", DialTimeoutMS: 5000})
		if err != nil {
			return nil, err
		}
		if kc, err = sarama.NewClient(cfg.Brokers, sc); err != nil {
			return nil, fmt.Errorf("verify: kafka: %w", err)
		}
		reader = newTopicReader(kc, cfg.Topic, SourcePrefix+cfg.RunID+"/", nil)
		if err := reader.mark(); err != nil {
			kc.Close()
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	go func() {
		defer close(v.done)
		if kc != nil {
			defer kc.Close()
		}
		keys := v.send.run(ctx)
		sendEnd := time.Now()
		if reader != nil {
			reader.setKeys(keys)
		}
		obs, converged, rerr := v.settle(ctx, keys, reader, kc, &outputs{base: cfg.ReadURL, client: client})
		v.rep = v.report(keys, obs, reader != nil, converged, sendEnd)
		if rerr != nil {
			v.rep.Errors = append(v.rep.Errors, rerr.Error())
		}
		if cfg.MinAcked > 0 && v.rep.Acked < int64(cfg.MinAcked) {
			v.rep.Errors = append(v.rep.Errors, fmt.Sprintf("only %d events acknowledged, fewer than the %d needed to prove anything", v.rep.Acked, cfg.MinAcked))
		}
		if !v.rep.OK() {
			v.err = fmt.Errorf("scenario %s: %s", cfg.Scenario, v.rep.Counts.Line(cfg.Scenario))
		}
	}()
	return v, nil
}

// Progress tells how much has been sent and acknowledged so far.
func (v *Run) Progress() Progress { return v.send.progress() }

// Done is closed when the report is ready.
func (v *Run) Done() <-chan struct{} { return v.done }

// Wait returns the report when the run is over. The error is non-nil when anything
// was lost, duplicated or reordered, or the outputs could not be read.
func (v *Run) Wait() (*Report, error) {
	<-v.done
	return v.rep, v.err
}

// Verify sends, waits and reports (Start then Wait).
func Verify(ctx context.Context, cfg Config) (*Report, error) {
	v, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return v.Wait()
}

// settle reads the outputs in rounds until they are final (see the package
// documentation) or Settle runs out; it returns the last complete reading.
func (v *Run) settle(ctx context.Context, keys []keyResult, reader *topicReader, kc sarama.Client, out *outputs) ([]observation, bool, error) {
	deadline := time.Now().Add(v.cfg.Settle)
	var last []observation
	var lastErr error
	for round := 0; ; round++ {
		obs, pending, err := v.round(ctx, keys, reader, kc, out)
		switch {
		case err != nil:
			lastErr = err
		case pending == "":
			v.cfg.Log.Info("outputs final", "rounds", round+1)
			return obs, true, nil
		default:
			last, lastErr = obs, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := pending
			if err != nil {
				why = err.Error()
			}
			v.cfg.Log.Warn("outputs not final in time; judging the last reading", "settle", v.cfg.Settle, "waiting_for", why)
			if last == nil {
				return nil, false, fmt.Errorf("outputs never read: %w", lastErr)
			}
			return last, false, nil
		}
		if round%20 == 19 {
			v.cfg.Log.Info("waiting for the outputs", "waiting_for", pending)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// round takes one reading. pending is empty when the reading is final, else it
// says what is still awaited.
func (v *Run) round(ctx context.Context, keys []keyResult, reader *topicReader, kc sarama.Client, out *outputs) ([]observation, string, error) {
	var before map[int32]int64
	var pending []string
	if reader != nil {
		var err error
		if before, err = reader.ends(); err != nil {
			return nil, "", err
		}
		if len(v.cfg.Groups) > 0 {
			l, err := groupsLag(kc, v.cfg.Topic, v.cfg.Groups)
			if err != nil {
				return nil, "", err
			}
			if l > 0 {
				pending = append(pending, fmt.Sprintf("consumer lag %d", l))
			}
		}
		if err := reader.catchUp(ctx); err != nil {
			return nil, "", err
		}
	}
	obs, err := out.observeAll(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	if reader != nil {
		after, err := reader.ends()
		if err != nil {
			return nil, "", err
		}
		if !maps.Equal(before, after) {
			pending = append(pending, "records still landing")
		}
		for i := range obs {
			obs[i].Landed = reader.landedOf(keys[i].Source)
		}
	}
	var unreflected, short int
	for i, k := range keys {
		c := check(k, obs[i])
		unreflected += int(c.NotificationLost + c.KafkaLost)
		if c.AnalyticsLost > 0 {
			short++
		}
	}
	if unreflected > 0 {
		pending = append(pending, fmt.Sprintf("%d events without notification", unreflected))
	}
	if short > 0 {
		pending = append(pending, fmt.Sprintf("%d keys not fully counted", short))
	}
	return obs, strings.Join(pending, ", "), nil
}

// report judges the final reading.
func (v *Run) report(keys []keyResult, obs []observation, readKafka, converged bool, sendEnd time.Time) *Report {
	r := &Report{
		Scenario: v.cfg.Scenario, RunID: v.cfg.RunID, Keys: v.cfg.Keys, EventsPerKey: v.cfg.EventsPerKey, Rate: v.cfg.Rate,
		StartedAt: v.start, SendSeconds: sendEnd.Sub(v.start).Seconds(), SettleSeconds: time.Since(sendEnd).Seconds(),
		Converged: converged, KafkaRead: readKafka,
	}
	var outages []interval
	for i, k := range keys {
		outages = append(outages, k.Outages...)
		for _, ev := range k.Events {
			r.Sent += int64(ev.Attempts)
			switch {
			case ev.Acked:
				r.Acked++
			case ev.Rejected:
				r.Rejected++
			default:
				r.GaveUp++
			}
		}
		if obs == nil {
			continue
		}
		c := check(k, obs[i])
		r.Lost += c.Lost
		r.Duplicated += c.Duplicated
		r.Reordered += c.Reordered
		r.Kafka.Landed += c.Landed
		r.Kafka.Copies += c.KafkaCopies
		r.Kafka.Lost += c.KafkaLost
		r.Notifications.Stored += c.Notified
		r.Notifications.Lost += c.NotificationLost
		r.Notifications.Duplicated += c.NotificationDuplicated
		r.Notifications.Reordered += c.Reordered
		r.Notifications.UnackedDelivered += c.UnackedDelivered
		r.Analytics.Counted += c.Counted
		r.Analytics.Expected += c.Expected
		r.Analytics.Lost += c.AnalyticsLost
		r.Analytics.Duplicated += c.AnalyticsDuplicated
		r.ProblemsTotal += len(c.Problems)
		for _, p := range c.Problems {
			if len(r.Problems) < maxProblems {
				r.Problems = append(r.Problems, p)
			}
		}
	}
	if !readKafka {
		r.Kafka.Copies = 0
	}
	merged := union(outages)
	r.UnavailableMS = total(merged).Milliseconds()
	v.send.failMu.Lock()
	r.Unavailable = periods(v.start, merged, v.send.failures)
	v.send.failMu.Unlock()
	if obs == nil {
		r.Errors = append(r.Errors, "the outputs could not be read")
	}
	slices.SortFunc(r.Problems, func(a, b Problem) int { return cmp.Or(strings.Compare(a.Key, b.Key), cmp.Compare(a.Seq, b.Seq)) })
	return r
}

// maxProblems caps the findings listed in a report (all are counted).
const maxProblems = 200
