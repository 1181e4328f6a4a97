package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"function/shared/store"
)

// outputs reads what the pipeline produced through its read API.
type outputs struct {
	base   string // read API base URL
	client *http.Client
}

// maxRead is the most notifications GET /v1/notifications returns at once; a key
// must not have more events than this, or its channel cannot be read whole.
const maxRead = 1000

type listAnswer struct {
	Notifications []store.Notification `json:"notifications"`
	Total         int64                `json:"total"`
}

// channel returns the channel's notifications oldest first and its all-time total.
func (o *outputs) channel(ctx context.Context, channel string) ([]store.Notification, int64, error) {
	var l listAnswer
	if err := o.get(ctx, fmt.Sprintf("/v1/notifications?channel=%s&limit=%d", url.QueryEscape(channel), maxRead), &l); err != nil {
		return nil, 0, err
	}
	// The API answers newest first.
	for i, j := 0, len(l.Notifications)-1; i < j; i, j = i+1, j-1 {
		l.Notifications[i], l.Notifications[j] = l.Notifications[j], l.Notifications[i]
	}
	return l.Notifications, l.Total, nil
}

// sourceCounts returns analytics' event count per source.
func (o *outputs) sourceCounts(ctx context.Context) (map[string]int64, error) {
	var st store.Stats
	if err := o.get(ctx, "/v1/stats", &st); err != nil {
		return nil, err
	}
	return st.Sources, nil
}

func (o *outputs) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.base, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// observeAll reads every key's channel and the analytics counts; landed is added by
// the caller.
func (o *outputs) observeAll(ctx context.Context, keys []keyResult) ([]observation, error) {
	counts, err := o.sourceCounts(ctx)
	if err != nil {
		return nil, err
	}
	obs := make([]observation, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ns, total, err := o.channel(ctx, keys[i].Source)
			if err != nil {
				errs[i] = err
				return
			}
			seqs := make([]int, len(ns))
			for j, n := range ns {
				seqs[j] = seqOf(n.ID)
				if n.Source != keys[i].Source {
					seqs[j] = -1
				}
			}
			obs[i] = observation{Notified: seqs, Total: total, Counted: counts[keys[i].Source]}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return obs, nil
}
