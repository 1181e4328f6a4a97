package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
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
	if err := checkReplayFlags(*url, *conc, *batch, *retries); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: replay takes one FILE (JSONL, one structured CloudEvent per line)", errUsage)
	}
	lines, err := readLines(fs.Arg(0))
	if err != nil {
		return err
	}
	reqs := replayRequests(lines, *batch)
	start := time.Now()
	res := replay(ctx, *url, reqs, *conc, *retries, progress(*quiet, len(lines)), os.Stderr)
	if !*quiet {
		fmt.Fprintln(os.Stderr)
	}
	fmt.Printf("accepted=%d rejected=%d failed=%d events=%d requests=%d elapsed=%s\n",
		res.Accepted, res.Rejected, res.Failed, len(lines), len(reqs), time.Since(start).Round(time.Millisecond))
	switch n := res.Rejected + res.Failed; {
	case n == 1:
		return errors.New("1 event was not accepted")
	case n > 1:
		return fmt.Errorf("%d events were not accepted", n)
	}
	return nil
}

// checkReplayFlags refuses, before anything is read or sent, flag values that
// cannot work, naming the flag and its value.
func checkReplayFlags(rawURL string, conc, batch, retries int) error {
	switch {
	case conc < 1:
		return fmt.Errorf("%w: -c %d: must be at least 1 (requests in flight)", errUsage, conc)
	case batch < -1:
		return fmt.Errorf("%w: -batch %d: must be -1 (the whole file in one batch), 0 (one event per request) or more", errUsage, batch)
	case retries < 0:
		return fmt.Errorf("%w: -retries %d: must be at least 0", errUsage, retries)
	}
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: -url %q: %v", errUsage, rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: -url %q: must be an http:// or https:// URL (ingest's address, for example http://127.0.0.1:8080)", errUsage, rawURL)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: -url %q: names no host", errUsage, rawURL)
	}
	return nil
}

// line is one non-blank line of the replayed file with its line number (from 1).
type line struct {
	n    int
	data []byte
}

type replayRequest struct {
	contentType string
	body        []byte
	events      int
	lines       []int // the file's line number of each event, in request order
}

// where names the request's lines in a message: "line 7" or "lines 7-12".
func (r replayRequest) where() string {
	if len(r.lines) == 0 {
		return "request"
	}
	if first, last := r.lines[0], r.lines[len(r.lines)-1]; first != last {
		return fmt.Sprintf("lines %d-%d", first, last)
	}
	return fmt.Sprintf("line %d", r.lines[0])
}

func readLines(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
			out = append(out, line{n: n, data: append([]byte(nil), l...)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// replayRequests makes the requests of a replay: one structured event per request
// (batch 0), batches of that many events, or the whole file in one batch (-1).
func replayRequests(lines []line, batch int) []replayRequest {
	var reqs []replayRequest
	if batch == 0 {
		for _, l := range lines {
			reqs = append(reqs, replayRequest{contentType: "application/cloudevents+json", body: l.data, events: 1, lines: []int{l.n}})
		}
		return reqs
	}
	if batch < 0 {
		batch = len(lines)
	}
	for i := 0; i < len(lines); i += batch {
		end := min(i+batch, len(lines))
		r := replayRequest{contentType: "application/cloudevents-batch+json", body: joinArray(lines[i:end]), events: end - i}
		for _, l := range lines[i:end] {
			r.lines = append(r.lines, l.n)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

func joinArray(lines []line) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(l.data)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// replayer posts one replay's requests; log gets one line per request that was
// not accepted, and once per run the failures that every request would share.
type replayer struct {
	client  *http.Client
	url     string
	retries int
	log     io.Writer
	logMu   sync.Mutex
	// refused and permanent report once per run that nothing listens at the URL, or
	// that the URL cannot be reached in a way retrying does not change.
	refused, permanent sync.Once
}

func (p *replayer) logf(format string, args ...any) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	fmt.Fprintf(p.log, format, args...)
}

// replay posts reqs with conc workers and retries answers that mean "try again".
func replay(ctx context.Context, url string, reqs []replayRequest, conc, retries int, tick func(done int64), log io.Writer) replayResult {
	var res replayResult
	var done atomic.Int64
	p := &replayer{client: &http.Client{Timeout: 30 * time.Second}, url: url, retries: retries, log: log}
	work := make(chan replayRequest)
	var wg sync.WaitGroup
	for w := 0; w < max(conc, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				switch p.post(ctx, r) {
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

// permanentError reports whether a failed request would fail the same way however
// often it is retried: a name that does not resolve, a certificate that does not
// verify, a server that does not speak TLS, a URL the client cannot use.
func permanentError(err error) bool {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	var badURL neturl.InvalidHostError
	return (errors.As(err, &dns) && dns.IsNotFound) ||
		errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &badCert) ||
		errors.As(err, &notTLS) || errors.As(err, &badURL) ||
		strings.Contains(err.Error(), "unsupported protocol scheme")
}

func (p *replayer) post(ctx context.Context, r replayRequest) outcome {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(r.body))
		if err != nil {
			p.permanent.Do(func() { p.logf("\ncannot post to %s: %v\n", p.url, err) })
			return outcomeFailed
		}
		req.Header.Set("Content-Type", r.contentType)
		if key := os.Getenv("TIDE_API_KEY"); key != "" { // from the environment, never a flag: flags show in ps
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := p.client.Do(req)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Nothing listens there: retrying will not help, and a silent crawl hides it.
			p.refused.Do(func() {
				p.logf("\nnothing listens at %s (is `make run` running? set -url or TIDE_URL)\n", p.url)
			})
			return outcomeFailed
		}
		if err != nil && permanentError(err) {
			p.permanent.Do(func() { p.logf("\ncannot post to %s, not retrying: %v\n", p.url, err) })
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
				p.logf("\n%s\n", rejection(r, resp.StatusCode, body))
				return outcomeRejected
			}
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
				delay = time.Duration(ra) * time.Second
			}
			detail, _ := problemDetail(body)
			lastErr = fmt.Errorf("%d %s", resp.StatusCode, detail)
		}
		if attempt >= p.retries || ctx.Err() != nil {
			p.logf("\n%s: gave up after %d attempts: %v\n", r.where(), attempt+1, lastErr)
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

// problemDetail is the detail of an application/problem+json answer (the body
// itself when it is none) and the index of the event it names in a batch, or -1.
func problemDetail(body []byte) (string, int) {
	var p struct {
		Detail string `json:"detail"`
		Index  *int   `json:"index"`
	}
	if json.Unmarshal(body, &p) != nil || p.Detail == "" {
		return string(bytes.TrimSpace(body)), -1
	}
	if p.Index != nil {
		return p.Detail, *p.Index
	}
	return p.Detail, -1
}

// rejection says which line of the file ingest rejected and why: "line 7: rejected
// (400): ...". A batch is accepted or rejected whole, so for a batch it also names
// the lines the request carried.
func rejection(r replayRequest, status int, body []byte) string {
	detail, index := problemDetail(body)
	if len(r.lines) == 1 {
		return fmt.Sprintf("line %d: rejected (%d): %s", r.lines[0], status, detail)
	}
	if index >= 0 && index < len(r.lines) {
		return fmt.Sprintf("line %d: rejected (%d): %s (event %d of the batch of %s, none of which was accepted)", r.lines[index], status, detail, index, r.where())
	}
	if index >= 0 {
		return fmt.Sprintf("%s: rejected (%d): %s (event %d)", r.where(), status, detail, index)
	}
	return fmt.Sprintf("%s: rejected (%d): %s", r.where(), status, detail)
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
