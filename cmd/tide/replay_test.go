package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rejectNoID answers like ingest: 202, or a 400 problem naming the first event
// without an id (with its index in a batch).
func rejectNoID(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	problem := func(index *int) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": 400, "detail": `attribute "id" is required`, "index": index})
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents-batch+json") {
		var evs []map[string]any
		_ = json.Unmarshal(raw, &evs)
		for i, e := range evs {
			if e["id"] == nil {
				problem(&i)
				return
			}
		}
	} else {
		var e map[string]any
		_ = json.Unmarshal(raw, &e)
		if e["id"] == nil {
			problem(nil)
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// writeJSONL writes a file whose events without an id are on lines 4 and 7 (after a
// blank line, so a line number is not an event's index plus one).
func writeJSONL(t *testing.T) string {
	t.Helper()
	ev := func(id string) string {
		if id == "" {
			return `{"specversion":"1.0","source":"/t","type":"t"}`
		}
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/t","type":"t"}`, id)
	}
	content := strings.Join([]string{ev("1"), ev("2"), "", ev(""), ev("4"), ev("5"), ev(""), ev("7")}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Each rejection names the line of the file the rejected event is on, in
// one-event-per-request mode and in batch mode.
func TestReplayRejectionsNameTheFilesLine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(rejectNoID))
	defer srv.Close()
	lines, err := readLines(writeJSONL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		batch    int
		accepted int64
		want     []string
	}{
		{0, 5, []string{`line 4: rejected (400): attribute "id" is required`, `line 7: rejected (400): attribute "id" is required`}},
		// Batches of lines 1-4, 5-7 and 8.
		{3, 1, []string{
			`line 4: rejected (400): attribute "id" is required (event 2 of the batch of lines 1-4`,
			`line 7: rejected (400): attribute "id" is required (event 2 of the batch of lines 5-7`,
		}},
	} {
		var log bytes.Buffer
		res := replay(context.Background(), srv.URL, replayRequests(lines, tc.batch), 1, 0, func(int64) {}, &log)
		if res.Accepted != tc.accepted || res.Accepted+res.Rejected != 7 || res.Failed != 0 {
			t.Errorf("-batch %d: %+v, want %d accepted and the rest rejected", tc.batch, res, tc.accepted)
		}
		for _, w := range tc.want {
			if !strings.Contains(log.String(), w) {
				t.Errorf("-batch %d: the rejections lack %q:\n%s", tc.batch, w, log.String())
			}
		}
	}
}

// A URL that cannot work is refused before anything is sent, and each bad flag is
// named with its value.
func TestReplayRefusesBadFlagsNamingThem(t *testing.T) {
	path := writeJSONL(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-url", "ftp://x"}, `-url "ftp://x": must be an http:// or https:// URL`},
		{[]string{"-url", "127.0.0.1:8080"}, `-url "127.0.0.1:8080"`},
		{[]string{"-url", "http://"}, `-url "http://": names no host`},
		{[]string{"-c", "0"}, "-c 0: must be at least 1"},
		{[]string{"-batch", "-2"}, "-batch -2: must be"},
		{[]string{"-retries", "-1"}, "-retries -1: must be at least 0"},
	} {
		start := time.Now()
		err := runReplay(context.Background(), append(append([]string{"-q"}, tc.args...), path))
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("replay %s: err = %v, want a usage error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("replay %s took %s: refused only after trying", strings.Join(tc.args, " "), took)
		}
	}
}

// An error retrying cannot mend (here: a certificate no CA of ours signed) fails the
// request at once instead of after every retry: the server sees one connection
// per request, not one per attempt.
func TestReplayDoesNotRetryPermanentErrors(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(rejectNoID))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors it logs are the point
	srv.StartTLS()
	defer srv.Close()
	lines, err := readLines(writeJSONL(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res := replay(context.Background(), srv.URL, replayRequests(lines[:1], 0), 1, 5, func(int64) {}, &out)
	if res.Failed != 1 {
		t.Fatalf("%+v, want the one event failed", res)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for one request with 5 retries: a certificate error was retried", n)
	}
	if !strings.Contains(out.String(), "not retrying") || !strings.Contains(out.String(), "certificate") {
		t.Errorf("log does not say why it gave up at once:\n%s", out.String())
	}
}
