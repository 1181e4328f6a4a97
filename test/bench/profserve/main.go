// Command profserve runs the functions TIDE_FUNCTION names, like `tide serve`, with
// Go's profiler on a second loopback address, so the benchmark can take CPU profiles
// of ingest under load (`go tool pprof http://PPROF_ADDR/debug/pprof/profile`). It
// is a benchmark tool: deployments never expose the profiler.
//
//	TIDE_FUNCTION=ingest KAFKA_BROKERS=... go run ./test/bench/profserve -addr 127.0.0.1:8080 -pprof 127.0.0.1:6060
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"function"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address (loopback)")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "profiler listen address (loopback)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, pprofAddr string) error {
	opts, err := function.OptionsFromEnv(os.Getenv("TIDE_FUNCTION"))
	if err != nil {
		return err
	}
	pmux := http.NewServeMux()
	pmux.HandleFunc("/debug/pprof/", pprof.Index)
	pmux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	pmux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	pln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", pprofAddr, err)
	}
	go func() { _ = http.Serve(pln, pmux) }()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	f := function.New()
	if err := f.StartWith(ctx, opts); err != nil {
		return err
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.Stop(sctx)
}
