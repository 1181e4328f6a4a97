package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestNotificationTimeOnlyWhenTheEventHasOne: an event without a time attribute
// gives a notification without "time", not the zero time 0001-01-01T00:00:00Z; one
// with a time keeps it through a JSON round trip (how Redis holds it).
func TestNotificationTimeOnlyWhenTheEventHasOne(t *testing.T) {
	b, err := json.Marshal(Notification{ID: "1", Source: "/s", Channel: "c", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"time"`) {
		t.Fatalf("notification of an event without time: %s", b)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	b, _ = json.Marshal(Notification{ID: "1", Source: "/s", Channel: "c", Time: at})
	var back Notification
	if err := json.Unmarshal(b, &back); err != nil || !back.Time.Equal(at) {
		t.Fatalf("round trip of %s: time %v (%v), want %v", b, back.Time, err, at)
	}
}
