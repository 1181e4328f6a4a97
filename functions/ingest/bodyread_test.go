package ingest

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"function/shared/problem"
)

// TestSlowOrCutBodyAnswers: a client that declares a Content-Length and sends less
// gets 408 once the server's read timeout passes, or 400 when it closes its side,
// each a problem+json that does not name the connection's addresses.
func TestSlowOrCutBodyAnswers(t *testing.T) {
	f, _ := startIngest(t)
	srv := httptest.NewUnstartedServer(f)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name      string
		closeSend bool // close the sending side after the one byte
		status    int
		typ       string
		detail    string
	}{
		{"stalled body", false, http.StatusRequestTimeout, problem.TypeRequestTimeout, "request body not received in time"},
		{"body cut short", true, http.StatusBadRequest, problem.TypeMalformed, "ended before its declared length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := "POST / HTTP/1.1\r\nHost: tide\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100\r\n\r\n{"
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			if tc.closeSend {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang fails, not blocks
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != problem.ContentType {
				t.Fatalf("answer %d %q: %s; want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
			}
			var p problem.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Type != tc.typ || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("problem %s (%v), want type %s saying %q", body, err, tc.typ, tc.detail)
			}
			for _, addr := range []string{conn.LocalAddr().String(), conn.RemoteAddr().String(), "127.0.0.1", "tcp"} {
				if strings.Contains(string(body), addr) {
					t.Fatalf("the answer names %q: %s", addr, body)
				}
			}
		})
	}
}

// TestBodyReadProblemHidesAddresses: connection errors other than timeouts are 400s
// that say what happened without the addresses a *net.OpError carries.
func TestBodyReadProblemHidesAddresses(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 18080}
	remote := &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 54182}
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Source: local, Addr: remote, Err: err}
	}
	for _, tc := range []struct {
		err    error
		status int
		detail string
	}{
		{op(os.ErrDeadlineExceeded), http.StatusRequestTimeout, "not received in time"},
		{op(&os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}), http.StatusBadRequest, "connection reset"},
		{io.ErrUnexpectedEOF, http.StatusBadRequest, "ended before its declared length"},
		{errors.New("malformed chunked encoding"), http.StatusBadRequest, "malformed chunked encoding"},
	} {
		p := bodyReadProblem(tc.err)
		if p.Status != tc.status || !strings.Contains(p.Detail, tc.detail) || strings.Contains(p.Detail, "10.") {
			t.Errorf("bodyReadProblem(%v) = %d %q, want %d saying %q without addresses", tc.err, p.Status, p.Detail, tc.status, tc.detail)
		}
	}
}
