package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// ceiling drives test/bench/httpceiling (an empty net/http handler: read the body,
// answer 202, no Kafka) with the same single-event load as ingest and the sdk-go
// baseline. Its events/s is the most any net/http ingest can answer on this machine
// at that concurrency, so it says whether a single-event target is reachable over
// HTTP/1.1 at all.
func (s *suite) ceiling(ctx context.Context) (loadResult, error) {
	c, err := s.start(ctx, "httpceiling", filepath.Join(s.bin, "httpceiling"), nil, "-addr", freeAddr())
	if err != nil {
		return loadResult{}, err
	}
	defer c.stop()
	c.url = "http://" + c.args[1]
	if err := waitHTTP(ctx, c.url, 60*time.Second, func(code int) bool { return code > 0 }); err != nil {
		return loadResult{}, fmt.Errorf("httpceiling: %w", err)
	}
	return s.loadgen(ctx, "HTTP ceiling: empty net/http handler, no Kafka, single-event posts (64 in flight)", c, 0,
		"-url", c.url, "-c", "64", "-batch", "1")
}
