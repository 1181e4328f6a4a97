package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// newServer returns the HTTP server of tide run and tide serve. ReadTimeout bounds a
// client that sends its headers and then stalls in the body; there is no
// WriteTimeout, because the notification stream (SSE) is long-lived by design.
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
}

// serveUntil serves ln until ctx ends, then shuts down in the order that makes a 202
// mean "in Kafka": stop taking requests and give those in flight up to drain to get
// their answers; then close what is still open (live streams never end by
// themselves, stalled uploads may not), and only then stop the functions (flush the
// producer, commit offsets) with a budget of their own, so a slow client cannot eat
// the time the drain needs.
func serveUntil(ctx context.Context, log *slog.Logger, srv *http.Server, ln net.Listener, drain time.Duration, stop func(context.Context) error) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != http.ErrServerClosed {
			log.Error("http server failed", "err", err)
		}
	}
	log.Info("shutting down: draining requests, flushing the producer, committing offsets")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("requests still open after the drain period; closing them", "err", err)
		_ = srv.Close()
	}
	cancel()
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stop(fctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	log.Info("stopped")
	return nil
}
