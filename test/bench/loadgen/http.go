package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// HTTPTarget posts CloudEvents to an HTTP endpoint: one binary-mode event per
// request when Batch is 1 (or Structured mode when Structured is set), else one
// application/cloudevents-batch+json request. Any 2xx acknowledges the request.
type HTTPTarget struct {
	URL        string
	Events     Events
	Structured bool   // single events in structured rather than binary mode
	APIKey     string // sent as Authorization: Bearer when set (an ingest with INGEST_AUTH=apikey)
	client     *http.Client
	bufs       sync.Pool
}

// NewHTTPTarget checks that rawURL is on a loopback address and prepares a client
// with one keep-alive connection per worker.
func NewHTTPTarget(rawURL string, ev Events, conns int, timeout time.Duration) (*HTTPTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("target url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("target url %q: only http:// on a loopback address", rawURL)
	}
	if err := CheckLoopback(u.Host); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: the target is local
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &HTTPTarget{URL: rawURL, Events: ev.withDefaults(), client: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// Close drops the idle connections.
func (t *HTTPTarget) Close() { t.client.CloseIdleConnections() }

// Send posts events [first, first+n).
func (t *HTTPTarget) Send(ctx context.Context, first int64, n int, at time.Time) (string, error) {
	bp, _ := t.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 2048)
		bp = &b
	}
	defer t.bufs.Put(bp)
	body := (*bp)[:0]
	ev := t.Events
	header := http.Header{}
	switch {
	case n > 1:
		body = ev.AppendBatch(body, first, n, at)
		header.Set("Content-Type", "application/cloudevents-batch+json")
	case t.Structured:
		body = ev.AppendStructured(body, first, at)
		header.Set("Content-Type", "application/cloudevents+json")
	default:
		body = ev.AppendData(body, first)
		header.Set("Content-Type", "application/json")
		header.Set("Ce-Specversion", "1.0")
		header.Set("Ce-Id", ev.ID(first))
		header.Set("Ce-Source", ev.SourceOf(first))
		header.Set("Ce-Type", ev.Type)
		header.Set("Ce-Subject", ev.Subject(first))
		header.Set("Ce-Time", at.UTC().Format(time.RFC3339Nano))
	}
	if t.APIKey != "" {
		header.Set("Authorization", "Bearer "+t.APIKey)
	}
	*bp = body
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return "error", err
	}
	req.Header = header
	resp, err := t.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout", err
		}
		return "error", err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	status := strconv.Itoa(resp.StatusCode)
	if resp.StatusCode/100 != 2 {
		return status, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return status, nil
}

// CheckLoopback fails unless every address hostport names is a loopback address:
// load is only ever generated against this machine.
func CheckLoopback(hostport string) error {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, which is not a loopback address: load goes only to this machine", hostport, ip)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("%q resolves to no address", host)
	}
	return nil
}
