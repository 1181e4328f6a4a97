package notification

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func ghEvent(typ, action, subject string) *event.Event {
	e := event.New()
	e.SetID("1")
	e.SetType(typ)
	e.SetSource("https://github.com/user-alpha/repo")
	if subject != "" {
		e.SetSubject(subject)
	}
	if action != "" {
		e.SetExtension("action", action)
	}
	return &e
}

func TestRender(t *testing.T) {
	tests := []struct {
		name, templates, rules string
		event                  *event.Event
		title, channel         string
	}{
		{name: "default title names kind, action, repo and subject", event: ghEvent("dev.knative.source.github.pull_request", "opened", "42"),
			title: "pull request opened in user-alpha/repo (#42)", channel: "https://github.com/user-alpha/repo"},
		{name: "default title without action or subject", event: ghEvent("dev.knative.source.github.push", "", ""),
			title: "push in user-alpha/repo", channel: "https://github.com/user-alpha/repo"},
		{name: "per-type template", templates: `{"dev.knative.source.github.push":"Pushed to {{.Repo}}"}`, event: ghEvent("dev.knative.source.github.push", "", ""),
			title: "Pushed to user-alpha/repo", channel: "https://github.com/user-alpha/repo"},
		{name: "routing rule by type prefix", rules: "dev.knative.source.github.issue=issues", event: ghEvent("dev.knative.source.github.issues", "closed", ""),
			title: "issues closed in user-alpha/repo", channel: "issues"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRenderer(tc.templates, tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			n := r.Render(tc.event, "k")
			if n.Title != tc.title || n.Channel != tc.channel {
				t.Fatalf("title %q channel %q, want %q and %q", n.Title, n.Channel, tc.title, tc.channel)
			}
			if n.ID != "1" || n.Key != "k" || n.Type != tc.event.Type() {
				t.Fatalf("notification fields: %+v", n)
			}
		})
	}
}

func TestNewRendererRejectsBadConfiguration(t *testing.T) {
	for _, tc := range []struct{ templates, rules, want string }{
		{templates: `not json`, want: "NOTIFICATION_TITLE_TEMPLATES"},
		{templates: `{"t":"{{.Nope"}`, want: "NOTIFICATION_TITLE_TEMPLATES"},
		{rules: "no-equals-sign", want: "NOTIFICATION_CHANNEL_RULES"},
	} {
		if _, err := NewRenderer(tc.templates, tc.rules); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRenderer(%q, %q) err = %v, want one naming %s", tc.templates, tc.rules, err, tc.want)
		}
	}
}
