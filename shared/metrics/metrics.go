// Package metrics defines tide's Prometheus metrics, one set per process, and the
// /metrics handler. Names follow Prometheus conventions: a tide_ prefix, units in the
// name, _total on counters.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is every metric a tide process exports. Functions that run in one process
// (the local runner) share one Metrics; each records its own series by label.
type Metrics struct {
	Registry *prometheus.Registry

	KafkaUp           prometheus.Gauge
	RedisUp           prometheus.Gauge
	KafkaReconnects   prometheus.Counter
	RedisReconnects   prometheus.Counter
	ConsumerLag       *prometheus.GaugeVec // group, topic, partition
	TopicPartitions   *prometheus.GaugeVec // topic
	ProducedRecords   *prometheus.CounterVec
	ProduceErrors     *prometheus.CounterVec
	ConsumedRecords   *prometheus.CounterVec // group, topic
	HTTPRequests      *prometheus.CounterVec // function, code
	IngestEvents      *prometheus.CounterVec // outcome: accepted, rejected, unavailable
	BatchSize         *prometheus.HistogramVec
	ProduceLatency    prometheus.Histogram
	EndToEndLatency   *prometheus.HistogramVec // group
	HandleLatency     *prometheus.HistogramVec // group
	DeadLetters       *prometheus.CounterVec   // group, reason
	Duplicates        *prometheus.CounterVec   // group
	Retries           *prometheus.CounterVec   // group
	RateLimited       prometheus.Counter
	RateLimitFallback prometheus.Gauge       // 1 while Redis does not answer the rate limiter
	FallbackEvents    *prometheus.CounterVec // mode: events the rate limiter's fallback decided
	AuthFailures      *prometheus.CounterVec // reason: missing, unknown, forbidden
	Buffered          prometheus.GaugeFunc
	bufferedFn        func() float64
	PartitionDecision *prometheus.CounterVec   // action, reason
	PartitionPause    *prometheus.HistogramVec // outcome: grown, abandoned, failed
}

// New registers every metric on a fresh registry (plus the Go and process collectors).
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{r}
	m := &Metrics{Registry: r}
	m.KafkaUp = f.gauge("tide_kafka_up", "1 when the last request to Kafka succeeded, else 0.")
	m.RedisUp = f.gauge("tide_redis_up", "1 when the last Redis ping succeeded, else 0.")
	m.KafkaReconnects = f.counter("tide_kafka_reconnects_total", "Times the Kafka connection came back after being down.")
	m.RedisReconnects = f.counter("tide_redis_reconnects_total", "Times the Redis connection came back after being down.")
	m.ConsumerLag = f.gaugeVec("tide_consumer_lag", "Records not yet committed by the group: high-water mark minus committed offset (log start offset when nothing valid is committed).", "group", "topic", "partition")
	m.TopicPartitions = f.gaugeVec("tide_topic_partitions", "Partitions of the topic.", "topic")
	m.ProducedRecords = f.counterVec("tide_produced_records_total", "Records acknowledged by Kafka.", "topic")
	m.ProduceErrors = f.counterVec("tide_produce_errors_total", "Records Kafka did not acknowledge.", "topic")
	m.ConsumedRecords = f.counterVec("tide_consumed_records_total", "Records processed and marked by the group.", "group", "topic")
	m.HTTPRequests = f.counterVec("tide_http_requests_total", "HTTP requests answered, by function and status code.", "function", "code")
	m.IngestEvents = f.counterVec("tide_ingest_events_total", "Events received by ingest, by outcome (accepted, rejected, unavailable, rate_limited).", "outcome")
	m.BatchSize = f.histVec("tide_batch_size_records", "Records per batch: per ingest request, per consumer batch.", prometheus.ExponentialBuckets(1, 2, 14), "stage")
	m.ProduceLatency = f.hist("tide_produce_latency_seconds", "Time from handing records to the publisher to Kafka's acknowledgement.", prometheus.ExponentialBuckets(0.0005, 2, 16))
	m.EndToEndLatency = f.histVec("tide_end_to_end_latency_seconds", "Time from the event's time attribute (or the record timestamp) to processed.", prometheus.ExponentialBuckets(0.001, 2, 18), "group")
	m.HandleLatency = f.histVec("tide_handle_latency_seconds", "Time a handler took for one record or batch.", prometheus.ExponentialBuckets(0.0001, 2, 18), "group")
	m.DeadLetters = f.counterVec("tide_dead_letters_total", "Records sent to the dead-letter topic.", "group", "reason")
	m.Duplicates = f.counterVec("tide_duplicates_total", "Deliveries recognised as already processed and skipped.", "group")
	m.Retries = f.counterVec("tide_retries_total", "Handler attempts that failed and were retried.", "group")
	m.RateLimited = f.counter("tide_rate_limited_events_total", "Events refused by the rate limiter.")
	m.RateLimitFallback = f.gauge("tide_rate_limit_fallback", "1 while Redis does not answer the rate limiter and its fallback (INGEST_RATE_LIMIT_FALLBACK) decides, else 0.")
	m.FallbackEvents = f.counterVec("tide_rate_limit_fallback_events_total", "Events the rate limiter decided without Redis, by fallback mode (local, open, closed).", "mode")
	m.AuthFailures = f.counterVec("tide_ingest_auth_failures_total", "Ingest requests refused by authentication, by reason (missing, unknown, forbidden).", "reason")
	m.PartitionDecision = f.counterVec("tide_partition_decisions_total", "Partition manager decisions, by action and reason.", "action", "reason")
	m.PartitionPause = f.histVec("tide_partition_pause_seconds", "How long the partition manager held publishes for a partition change, from the hold until every ingest replica released, by outcome (grown, abandoned, failed).", prometheus.ExponentialBuckets(0.05, 2, 12), "outcome")
	m.bufferedFn = func() float64 { return 0 }
	m.Buffered = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tide_producer_buffered_records", Help: "Records accepted by ingest and not yet acknowledged by Kafka."}, func() float64 { return m.bufferedFn() })
	r.MustRegister(m.Buffered)
	return m
}

// SetBuffered installs the function that reports the producer's buffered records.
func (m *Metrics) SetBuffered(f func() float64) { m.bufferedFn = f }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// SetUp sets a 0/1 connection gauge and counts a reconnect when it goes from 0 to 1.
func SetUp(g prometheus.Gauge, reconnects prometheus.Counter, wasUp *bool, up bool) {
	if up {
		g.Set(1)
		if !*wasUp {
			reconnects.Inc()
		}
	} else {
		g.Set(0)
	}
	*wasUp = up
}

type factory struct{ r *prometheus.Registry }

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.r.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) hist(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}

func (f factory) histVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.r.MustRegister(h)
	return h
}
