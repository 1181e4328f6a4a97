// Package function is tide's deployable function: one image, three workloads. It
// runs ingest, notification or analytics, chosen by TIDE_FUNCTION, or all three in one
// process ("all", what the local runner uses). It is an HTTP-shaped Knative function
// (Handle(w, r)), because ingest needs batch mode, exact status codes, headers and
// problem+json bodies, and the read APIs; the function packages keep the CloudEvents
// shape for their event handling.
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"function/functions/analytics"
	"function/functions/ingest"
	"function/functions/notification"
	"function/shared/consumer"
	"function/shared/gctune"
	"function/shared/logging"
	"function/shared/metrics"
	"function/shared/problem"
)

// Names of the functions TIDE_FUNCTION selects.
const (
	Ingest       = "ingest"
	Notification = "notification"
	Analytics    = "analytics"
	All          = "all"
)

// Options say what to run with which configuration.
type Options struct {
	// Functions to run: any of Ingest, Notification, Analytics.
	Functions    []string
	Ingest       ingest.Config
	Notification notification.Config
	Analytics    analytics.Config
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
}

// Function serves the selected functions behind one HTTP handler:
//
//	POST /                        ingest (or, without ingest, push-mode delivery to notification or analytics)
//	GET  /v1/stats                analytics
//	GET  /v1/notifications        notification (and /v1/notifications/stream)
//	GET  /v1/scaling[/GROUP]      the scaling signal for KEDA's metrics-api scaler (pull mode)
//	GET  /metrics                 Prometheus
//	GET  /health/readiness        200 when every selected function is ready
//	GET  /health/liveness         200 while the process is not wedged
type Function struct {
	Ingest       *ingest.Function
	Notification *notification.Function
	Analytics    *analytics.Function
	metrics      *metrics.Metrics
	parts        []prober // the started functions
	mux          *http.ServeMux
	log          *slog.Logger

	// func-go's runtime calls Start in a goroutine while it already serves requests
	// and probes, and may call Stop before Start returns (a SIGTERM during start-up):
	// mu makes Stop wait for a start in progress, and started tells Handle, Ready and
	// Alive, without waiting, whether the fields above are set.
	mu      sync.Mutex
	started atomic.Bool
}

// New returns an unstarted function (the Knative function constructor).
func New() *Function { return &Function{} }

// Start reads TIDE_FUNCTION and the selected functions' configuration from the
// environment and starts them.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	opts, err := OptionsFromEnv(os.Getenv("TIDE_FUNCTION"))
	if err != nil {
		return err
	}
	TuneGC(opts)
	return f.StartWith(ctx, opts)
}

// TuneGC sets the garbage collector of a process that runs ingest alone (what a
// deployment runs) from INGEST_GC_PERCENT and INGEST_MEMORY_LIMIT_BYTES; see
// shared/gctune. Process entry points call it; StartWith does not, since tests run
// many functions in one process.
func TuneGC(opts Options) {
	if len(opts.Functions) == 1 && opts.Functions[0] == Ingest {
		gctune.Apply(opts.Logger, opts.Ingest.GC())
	}
}

// OptionsFromEnv loads the configuration of the functions named by which
// (ingest, notification, analytics, all, or a comma-separated list).
func OptionsFromEnv(which string) (Options, error) {
	names, err := parseFunctions(which)
	if err != nil {
		return Options{}, err
	}
	opts := Options{Functions: names, Logger: logging.New(os.Stderr, logging.FromEnv()), Metrics: metrics.New()}
	for _, n := range names {
		switch n {
		case Ingest:
			opts.Ingest, err = ingest.LoadConfig()
		case Notification:
			opts.Notification, err = notification.LoadConfig()
		case Analytics:
			opts.Analytics, err = analytics.LoadConfig()
		}
		if err != nil {
			return opts, err
		}
	}
	return opts, nil
}

func parseFunctions(which string) ([]string, error) {
	if which == "" {
		return nil, errors.New("TIDE_FUNCTION is not set: choose ingest, notification, analytics or all")
	}
	if which == All {
		return []string{Ingest, Notification, Analytics}, nil
	}
	var out []string
	for _, n := range strings.Split(which, ",") {
		switch n = strings.TrimSpace(n); n {
		case Ingest, Notification, Analytics:
			out = append(out, n)
		default:
			return nil, fmt.Errorf("TIDE_FUNCTION=%q: %q is not ingest, notification, analytics or all", which, n)
		}
	}
	return out, nil
}

// StartWith starts the functions of opts. On error, whatever started is stopped.
func (f *Function) StartWith(ctx context.Context, opts Options) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	f.log, f.metrics = opts.Logger, opts.Metrics
	mux := http.NewServeMux()
	var push http.Handler
	for _, n := range opts.Functions {
		var err error
		switch n {
		case Ingest:
			f.Ingest = ingest.New()
			if err = f.Ingest.StartWith(ctx, opts.Ingest, opts.Logger, opts.Metrics); err == nil {
				f.parts = append(f.parts, f.Ingest)
			}
		case Notification:
			f.Notification = notification.New()
			if err = f.Notification.StartWith(ctx, opts.Notification, opts.Logger, opts.Metrics); err == nil {
				f.Notification.Routes(mux)
				push = f.Notification.PushHandler()
				f.parts = append(f.parts, f.Notification)
			}
		case Analytics:
			f.Analytics = analytics.New()
			if err = f.Analytics.StartWith(ctx, opts.Analytics, opts.Logger, opts.Metrics); err == nil {
				f.Analytics.Routes(mux)
				push = f.Analytics.PushHandler()
				f.parts = append(f.parts, f.Analytics)
			}
		}
		if err != nil {
			_ = f.stop(context.WithoutCancel(ctx))
			return fmt.Errorf("start %s: %w", n, err)
		}
	}

	switch {
	case f.Ingest != nil:
		mux.Handle("POST /{$}", f.Ingest)
	case len(opts.Functions) == 1 && push != nil:
		mux.Handle("POST /{$}", push)
	}
	if c := f.soleConsumer(); c != nil {
		// One consumer per process (a Deployment scaled by KEDA): its signal also
		// answers at the short path the ScaledObject names.
		mux.HandleFunc("GET /v1/scaling", consumer.ScalingHandler(c))
	}
	mux.Handle("GET /metrics", opts.Metrics.Handler())
	mux.HandleFunc("GET /health/readiness", f.probe(f.Ready))
	mux.HandleFunc("GET /health/liveness", f.probe(f.Alive))
	f.mux = mux
	f.started.Store(true)
	return nil
}

// soleConsumer is the pull-mode consumer when exactly one runs in this process.
func (f *Function) soleConsumer() *consumer.Runner {
	var rs []*consumer.Runner
	if f.Notification != nil && f.Notification.Consumer() != nil {
		rs = append(rs, f.Notification.Consumer())
	}
	if f.Analytics != nil && f.Analytics.Consumer() != nil {
		rs = append(rs, f.Analytics.Consumer())
	}
	if len(rs) != 1 {
		return nil
	}
	return rs[0]
}

// Handle serves HTTP (the Knative function entry point).
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	if !f.started.Load() {
		// Before Start finished (or after Stop): a retryable answer, so a
		// KafkaSource redelivers and a client retries.
		p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, "starting up")
		p.RetryAfter = time.Second
		problem.Write(w, p)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	if h, pattern := f.mux.Handler(r); pattern == "" {
		unrouted(rec, r, h)
	} else {
		f.mux.ServeHTTP(rec, r) // sets the request's pattern and path values
	}
	f.metrics.HTTPRequests.WithLabelValues(f.name(), fmt.Sprint(rec.code)).Inc()
}

// ServeHTTP makes Function an http.Handler.
func (f *Function) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.Handle(w, r) }

func (f *Function) name() string {
	var names []string
	if f.Ingest != nil {
		names = append(names, Ingest)
	}
	if f.Notification != nil {
		names = append(names, Notification)
	}
	if f.Analytics != nil {
		names = append(names, Analytics)
	}
	return strings.Join(names, "+")
}

// Stop stops the functions: ingest first (it drains accepted events into Kafka), then
// the consumers (they commit what they handled).
func (f *Function) Stop(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started.Store(false)
	return f.stop(ctx)
}

func (f *Function) stop(ctx context.Context) error {
	var errs []error
	if f.Ingest != nil {
		errs = append(errs, f.Ingest.Stop(ctx))
	}
	if f.Notification != nil {
		errs = append(errs, f.Notification.Stop(ctx))
	}
	if f.Analytics != nil {
		errs = append(errs, f.Analytics.Stop(ctx))
	}
	return errors.Join(errs...)
}

type prober interface {
	Ready(context.Context) (bool, error)
	Alive(context.Context) (bool, error)
}

func (f *Function) each(fn func(p prober) (bool, error)) (bool, error) {
	for _, p := range f.parts {
		if ok, err := fn(p); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

// Ready reports whether every selected function is ready.
func (f *Function) Ready(ctx context.Context) (bool, error) {
	if !f.started.Load() {
		return false, nil
	}
	return f.each(func(p prober) (bool, error) { return p.Ready(ctx) })
}

// Alive reports whether every selected function is alive.
func (f *Function) Alive(ctx context.Context) (bool, error) {
	if !f.started.Load() {
		return true, nil // starting is not wedged: a liveness failure would restart the pod
	}
	return f.each(func(p prober) (bool, error) { return p.Alive(ctx) })
}

func (f *Function) probe(check func(context.Context) (bool, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok, err := check(r.Context())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok || err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush lets Server-Sent Events through the recorder.
func (s *statusRecorder) Flush() {
	if fl, ok := s.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// unrouted answers a request that matches no route. The mux's own 404 and 405 are
// text/plain; every other tide error is problem details, so a client parses one
// format. Anything else the mux answers (a redirect to the canonical path) passes
// through unchanged.
func unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	c := &capture{header: http.Header{}, code: http.StatusOK}
	h.ServeHTTP(c, r)
	switch c.code {
	case http.StatusNotFound:
		problem.Write(w, problem.Newf(http.StatusNotFound, problem.TypeNotFound, "no resource at %s", r.URL.Path))
	case http.StatusMethodNotAllowed:
		allow := c.header.Get("Allow")
		w.Header().Set("Allow", allow)
		problem.Write(w, problem.Newf(http.StatusMethodNotAllowed, problem.TypeMethodNotAllowed,
			"%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
	default:
		for k, v := range c.header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.code)
		_, _ = w.Write(c.body)
	}
}

// capture keeps what a handler writes, for unrouted to rewrite.
type capture struct {
	header http.Header
	code   int
	body   []byte
}

func (c *capture) Header() http.Header  { return c.header }
func (c *capture) WriteHeader(code int) { c.code = code }
func (c *capture) Write(b []byte) (int, error) {
	c.body = append(c.body, b...)
	return len(b), nil
}
