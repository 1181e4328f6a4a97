package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"function/shared/auth"
	"function/shared/config"
	"function/shared/kafka"
	"function/shared/metrics"
	"function/shared/problem"
	"function/shared/ratelimit"
	"function/shared/store"
)

// Protection is how ingest guards itself against its clients: API keys and
// per-client rate limits. Both are off by default, so `make run` takes anything.
type Protection struct {
	Auth        string `envconfig:"INGEST_AUTH" default:"off" desc:"off: no authentication; apikey: every request needs a key from INGEST_API_KEYS / INGEST_API_KEYS_FILE (Authorization: Bearer KEY, or X-API-Key): 401 without a known key, 403 for an event whose source the key may not write"`
	APIKeys     string `envconfig:"INGEST_API_KEYS" desc:"comma-separated SHA256HEX:SOURCE_PATTERN entries: the hex SHA-256 of a key and a source it may write ('*' matches any run of characters; repeat a hash for more patterns); tide apikey makes a key and its entry"`
	APIKeysFile string `envconfig:"INGEST_API_KEYS_FILE" desc:"file of more such entries, one per line (# comments), for example a mounted Secret; read at start"`

	RateLimit         bool   `envconfig:"INGEST_RATE_LIMIT_ENABLED" default:"false" desc:"limit the events each client may send, one budget shared by all replicas through Redis (REDIS_ADDR, REDIS_PASSWORD, REDIS_TLS_*); beyond it: 429 with Retry-After and RateLimit-* headers"`
	RateLimitRate     int    `envconfig:"INGEST_RATE_LIMIT_RATE" default:"1000" desc:"events per second a client may send on average"`
	RateLimitBurst    int    `envconfig:"INGEST_RATE_LIMIT_BURST" default:"5000" desc:"events a client may send at once; a request with more events is answered 413"`
	RateLimitOverride string `envconfig:"INGEST_RATE_LIMIT_OVERRIDES" desc:"comma-separated CLIENT=RATE/BURST limits for particular clients; CLIENT is apikey:ID, source:SOURCE or remote:ADDRESS, as the 429 answer names it"`
	RateLimitKeyAttr  string `envconfig:"INGEST_RATE_LIMIT_ATTRIBUTE" desc:"for requests without an API key: the event attribute (e.g. source) whose value names the client; empty, or absent on an event: the remote address"`
	RateLimitIPHeader string `envconfig:"INGEST_RATE_LIMIT_CLIENT_IP_HEADER" desc:"request header with the client address set by a proxy you trust (e.g. X-Forwarded-For; its first entry); empty: the connection's address"`
	RateLimitPrefix   string `envconfig:"INGEST_RATE_LIMIT_KEY_PREFIX" default:"tide:ratelimit:" desc:"prefix of the rate limiter's Redis keys"`
	RateLimitFallback string `envconfig:"INGEST_RATE_LIMIT_FALLBACK" default:"local" desc:"when Redis does not answer: local (each replica limits alone to RATE / INGEST_RATE_LIMIT_REPLICAS), open (accept everything) or closed (answer 503)"`
	RateLimitReplicas int    `envconfig:"INGEST_RATE_LIMIT_REPLICAS" default:"1" desc:"ingest replicas sharing the limit: the local fallback gives each its share"`
	RateLimitTimeout  int    `envconfig:"INGEST_RATE_LIMIT_TIMEOUT_MS" default:"250" desc:"longest a request waits for Redis's rate-limit decision before the fallback decides"`
	RateLimitRetry    int    `envconfig:"INGEST_RATE_LIMIT_RETRY_MS" default:"1000" desc:"after Redis failed, how long the fallback decides before Redis is asked again"`
}

// Auth modes.
const (
	AuthOff    = "off"
	AuthAPIKey = "apikey"
)

// Validate checks what envconfig cannot. A zero Protection (a Config built in code)
// is valid and means both off; its zero values take their defaults. Every value is
// checked whether or not the rate limiter is on, so a mistake shows at start rather
// than on the day the limiter is turned on; only RATE and BURST, whose zero values
// would refuse everything, must be positive just when it is on.
func (p Protection) Validate() error {
	errs := []error{
		config.OneOf("INGEST_AUTH", p.Auth, "", AuthOff, AuthAPIKey),
		config.OneOf("INGEST_RATE_LIMIT_FALLBACK", p.RateLimitFallback, "", ratelimit.FallbackLocal, ratelimit.FallbackOpen, ratelimit.FallbackClosed),
	}
	if p.RateLimit {
		errs = append(errs,
			config.Positive("INGEST_RATE_LIMIT_RATE", int64(p.RateLimitRate)),
			config.Positive("INGEST_RATE_LIMIT_BURST", int64(p.RateLimitBurst)),
		)
	}
	for _, v := range []struct {
		name  string
		value int
	}{{"INGEST_RATE_LIMIT_REPLICAS", p.RateLimitReplicas}, {"INGEST_RATE_LIMIT_TIMEOUT_MS", p.RateLimitTimeout}, {"INGEST_RATE_LIMIT_RETRY_MS", p.RateLimitRetry}} {
		if v.value < 0 {
			errs = append(errs, &config.VarError{Name: v.name, Value: strconv.Itoa(v.value), Reason: "must not be negative"})
		}
	}
	if _, err := ratelimit.ParseOverrides(p.RateLimitOverride); err != nil {
		errs = append(errs, &config.VarError{Name: "INGEST_RATE_LIMIT_OVERRIDES", Value: p.RateLimitOverride, Reason: err.Error()})
	}
	keys := p.APIKeys != "" || p.APIKeysFile != ""
	if p.Auth != AuthAPIKey && keys {
		errs = append(errs, &config.VarError{Name: "INGEST_AUTH", Value: p.Auth, Reason: "API keys are configured but not checked; set INGEST_AUTH=apikey"})
	}
	if p.Auth == AuthAPIKey && !keys {
		errs = append(errs, &config.VarError{Name: "INGEST_AUTH", Value: p.Auth, Reason: "needs INGEST_API_KEYS or INGEST_API_KEYS_FILE"})
	}
	return errors.Join(errs...)
}

// guard authenticates requests and charges their events to the client's rate
// limit. A nil guard lets everything through.
type guard struct {
	keys      *auth.Keyring      // nil: no authentication
	limiter   *ratelimit.Limiter // nil: no rate limit
	rdb       *redis.Client
	attr      string
	ipHeader  string
	log       *slog.Logger
	metrics   *metrics.Metrics
	maxRecord int // the producer's largest record (sarama Producer.MaxMessageBytes)
}

// startGuard checks that the events ingest accepts fit the topic and builds the
// guard of cfg. A Redis that is down at start only means the rate limiter's fallback
// decides for now.
func startGuard(ctx context.Context, cfg Config, base *sarama.Config, log *slog.Logger, m *metrics.Metrics) (*guard, error) {
	maxRecord, err := checkTopicLimits(cfg, base, log)
	if err != nil {
		return nil, err
	}
	p := cfg.Protection
	g := &guard{attr: p.RateLimitKeyAttr, ipHeader: p.RateLimitIPHeader, log: log, metrics: m, maxRecord: maxRecord}
	if p.Auth == AuthAPIKey {
		keys, err := auth.Parse(p.APIKeys)
		if err != nil {
			return nil, fmt.Errorf("INGEST_API_KEYS: %w", err)
		}
		if p.APIKeysFile != "" {
			more, err := auth.ParseFile(p.APIKeysFile)
			if err != nil {
				return nil, fmt.Errorf("INGEST_API_KEYS_FILE: %w", err)
			}
			keys = keys.Merge(more)
		}
		if keys.Len() == 0 {
			return nil, errors.New("INGEST_AUTH=apikey but INGEST_API_KEYS and INGEST_API_KEYS_FILE hold no key")
		}
		g.keys = keys
		log.Info("ingest requires API keys", "keys", keys.Len())
	}
	if p.RateLimit {
		if cfg.Redis.Addr == "" {
			return nil, errors.New("INGEST_RATE_LIMIT_ENABLED=true needs REDIS_ADDR: the limit is shared by the replicas through Redis")
		}
		timeout := config.Millis(p.RateLimitTimeout)
		if timeout <= 0 {
			timeout = 250 * time.Millisecond
		}
		opts, err := store.FastOptions(cfg.Redis, timeout)
		if err != nil {
			return nil, err
		}
		overrides, _ := ratelimit.ParseOverrides(p.RateLimitOverride) // checked by Validate
		g.rdb = redis.NewClient(opts)
		g.limiter = ratelimit.New(g.rdb, ratelimit.Options{
			Default:        ratelimit.Limit{Rate: p.RateLimitRate, Burst: p.RateLimitBurst},
			Overrides:      overrides,
			Prefix:         p.RateLimitPrefix,
			Fallback:       p.RateLimitFallback,
			Replicas:       p.RateLimitReplicas,
			Timeout:        timeout,
			Retry:          config.Millis(p.RateLimitRetry),
			Log:            log,
			FallbackActive: m.RateLimitFallback,
			FallbackEvents: m.FallbackEvents,
		})
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := g.rdb.Ping(pctx).Err(); err != nil {
			log.Warn("rate limiter: Redis does not answer at start; the fallback decides until it does",
				"addr", cfg.Redis.Addr, "fallback", p.RateLimitFallback, "err", err)
		}
		log.Info("ingest rate limit on", "rate", p.RateLimitRate, "burst", p.RateLimitBurst,
			"overrides", len(overrides), "fallback", p.RateLimitFallback)
	}
	return g, nil
}

func (g *guard) close() error {
	if g == nil || g.rdb == nil {
		return nil
	}
	return g.rdb.Close()
}

// authenticate returns the request's API key, or a 401 problem. Without
// authentication it returns nil, nil. The presented key is never logged.
func (g *guard) authenticate(w http.ResponseWriter, r *http.Request) (*auth.Key, *problem.Problem) {
	if g == nil || g.keys == nil {
		return nil, nil
	}
	presented, ok := auth.FromRequest(r)
	if !ok {
		g.metrics.AuthFailures.WithLabelValues("missing").Inc()
		return nil, unauthorized(w, auth.MissingReason(r))
	}
	key := g.keys.Authenticate(presented)
	if key == nil {
		g.metrics.AuthFailures.WithLabelValues("unknown").Inc()
		// Debug, not Info: guessing keys must not flood the logs; the metric counts.
		g.log.Debug("ingest: unknown API key refused", "remote", remoteHost(r.RemoteAddr))
		return nil, unauthorized(w, "the API key is not known")
	}
	return key, nil
}

// unauthorized is a 401 with the challenge RFC 9110 (11.6.1) requires.
func unauthorized(w http.ResponseWriter, detail string) *problem.Problem {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tide-ingest"`)
	return problem.New(http.StatusUnauthorized, problem.TypeUnauthorized, detail).WithAttribute("Authorization")
}

// admit checks, after parsing, that key may write every event's source (403) and
// charges the events to the client's rate limit (429, or 413 for a request larger
// than the burst, or 503 when the limiter cannot decide). It sets the RateLimit-*
// headers on w whenever the limiter decided.
func (g *guard) admit(ctx context.Context, w http.ResponseWriter, r *http.Request, key *auth.Key, events []event.Event) *problem.Problem {
	if g == nil {
		return nil
	}
	if key != nil {
		for i := range events {
			if src := events[i].Source(); !key.Allows(src) {
				g.metrics.AuthFailures.WithLabelValues("forbidden").Inc()
				g.log.Info("ingest: API key may not write this source", "key", key.ID, "source", src)
				return problem.Newf(http.StatusForbidden, problem.TypeForbidden,
					"API key %s may not write events with source %q", key.ID, src).WithAttribute("source").AtIndex(i)
			}
		}
	}
	if g.limiter == nil {
		return nil
	}
	d, err := g.limiter.Allow(ctx, g.costs(r, key, events))
	if errors.Is(err, ratelimit.ErrUnavailable) {
		g.metrics.IngestEvents.WithLabelValues("unavailable").Add(float64(len(events)))
		p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable,
			"the rate limiter cannot reach Redis and is configured to refuse meanwhile; retry the whole request")
		p.RetryAfter = d.RetryAfter
		return p
	}
	if err != nil {
		g.metrics.IngestEvents.WithLabelValues("unavailable").Add(float64(len(events)))
		p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "rate limit: "+err.Error())
		p.RetryAfter = time.Second
		return p
	}
	if d.TooLarge {
		g.metrics.IngestEvents.WithLabelValues("rejected").Add(float64(len(events)))
		p := problem.Newf(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
			"the request's %d events for client %s exceed its rate limit burst of %d events; split the batch", d.N, d.Key, d.Limit.Burst)
		p.Limit = int64(d.Limit.Burst)
		return p
	}
	ratelimit.Headers(w.Header(), d)
	if !d.Allowed {
		g.metrics.RateLimited.Add(float64(len(events)))
		g.metrics.IngestEvents.WithLabelValues("rate_limited").Add(float64(len(events)))
		p := problem.Newf(http.StatusTooManyRequests, problem.TypeRateLimited,
			"client %s is over its limit of %d events per second (burst %d); retry the whole request after %s seconds",
			d.Key, d.Limit.Rate, d.Limit.Burst, strconv.Itoa(max(1, ratelimit.Seconds(d.RetryAfter))))
		p.RetryAfter = d.RetryAfter
		return p
	}
	return nil
}

// costs charges each event to its client: the API key when there is one, else the
// configured attribute's value, else the remote address. One event costs one unit.
func (g *guard) costs(r *http.Request, key *auth.Key, events []event.Event) []ratelimit.Cost {
	if key != nil {
		return []ratelimit.Cost{{Key: "apikey:" + key.ID, N: len(events)}}
	}
	remote := "remote:" + g.clientAddr(r)
	if g.attr == "" {
		return []ratelimit.Cost{{Key: remote, N: len(events)}}
	}
	out := make([]ratelimit.Cost, 0, 1)
	for i := range events {
		k := remote
		if v := attributeValue(&events[i], g.attr); v != "" {
			k = g.attr + ":" + v
		}
		if n := len(out); n > 0 && out[n-1].Key == k {
			out[n-1].N++
			continue
		}
		out = append(out, ratelimit.Cost{Key: k, N: 1})
	}
	return out
}

// clientAddr is the client's address: the first entry of the trusted proxy header
// when configured and present, else the connection's remote host.
func (g *guard) clientAddr(r *http.Request) string {
	if g.ipHeader != "" {
		if v := r.Header.Get(g.ipHeader); v != "" {
			first, _, _ := strings.Cut(v, ",")
			if first = strings.TrimSpace(first); first != "" {
				return first
			}
		}
	}
	return remoteHost(r.RemoteAddr)
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// attributeValue is the value of a context attribute or extension of e.
func attributeValue(e *event.Event, name string) string {
	switch name {
	case "source":
		return e.Source()
	case "subject":
		return e.Subject()
	case "type":
		return e.Type()
	case "id":
		return e.ID()
	}
	return extension(e, name)
}

// recordTooLarge is the 413 answer for an event whose Kafka record would be larger
// than the producer may send (sarama refuses it at once; retrying could never
// help). The record can be larger than the event because the partition key repeats
// an attribute.
func (g *guard) recordTooLarge(i int, m *sarama.ProducerMessage) *problem.Problem {
	if g == nil || g.maxRecord <= 0 {
		return nil
	}
	size := m.ByteSize(2)
	if size <= g.maxRecord {
		return nil
	}
	p := problem.Newf(http.StatusRequestEntityTooLarge, problem.TypeTooLarge,
		"the event's Kafka record (data, attributes and partition key) would be %d bytes, more than the %d a record may have", size, g.maxRecord)
	p.Limit = int64(g.maxRecord)
	return p.AtIndex(i)
}

// checkTopicLimits makes sure every event ingest accepts fits the topic: the
// producer's largest record must not exceed the topic's max.message.bytes, and the
// largest event (INGEST_MAX_EVENT_BYTES) must leave room for the record's own
// overhead. A topic whose configuration cannot be read (no DescribeConfigs
// permission) is only warned about.
func checkTopicLimits(cfg Config, base *sarama.Config, log *slog.Logger) (maxRecord int, err error) {
	pc := kafka.ProducerConfig(base, cfg.Producer)
	maxRecord = pc.Producer.MaxMessageBytes
	if cfg.MaxEventBytes >= maxRecord {
		return 0, fmt.Errorf("INGEST_MAX_EVENT_BYTES=%d: must be below the producer's largest record, %d bytes", cfg.MaxEventBytes, maxRecord)
	}
	topicMax, err := topicMaxMessageBytes(cfg.Brokers, base, cfg.Topic)
	if err != nil {
		log.Warn("cannot read the topic's max.message.bytes; assuming Kafka's default", "topic", cfg.Topic, "err", err)
		return maxRecord, nil
	}
	if topicMax < maxRecord {
		// sarama fills record batches up to MaxMessageBytes; a smaller topic limit
		// would refuse full batches.
		return 0, fmt.Errorf("topic %s has max.message.bytes=%d, below the producer's %d-byte records and batches: raise it to at least %d", cfg.Topic, topicMax, maxRecord, maxRecord)
	}
	return maxRecord, nil
}

func topicMaxMessageBytes(brokers []string, base *sarama.Config, topic string) (int, error) {
	admin, err := sarama.NewClusterAdmin(brokers, base)
	if err != nil {
		return 0, fmt.Errorf("kafka admin: %w", err)
	}
	defer admin.Close()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"max.message.bytes"}})
	if err != nil {
		return 0, fmt.Errorf("describe topic %s: %w", topic, err)
	}
	for _, e := range entries {
		if e.Name == "max.message.bytes" {
			n, err := strconv.Atoi(e.Value)
			if err != nil {
				return 0, fmt.Errorf("topic %s: max.message.bytes=%q: %w", topic, e.Value, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("topic %s: no max.message.bytes in its configuration", topic)
}
