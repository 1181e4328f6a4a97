package notification

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"function/shared/problem"
	"function/shared/store"
)

// readAPI is the notification read API over miniredis, holding one notification on
// the channel "a%b c" (a percent sign and a space, both needing URL encoding).
func readAPI(t *testing.T) http.Handler {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	f := &Function{store: store.NewNotifications(rdb, "t:", 100, time.Hour)}
	if _, err := f.store.Put(context.Background(), store.Notification{ID: "1", Source: "/s", Type: "t", Title: "x", Channel: "a%b c", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.Routes(mux)
	return mux
}

func TestReadAPIQueryParameters(t *testing.T) {
	h := readAPI(t)
	for _, tc := range []struct {
		name, target string
		code         int
		detail       string // substring of the problem's detail (for 400s)
	}{
		{"encoded channel", "/v1/notifications?channel=a%25b+c", 200, ""},
		{"unknown parameters are ignored, repeated or not", "/v1/notifications?channel=a%25b%20c&x=1&x=2", 200, ""},
		{"bad URL encoding", "/v1/notifications?channel=%zz", 400, "not valid URL encoding"},
		{"bad URL encoding in another parameter", "/v1/notifications?channel=a%25b+c&x=%zz", 400, "not valid URL encoding"},
		{"repeated channel", "/v1/notifications?channel=a%25b+c&channel=other", 400, `"channel" is repeated`},
		{"repeated limit", "/v1/notifications?channel=a%25b+c&limit=1&limit=2", 400, `"limit" is repeated`},
		{"missing channel", "/v1/notifications?limit=1", 400, `"channel" is required`},
		{"stream: bad URL encoding", "/v1/notifications/stream?channel=%zz", 400, "not valid URL encoding"},
		{"stream: repeated channel", "/v1/notifications/stream?channel=a&channel=b", 400, `"channel" is repeated`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The deadline ends a stream the handler opened instead of refusing it.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, tc.target, nil))
			if rec.Code != tc.code {
				t.Fatalf("GET %s: %d, want %d: %s", tc.target, rec.Code, tc.code, rec.Body)
			}
			if tc.code == 200 {
				var got listResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Channel != "a%b c" || got.Total != 1 || len(got.Notifications) != 1 {
					t.Fatalf("GET %s: %s (%v), want the notification of channel \"a%%b c\"", tc.target, rec.Body, err)
				}
				if strings.Contains(rec.Body.String(), `"time"`) {
					t.Fatalf("GET %s: %s: the event had no time, so neither should its notification", tc.target, rec.Body)
				}
				return
			}
			var p problem.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != problem.ContentType {
				t.Fatalf("GET %s: not problem+json: %s", tc.target, rec.Body)
			}
			if p.Type != problem.TypeBadParameter || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("GET %s: %s, want a bad-parameter problem saying %q", tc.target, rec.Body, tc.detail)
			}
		})
	}
}
