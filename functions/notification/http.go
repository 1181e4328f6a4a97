package notification

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/consumer"
	"function/shared/problem"
	"function/shared/store"
)

// Read API limits.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// Routes registers the notification read API on mux:
//
//	GET /v1/notifications?channel=C&limit=N   newest first, with the channel's all-time total
//	GET /v1/notifications/stream?channel=C    Server-Sent Events, one per new notification
//	GET /v1/scaling/GROUP                     the scaling signal for KEDA (pull mode)
func (f *Function) Routes(mux *http.ServeMux) {
	if f.runner != nil {
		mux.HandleFunc("GET /v1/scaling/"+f.runner.Group(), consumer.ScalingHandler(f.runner))
	}
	mux.HandleFunc("GET /v1/notifications", f.list)
	mux.HandleFunc("GET /v1/notifications/stream", f.stream)
}

// PushHandler receives CloudEvents POSTed by a KafkaSource (push mode).
func (f *Function) PushHandler() http.Handler {
	return consumer.PushHandler(func(ctx context.Context, e *event.Event) error {
		_, err := f.Handle(ctx, *e)
		return err
	})
}

type listResponse struct {
	Channel       string               `json:"channel"`
	Notifications []store.Notification `json:"notifications"`
	Total         int64                `json:"total"`
}

// queryParams reads the named query parameters strictly. URL.Query drops what it
// cannot decode, so "channel=%zz" would read as no channel at all, and Get takes the
// first of repeated values: here a query string that is not valid URL encoding, or a
// named parameter given more than once, is a 400 saying so. Other parameters are
// ignored. An absent parameter is "".
func queryParams(r *http.Request, names ...string) (map[string]string, *problem.Problem) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, problem.Newf(http.StatusBadRequest, problem.TypeBadParameter,
			"the query string is not valid URL encoding: %v (percent-encode the values, e.g. curl -G --data-urlencode 'channel=...')", err)
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		switch vs := q[name]; len(vs) {
		case 0:
		case 1:
			out[name] = vs[0]
		default:
			return nil, problem.Newf(http.StatusBadRequest, problem.TypeBadParameter,
				"query parameter %q is repeated (%d times): give it once", name, len(vs))
		}
	}
	return out, nil
}

func (f *Function) list(w http.ResponseWriter, r *http.Request) {
	q, p := queryParams(r, "channel", "limit")
	if p != nil {
		problem.Write(w, p)
		return
	}
	channel := q["channel"]
	if channel == "" {
		problem.Write(w, problem.New(http.StatusBadRequest, problem.TypeBadParameter, "query parameter \"channel\" is required (a channel is an event source unless routing rules say otherwise)"))
		return
	}
	limit := int64(defaultLimit)
	if s := q["limit"]; s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > maxLimit {
			problem.Write(w, problem.Newf(http.StatusBadRequest, problem.TypeBadParameter, "query parameter \"limit\" must be a whole number from 1 to %d, got %q", maxLimit, s))
			return
		}
		limit = n
	}
	ns, total, err := f.store.List(r.Context(), channel, limit)
	if err != nil {
		p := problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, err.Error())
		p.RetryAfter = time.Second
		problem.Write(w, p)
		return
	}
	writeJSON(w, listResponse{Channel: channel, Notifications: ns, Total: total})
}

func (f *Function) stream(w http.ResponseWriter, r *http.Request) {
	q, p := queryParams(r, "channel")
	if p != nil {
		problem.Write(w, p)
		return
	}
	channel := q["channel"]
	if channel == "" {
		problem.Write(w, problem.New(http.StatusBadRequest, problem.TypeBadParameter, "query parameter \"channel\" is required"))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		problem.Write(w, problem.New(http.StatusInternalServerError, problem.TypeUnavailable, "streaming unsupported by this server"))
		return
	}
	ctx := r.Context()
	ch, err := f.store.Subscribe(ctx, channel)
	if err != nil {
		problem.Write(w, problem.New(http.StatusServiceUnavailable, problem.TypeUnavailable, err.Error()))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": subscribed to %s\n\n", channel)
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case n, ok := <-ch:
			if !ok {
				return
			}
			body, _ := json.Marshal(n)
			fmt.Fprintf(w, "id: %s\nevent: notification\ndata: %s\n\n", n.ID, body)
			flusher.Flush()
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case <-ctx.Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
