package notification

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/shared/store"
)

// defaultTitle names what happened and where, e.g. "issues opened in user-alpha/repo".
const defaultTitle = `{{.Kind}}{{with .Action}} {{.}}{{end}}{{with .Repo}} in {{.}}{{else}} from {{.Source}}{{end}}{{with .Subject}} (#{{.}}){{end}}`

// Renderer turns events into notifications: a title from a per-type template and a
// channel from the routing rules.
type Renderer struct {
	titles   map[string]*template.Template
	fallback *template.Template
	rules    []rule
}

type rule struct{ prefix, channel string }

// titleData is what a title template sees.
type titleData struct {
	Type, Kind, Action, Source, Repo, Subject, ID string
}

// NewRenderer parses the title templates (JSON: type -> template) and channel rules
// (TYPE_PREFIX=CHANNEL, comma-separated).
func NewRenderer(templates, rules string) (*Renderer, error) {
	r := &Renderer{titles: map[string]*template.Template{}, fallback: template.Must(template.New("default").Parse(defaultTitle))}
	if strings.TrimSpace(templates) != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(templates), &m); err != nil {
			return nil, fmt.Errorf("NOTIFICATION_TITLE_TEMPLATES: not a JSON object of strings: %w", err)
		}
		for typ, src := range m {
			t, err := template.New(typ).Option("missingkey=zero").Parse(src)
			if err != nil {
				return nil, fmt.Errorf("NOTIFICATION_TITLE_TEMPLATES[%q]: %w", typ, err)
			}
			r.titles[typ] = t
		}
	}
	for _, part := range strings.Split(rules, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		prefix, channel, ok := strings.Cut(part, "=")
		if !ok || prefix == "" || channel == "" {
			return nil, fmt.Errorf("NOTIFICATION_CHANNEL_RULES: %q is not TYPE_PREFIX=CHANNEL", part)
		}
		r.rules = append(r.rules, rule{prefix: prefix, channel: channel})
	}
	return r, nil
}

// Render makes the notification of e, which travelled under partition key key.
func (r *Renderer) Render(e *event.Event, key string) store.Notification {
	n := store.Notification{
		ID:        e.ID(),
		Type:      e.Type(),
		Source:    e.Source(),
		Subject:   e.Subject(),
		Time:      e.Time(),
		Channel:   r.channel(e),
		CreatedAt: time.Now().UTC(),
		Key:       key,
	}
	if tp, ok := e.Extensions()["traceparent"].(string); ok {
		n.TraceParent = tp
	}
	n.Title = r.title(e)
	return n
}

func (r *Renderer) channel(e *event.Event) string {
	for _, rl := range r.rules {
		if strings.HasPrefix(e.Type(), rl.prefix) {
			return rl.channel
		}
	}
	return e.Source()
}

func (r *Renderer) title(e *event.Event) string {
	d := titleData{Type: e.Type(), Kind: kind(e.Type()), Source: e.Source(), Subject: e.Subject(), ID: e.ID(), Repo: repo(e.Source())}
	if a, ok := e.Extensions()["action"].(string); ok {
		d.Action = a
	}
	t := r.titles[e.Type()]
	if t == nil {
		t = r.fallback
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil || b.Len() == 0 {
		return d.Kind + " from " + d.Source
	}
	return b.String()
}

// kind is the last dot-separated part of a type: "dev.knative.source.github.issues"
// is "issues".
func kind(typ string) string {
	if i := strings.LastIndexByte(typ, '.'); i >= 0 && i < len(typ)-1 {
		return strings.ReplaceAll(typ[i+1:], "_", " ")
	}
	return typ
}

// repo is "owner/name" for a GitHub source URL, else "".
func repo(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Host != "github.com" {
		return ""
	}
	return strings.Trim(u.Path, "/")
}
