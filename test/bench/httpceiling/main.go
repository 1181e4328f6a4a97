// Command httpceiling is the cheapest HTTP/1.1 CloudEvents endpoint Go can serve: it
// reads each request's body and answers 202 with ingest's body, without parsing,
// without Kafka. The benchmark drives it with the same load generator as ingest and
// the sdk-go baseline, so its events/s is the ceiling any net/http ingest can reach on
// the machine at that concurrency: if it cannot reach a target, no handler can.
//
//	go run ./test/bench/httpceiling -addr 127.0.0.1:8091
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "HTTP listen address (loopback)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpceiling:", err)
		os.Exit(1)
	}
	// The same server settings as tide serve (cmd/tide/httpserver.go).
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpceiling:", err)
		os.Exit(1)
	}
}

func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // a real endpoint reads what it acknowledges
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"accepted":1}`+"\n")
	})
}
