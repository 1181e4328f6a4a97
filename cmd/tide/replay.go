package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func init() {
	register(command{name: "replay", summary: "post a JSONL file of structured CloudEvents to ingest, one by one or in batches", run: runReplay})
}

// replayResult counts what happened to the events of a replay.
type replayResult struct {
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	Failed   int64 `json:"failed"` // never answered 202 or 4xx, even after retries
}

func runReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	url := fs.String("url", envOr("TIDE_URL", "http://127.0.0.1:8080"), "ingest URL (env TIDE_URL)")
	batch := fs.Int("batch", 0, "events per request in batch mode (0: one structured event per request; -1: the whole file in one batch)")
	conc := fs.Int("c", 8, "requests in flight at once")
	retries := fs.Int("retries", 5, "retries of a request answered 429/503 or not answered")
	quiet := fs.Bool("q", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *conc < 1 || *batch < -1 || *retries < 0 {
		return fmt.Errorf("%w: -c must be at least 1, -batch at least -1, -retries at least 0", errUsage)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: replay takes one FILE (JSONL, one structured CloudEvent per line)", errUsage)
	}
	lines, err := readLines(fs.Arg(0))
	if err != nil {
		return err
	}
	size := *batch
	if size < 0 {
		size = len(lines)
	}
	var reqs []replayRequest
	if size == 0 {
		for _, l := range lines {
			reqs = append(reqs, replayRequest{contentType: "application/cloudevents+json", body: l, events: 1})
		}
	} else {
		for i := 0; i < len(lines); i += size {
			end := min(i+size, len(lines))
			reqs = append(reqs, replayRequest{contentType: "application/cloudevents-batch+json", body: joinArray(lines[i:end]), events: end - i})
		}
	}
	start := time.Now()
	res := replay(ctx, *url, reqs, *conc, *retries, progress(*quiet, len(lines)))
	if !*quiet {
		fmt.Fprintln(os.Stderr)
	}
	fmt.Printf("accepted=%d rejected=%d failed=%d events=%d requests=%d elapsed=%s\n",
		res.Accepted, res.Rejected, res.Failed, len(lines), len(reqs), time.Since(start).Round(time.Millisecond))
	if res.Rejected+res.Failed > 0 {
		return fmt.Errorf("%d events were not accepted", res.Rejected+res.Failed)
	}
	return nil
}

type replayRequest struct {
	contentType string
	body        []byte
	events      int
}

func readLines(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, append([]byte(nil), l...))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

func joinArray(lines [][]byte) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(l)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// replay posts reqs with conc workers and retries answers that mean "try again".
func replay(ctx context.Context, url string, reqs []replayRequest, conc, retries int, tick func(done int64)) replayResult {
	var res replayResult
	var done atomic.Int64
	client := &http.Client{Timeout: 30 * time.Second}
	work := make(chan replayRequest)
	var wg sync.WaitGroup
	for w := 0; w < max(conc, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				switch post(ctx, client, url, r, retries) {
				case outcomeAccepted:
					atomic.AddInt64(&res.Accepted, int64(r.events))
				case outcomeRejected:
					atomic.AddInt64(&res.Rejected, int64(r.events))
				default:
					atomic.AddInt64(&res.Failed, int64(r.events))
				}
				tick(done.Add(int64(r.events)))
			}
		}()
	}
	for _, r := range reqs {
		select {
		case work <- r:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return res
}

type outcome int

const (
	outcomeAccepted outcome = iota
	outcomeRejected
	outcomeFailed
)

// refused reports once per run that nothing listens at the URL.
var refused sync.Once

func post(ctx context.Context, client *http.Client, url string, r replayRequest, retries int) outcome {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.body))
		if err != nil {
			return outcomeFailed
		}
		req.Header.Set("Content-Type", r.contentType)
		if key := os.Getenv("TIDE_API_KEY"); key != "" { // from the environment, never a flag: flags show in ps
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Nothing listens there: retrying will not help, and a silent crawl hides it.
			refused.Do(func() {
				fmt.Fprintf(os.Stderr, "\nnothing listens at %s (is `make run` running? set -url or TIDE_URL)\n", url)
			})
			return outcomeFailed
		}
		lastErr := err
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
				return outcomeAccepted
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				fmt.Fprintf(os.Stderr, "\nrejected (%d): %s\n", resp.StatusCode, problemDetail(body))
				return outcomeRejected
			}
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
				delay = time.Duration(ra) * time.Second
			}
			lastErr = fmt.Errorf("%d %s", resp.StatusCode, problemDetail(body))
		}
		if attempt >= retries || ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "\ngave up after %d attempts: %v\n", attempt+1, lastErr)
			return outcomeFailed
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return outcomeFailed
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func problemDetail(body []byte) string {
	var p struct {
		Detail string `json:"detail"`
		Index  *int   `json:"index"`
	}
	if json.Unmarshal(body, &p) != nil || p.Detail == "" {
		return string(body)
	}
	if p.Index != nil {
		return fmt.Sprintf("%s (event %d)", p.Detail, *p.Index)
	}
	return p.Detail
}

// progress returns a function that redraws a one-line progress report at most ten
// times a second (and at the end).
func progress(quiet bool, total int) func(done int64) {
	if quiet {
		return func(int64) {}
	}
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	return func(done int64) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 100*time.Millisecond && done != int64(total) {
			return
		}
		last = time.Now()
		rate := float64(done) / time.Since(start).Seconds()
		fmt.Fprintf(os.Stderr, "\r%d/%d events  %.0f events/s", done, total, rate)
	}
}
